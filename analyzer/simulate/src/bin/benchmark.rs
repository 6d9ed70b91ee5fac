//! The decision-quality benchmark harness: canary against Flagger's, Argo Rollouts' and
//! Kayenta's rules, a naive repeated z-test and an SPRT oracle, on the same simulated
//! traffic (see `canary_simulate::benchmark` and docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p canary-simulate --bin benchmark -- --write docs/benchmarks.md
//! ```
//!
//! prints the tables (or, with `--write FILE`, replaces the part of FILE between the
//! `<!-- benchmark:begin -->` and `<!-- benchmark:end -->` markers); `--json FILE` also saves
//! every summary. `--runs N` (default 2000), `--tuning-runs N` (default 2000) and `--seed S`
//! (default 1) change the effort and the seeds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use canary_simulate::benchmark::{BenchmarkOptions, render_markdown, run_benchmark};

const BEGIN: &str = "<!-- benchmark:begin -->";
const END: &str = "<!-- benchmark:end -->";

struct Args {
    options: BenchmarkOptions,
    write: Option<PathBuf>,
    json: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        options: BenchmarkOptions::default(),
        write: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--runs" => args.options.runs = number(value()?)?,
            "--tuning-runs" => args.options.tuning_runs = number(value()?)?,
            "--seed" => args.options.seed = number(value()?)?,
            "--write" => args.write = Some(PathBuf::from(value()?)),
            "--json" => args.json = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                return Err("usage: benchmark [--runs N] [--tuning-runs N] [--seed S] [--write FILE] [--json FILE]".to_owned());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Replaces what lies between the markers in `text` with `tables`.
fn splice(text: &str, tables: &str) -> Result<String, String> {
    let begin = text
        .find(BEGIN)
        .ok_or_else(|| format!("no {BEGIN} marker"))?;
    let end = text.find(END).ok_or_else(|| format!("no {END} marker"))?;
    if end < begin {
        return Err(format!("{END} comes before {BEGIN}"));
    }
    Ok(format!(
        "{}{BEGIN}\n\n{}\n{}",
        &text[..begin],
        tables.trim_end(),
        &text[end..]
    ))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let benchmark = run_benchmark(&args.options, &mut |what| {
        eprintln!("[{:6.1}s] {what}", started.elapsed().as_secs_f64());
    });
    eprintln!("[{:6.1}s] done", started.elapsed().as_secs_f64());
    let tables = render_markdown(&benchmark);
    let outcome = (|| -> Result<(), String> {
        if let Some(path) = &args.json {
            let json = serde_json::to_string_pretty(&benchmark).map_err(|e| e.to_string())?;
            std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        match &args.write {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let text =
                    splice(&text, &tables).map_err(|e| format!("{}: {e}", path.display()))?;
                std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
            }
            None => {
                print!("{tables}");
                Ok(())
            }
        }
    })();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
