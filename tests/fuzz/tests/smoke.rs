//! Every fuzz target, on stable Rust, in the ordinary test run: over its checked-in seed
//! corpus (`tests/fuzz/corpus/NAME/`), then over mutated inputs made from the seeds by a
//! small deterministic mutator (bit flips, byte edits, cut and copied ranges, splices of
//! two seeds, and tokens that tend to break parsers of that format). This keeps the targets
//! compiling and passing between campaigns, and replays every crash the campaigns found
//! (each is a seed). The real campaign is libFuzzer's (`docs/reliability.md`).
//!
//! `CANARY_FUZZ_RUNS` sets the mutated inputs per target (default 1500). A failing input is
//! written under the test's temporary directory and named in the failure, with the command
//! that replays it under cargo-fuzz.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DEFAULT_RUNS: usize = 1500;

/// Tokens worth inserting, per format: what ends a value early, what numbers parsers trip
/// on, what nests.
fn dictionary(target: &str) -> &'static [&'static str] {
    match target {
        "policy_yaml" => &[
            ":",
            "- ",
            "\n  ",
            "{",
            "}",
            "[",
            "]",
            "&a ",
            "*a",
            "<<: *a",
            "!!str ",
            "'",
            "\"",
            "#",
            "|\n",
            ">-\n",
            "~",
            "null",
            "1e309",
            "-0",
            "0x10",
            ".nan",
            ".inf",
            "-.inf",
            "99999999999999999999",
            "100%",
            "0%",
            "1000%",
            "0s",
            "1ns",
            "584942417355y",
            "=~",
            "!~",
            "{{window}}",
            "{{",
            "}}",
            "\\",
            "\t",
            "\u{feff}",
            "é",
            "steps:",
            "checks:",
            "slo:",
            "baseline:",
            "max:",
            "rollback-above:",
            "max-increase:",
            "quantile:",
            "min-samples:",
            "weight-total:",
        ],
        "recording" | "rollout_state" | "control_request" | "prometheus_answer"
        | "generic_answer" | "datadog_answer" | "cloudwatch_answer" => &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "null",
            "true",
            "false",
            "-1",
            "0",
            "-0",
            "1e308",
            "1e-320",
            "1.7976931348623157e308",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "4294967295",
            "\"NaN\"",
            "\"+Inf\"",
            "\"-Inf\"",
            "\"Inf\"",
            "\"inf\"",
            "\"nan\"",
            "\"1e400\"",
            "\"\"",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "\"2026-11-22T10:00:00Z\"",
            "\"9999-12-31T23:59:59Z\"",
            "\"-009999-01-01T00:00:00Z\"",
            "\"le\"",
            "\"version\"",
            "\"canary\"",
            "\"stable\"",
            "\"canary_series\"",
            "\"requests\"",
            "\"errors\"",
            "\"observed\"",
            "\"nodata\"",
            "\"invalid\"",
            "\"counts\"",
            "\"histogram\"",
            "\"samples\"",
            "\"value\"",
            "\"step\"",
            "\"held\"",
            "\"failed\"",
            "\"promote\"",
            "\"abort\"",
            "\"vector\"",
            "\"matrix\"",
            "\"scalar\"",
            "\"string\"",
            "\"success\"",
            "\"error\"",
            // The secret the targets hold: mutations move it into every field.
            canary_fuzz::SECRET,
        ],
        "exposition_page" => &[
            canary_fuzz::SECRET,
            "\0",
            "\n",
            " ",
            "{",
            "}",
            ",",
            "=",
            "\"",
            "\\",
            "\\\"",
            "\\n",
            "#",
            "# TYPE ",
            "# HELP ",
            " counter\n",
            " histogram\n",
            " gauge\n",
            " summary\n",
            "NaN",
            "+Inf",
            "-Inf",
            "1e309",
            "-1",
            "_bucket",
            "_count",
            "_sum",
            "le=\"+Inf\"",
            "le=\"0.5\"",
            "version=\"canary\"",
            "version=\"stable\"",
            "code=\"500\"",
            "job=\"checkout\"",
            "http_requests_total",
            "http_request_duration_seconds",
            " 1700000000000",
            "\u{feff}",
            "é",
        ],
        "haproxy_answer" => &[
            "\n",
            "\n\n",
            " ",
            "(initial ",
            ")",
            "No such server.",
            "0x55f45a2d2c80 ",
            "1 () acl 'req.hdr' file 'haproxy.cfg' line 13.",
            "0 (/etc/haproxy/checkout-canary.acl) pattern loaded from file '/etc/haproxy/checkout-canary.acl' used by acl at file 'haproxy.cfg' line 13.",
            "Unknown ACL identifier.",
            "4294967295",
            "4294967296",
            "-1",
            "0",
            "256",
            "\r",
            "\0",
        ],
        "nginx_upstream" => &[
            "upstream",
            " checkout ",
            "{",
            "}",
            ";",
            "server",
            " 127.0.0.1:8081",
            " 127.0.0.1:8080",
            " weight=",
            "4294967295",
            "4294967296",
            "0",
            " down",
            " backup",
            "#",
            "\n",
        ],
        _ => &[
            "%", " ", "\n", "100", "101", "255", "256", "-0", "+1", "0", "\u{a0}",
        ],
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a seed");
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{} holds no seeds", dir.display());
    seeds
}

/// One mutation of `input`, in place.
fn mutate(
    rng: &mut ChaCha8Rng,
    input: &mut Vec<u8>,
    seeds: &[(PathBuf, Vec<u8>)],
    tokens: &[&str],
) {
    let len = input.len();
    match rng.random_range(0..9) {
        0 if len > 0 => {
            let at = rng.random_range(0..len);
            input[at] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let at = rng.random_range(0..len);
            input[at] = rng.random();
        }
        2 if len > 0 => {
            let start = rng.random_range(0..len);
            let end = (start + rng.random_range(1..=16)).min(len);
            input.drain(start..end);
        }
        3 if len > 0 => {
            let start = rng.random_range(0..len);
            let end = (start + rng.random_range(1..=64)).min(len);
            let copy = input[start..end].to_vec();
            let at = rng.random_range(0..=len);
            input.splice(at..at, copy);
        }
        4 => {
            let (_, other) = &seeds[rng.random_range(0..seeds.len())];
            if !other.is_empty() {
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
        }
        5..=7 => {
            let token = tokens[rng.random_range(0..tokens.len())].as_bytes();
            let at = rng.random_range(0..=len);
            if rng.random_bool(0.5) || len == 0 {
                input.splice(at..at, token.iter().copied());
            } else {
                let end = (at + token.len()).min(len);
                input.splice(at..end, token.iter().copied());
            }
        }
        _ => {
            // Replace a run of digits with another number: the values parsers choke on.
            let digits: Vec<usize> = (0..len).filter(|&i| input[i].is_ascii_digit()).collect();
            if let Some(&at) = digits.get(rng.random_range(0..digits.len().max(1))) {
                let mut end = at;
                while end < len && input[end].is_ascii_digit() {
                    end += 1;
                }
                let number = match rng.random_range(0..4) {
                    0 => rng.random::<u64>().to_string(),
                    1 => rng.random_range(0..1000u32).to_string(),
                    2 => format!(
                        "{}",
                        rng.random::<f64>() * 10f64.powi(rng.random_range(-30..30))
                    ),
                    _ => "0".to_owned(),
                };
                input.splice(at..end, number.bytes());
            }
        }
    }
}

fn run_one(target: &str, body: canary_fuzz::Target, input: &[u8], what: &str) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| body(input))).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    std::fs::create_dir_all(&dir).expect("the failures directory");
    let path = dir.join(format!("{target}-{:016x}", fnv(input)));
    std::fs::write(&path, input).expect("the failing input");
    panic!(
        "fuzz target {target} failed on {what} (see the panic above); the input is in {}\n\
         replay: cargo +nightly fuzz run --fuzz-dir tests/fuzz --features libfuzzer {target} {}\n\
         input: {:?}",
        path.display(),
        path.display(),
        String::from_utf8_lossy(&input[..input.len().min(2000)])
    );
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn smoke(target: &str) {
    let body = canary_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("a listed target");
    let seeds = seeds(target);
    for (path, bytes) in &seeds {
        run_one(target, body, bytes, &format!("seed {}", path.display()));
    }
    let runs = std::env::var("CANARY_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RUNS);
    let tokens = dictionary(target);
    let mut rng = ChaCha8Rng::seed_from_u64(fnv(target.as_bytes()));
    let started = Instant::now();
    for run in 0..runs {
        let mut input = seeds[rng.random_range(0..seeds.len())].1.clone();
        for _ in 0..rng.random_range(1..=6) {
            mutate(&mut rng, &mut input, &seeds, tokens);
        }
        run_one(target, body, &input, &format!("mutated input {run}"));
    }
    eprintln!(
        "{target}: {} seeds and {runs} mutated inputs in {:.2?}",
        seeds.len(),
        started.elapsed()
    );
}

#[test]
fn every_target_has_a_test_here() {
    let source = include_str!("smoke.rs");
    for (name, _) in canary_fuzz::TARGETS {
        assert!(
            source.contains(&format!("fn {name}()")),
            "no smoke test for {name}"
        );
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz_targets")
                .join(format!("{name}.rs"))
                .exists(),
            "no cargo-fuzz binary for {name}"
        );
    }
}

#[test]
fn policy_yaml() {
    smoke("policy_yaml");
}

#[test]
fn recording() {
    smoke("recording");
}

#[test]
fn rollout_state() {
    smoke("rollout_state");
}

#[test]
fn control_request() {
    smoke("control_request");
}

#[test]
fn prometheus_answer() {
    smoke("prometheus_answer");
}

#[test]
fn generic_answer() {
    smoke("generic_answer");
}

#[test]
fn datadog_answer() {
    smoke("datadog_answer");
}

#[test]
fn cloudwatch_answer() {
    smoke("cloudwatch_answer");
}

#[test]
fn exposition_page() {
    smoke("exposition_page");
}

#[test]
fn haproxy_answer() {
    smoke("haproxy_answer");
}

#[test]
fn nginx_upstream() {
    smoke("nginx_upstream");
}

#[test]
fn command_output() {
    smoke("command_output");
}
