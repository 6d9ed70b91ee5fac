//! The tables of `docs/statistics.md`'s "Generic samples" section: A/A false-failure rates
//! (with Wilson 95 % intervals) and detection of real regressions for the `samples`
//! criterion, from seeded simulations of the test alone, next to the Kayenta method
//! (`method: mann-whitney`, once per step) on the same series.
//!
//! ```text
//! cargo run --release -p canary-core --example samples_tables        # about a minute
//! ```

#[path = "../tests/core/samples_simulation/mod.rs"]
mod samples_simulation;

use canary_core::stats::autocorrelated_mean::DEFAULT_MAX_AUTOCORRELATION;
use canary_core::stats::wilson_interval;
use samples_simulation::{Common, Innovations, Method, Series, maxima, tally};

const AA_RUNS: u64 = 10_000;
const POWER_RUNS: u64 = 2_000;

fn percent(failed: u64, runs: u64) -> String {
    let (low, high) = wilson_interval(failed, runs, 0.95).expect("runs > 0");
    format!(
        "{:.2} % ({:.2}–{:.2})",
        100.0 * failed as f64 / runs as f64,
        100.0 * low,
        100.0 * high
    )
}

fn main() {
    let started = std::time::Instant::now();
    let kappa = DEFAULT_MAX_AUTOCORRELATION;
    let with = |f: &dyn Fn(&mut Series)| {
        let mut s = Series::aa(0.0);
        f(&mut s);
        s
    };
    let within: Vec<(&str, Series, f64)> = vec![
        ("AR(1) φ = 0 (independent)", with(&|s| s.phi = 0.0), 0.0),
        ("AR(1) φ = 0.5", with(&|s| s.phi = 0.5), 0.0),
        ("AR(1) φ = 0.9", with(&|s| s.phi = 0.9), 0.0),
        (
            "φ = 0.9, common trend (+5 sd over the run)",
            with(&|s| {
                s.phi = 0.9;
                s.common = Common::Trend
            }),
            0.0,
        ),
        (
            "φ = 0.9, common step (+3 sd at a random tick)",
            with(&|s| {
                s.phi = 0.9;
                s.common = Common::Step
            }),
            0.0,
        ),
        (
            "φ = 0.5, canary 30 % / baseline 10 % of ticks missing",
            with(&|s| {
                s.phi = 0.5;
                s.canary_missing = 0.3;
                s.baseline_missing = 0.1
            }),
            0.0,
        ),
        (
            "φ = 0.9, 360 ticks",
            with(&|s| {
                s.phi = 0.9;
                s.ticks = 360
            }),
            0.0,
        ),
        (
            "canary at its allowance: `max-increase: 10%`, canary ×1.1, φ = 0.5",
            with(&|s| {
                s.phi = 0.5;
                s.scale_canary = 0.1
            }),
            0.1,
        ),
        (
            "φ = 0.9, heavy tails (Student t, 3 d.f.)",
            with(&|s| {
                s.phi = 0.9;
                s.innovations = Innovations::StudentT3
            }),
            0.0,
        ),
        (
            "φ = 0.9 plus as much white measurement noise",
            with(&|s| {
                s.phi = 0.9;
                s.white_share = 0.5
            }),
            0.0,
        ),
    ];
    let beyond: Vec<(&str, Series, f64)> = vec![
        ("φ = 0.95", with(&|s| s.phi = 0.95), 0.0),
        (
            "φ = 0.95, 360 ticks",
            with(&|s| {
                s.phi = 0.95;
                s.ticks = 360
            }),
            0.0,
        ),
        ("φ = 0.99", with(&|s| s.phi = 0.99), 0.0),
        (
            "φ = 0.95 plus as much white noise, 360 ticks",
            with(&|s| {
                s.phi = 0.95;
                s.white_share = 0.5;
                s.ticks = 360
            }),
            0.0,
        ),
    ];
    println!(
        "A/A: healthy canaries, {AA_RUNS} seeded runs per row, 90 ticks (three steps of 30) unless said; share of runs that ever failed, Wilson 95 % interval in parentheses.\n"
    );
    println!(
        "| series (both versions) | canary, α = 1 % | canary, α = 5 % | Mann–Whitney per step, α = 1 % | Mann–Whitney per step, α = 5 % |"
    );
    println!("|---|---|---|---|---|");
    for (index, (name, series, max_increase)) in within.iter().chain(&beyond).enumerate() {
        if index == within.len() {
            println!("| *beyond the assumption (κ = {kappa}):* | | | | |");
        }
        let seed = 0x7ab1_e500 + index as u64;
        let m = maxima(series, kappa, *max_increase, AA_RUNS, seed);
        let count = |alpha: f64| m.iter().filter(|&&x| x >= (1.0 / alpha).ln()).count() as u64;
        let mw = |alpha: f64| {
            tally(
                series,
                Method::MannWhitney {
                    steps: series.ticks / 30,
                },
                *max_increase,
                alpha,
                AA_RUNS,
                seed,
            )
            .failed
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            percent(count(0.01), AA_RUNS),
            percent(count(0.05), AA_RUNS),
            percent(mw(0.01), AA_RUNS),
            percent(mw(0.05), AA_RUNS)
        );
    }
    println!("\nOther `max-autocorrelation` values (κ), A/A, {AA_RUNS} runs per row, α = 1 %.\n");
    println!("| κ | series | canary, α = 1 % |");
    println!("|---|---|---|");
    for (index, (kappa, phi, ticks)) in [
        (0.0, 0.0, 90),
        (0.0, 0.5, 90),
        (0.99, 0.99, 90),
        (0.99, 0.99, 360),
    ]
    .into_iter()
    .enumerate()
    {
        let mut series = Series::aa(phi);
        series.ticks = ticks;
        let m = maxima(&series, kappa, 0.0, AA_RUNS, 0x6a99_a000 + index as u64);
        let failed = m.iter().filter(|&&x| x >= 100f64.ln()).count() as u64;
        println!(
            "| {kappa} | AR(1) φ = {phi}, {ticks} ticks | {} |",
            percent(failed, AA_RUNS)
        );
    }
    println!(
        "\nDetection: canary shifted by the given number of standard deviations of one version's noise (the level is 10 sd: +2 sd is +20 %), `max-increase: 0%`, α = 1 %, {POWER_RUNS} runs per cell; share caught within 90 ticks and the median tick of detection.\n"
    );
    let shifts = [1.0, 2.0, 4.0, 8.0, 16.0];
    print!("| κ | each version's AR(1) φ |");
    for shift in shifts {
        print!(" +{shift} sd |");
    }
    println!();
    println!("|---|---|{}", "---|".repeat(shifts.len()));
    for (row, (kappa, phi)) in [
        (kappa, 0.0),
        (kappa, 0.5),
        (kappa, 0.9),
        (0.0, 0.0),
        (0.99, 0.0),
        (0.99, 0.5),
        (0.99, 0.9),
    ]
    .into_iter()
    .enumerate()
    {
        print!("| {kappa} | {phi} |");
        for (col, shift) in shifts.into_iter().enumerate() {
            let mut series = Series::aa(phi);
            series.shift = shift;
            let t = tally(
                &series,
                Method::Sequential {
                    max_autocorrelation: kappa,
                },
                0.0,
                0.01,
                POWER_RUNS,
                0x0d37_ec70 + (row * 10 + col) as u64,
            );
            match t.median_tick() {
                Some(median) => print!(" {:.0} %, tick {median} |", 100.0 * t.rate()),
                None => print!(" 0 % |"),
            }
        }
        println!();
    }
    eprintln!("took {:.1?}", started.elapsed());
}
