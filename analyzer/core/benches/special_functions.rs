//! canary's special functions against statrs': accuracy at the arguments canary meets
//! (against mpmath at 50 digits, `special_functions.json`, made by
//! `special_functions_mpmath.py`), then speed (criterion). It is the measurement behind the
//! choice of which routines `stats::special` and `stats::normal` keep hand-written
//! (`docs/benchmarks.md`, "Special functions: canary or statrs").
//!
//! ```text
//! cargo bench -p canary-core --bench special_functions
//! ```

use std::hint::black_box;

use canary_core::stats::{normal, special};
use criterion::{Criterion, criterion_group, criterion_main};
use statrs::distribution::{Binomial, ContinuousCDF, Discrete, Hypergeometric, Normal};

type Cases = std::collections::BTreeMap<String, Vec<Vec<f64>>>;

fn cases() -> Cases {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/special_functions.json"
    );
    let text = std::fs::read_to_string(path).expect("the reference values");
    serde_json::from_str(&text).expect("reference values in JSON")
}

/// Error against the reference, relative to it (absolute below 1, where the functions that
/// are logarithms cross zero).
fn error(actual: f64, reference: f64) -> f64 {
    if actual == reference {
        return 0.0;
    }
    (actual - reference).abs() / reference.abs().max(1.0)
}

/// Relative error for probabilities, which are never compared across zero.
fn relative(actual: f64, reference: f64) -> f64 {
    if actual == reference {
        return 0.0;
    }
    (actual - reference).abs() / reference.abs()
}

type Function = Box<dyn Fn(&[f64]) -> f64>;

/// A function's name, canary's and statrs' versions, and how their error is measured.
type Row = (&'static str, Function, Function, fn(f64, f64) -> f64);

fn accuracy(cases: &Cases) {
    let standard = Normal::standard();
    let rows: Vec<Row> = vec![
        (
            "ln_gamma",
            Box::new(|a| special::ln_gamma(a[0])),
            Box::new(|a| statrs::function::gamma::ln_gamma(a[0])),
            error,
        ),
        (
            "ln_beta",
            Box::new(|a| special::ln_beta(a[0], a[1])),
            Box::new(|a| statrs::function::beta::ln_beta(a[0], a[1])),
            error,
        ),
        (
            "normal_cdf",
            Box::new(|a| normal::normal_cdf(a[0])),
            Box::new(move |a| standard.cdf(a[0])),
            relative,
        ),
        (
            "normal_sf",
            Box::new(|a| normal::normal_sf(a[0])),
            Box::new(move |a| standard.sf(a[0])),
            relative,
        ),
        (
            "normal_quantile",
            Box::new(|a| normal::normal_quantile(a[0])),
            Box::new(move |a| standard.inverse_cdf(a[0])),
            error,
        ),
        (
            "ln_binomial_pmf",
            Box::new(|a| special::ln_binomial_pmf(a[0], a[1], a[2], 1.0 - a[2])),
            Box::new(|a| {
                Binomial::new(a[2], a[1] as u64)
                    .expect("valid")
                    .ln_pmf(a[0] as u64)
            }),
            error,
        ),
        (
            "ln_hypergeometric_pmf",
            Box::new(|a| special::ln_hypergeometric_pmf(a[0], a[1], a[2], a[3])),
            Box::new(|a| {
                Hypergeometric::new((a[1] + a[2]) as u64, a[1] as u64, a[3] as u64)
                    .expect("valid")
                    .ln_pmf(a[0] as u64)
            }),
            error,
        ),
    ];
    println!(
        "accuracy against mpmath (largest error over the cases; relative, absolute below 1 for logarithms)"
    );
    println!("| function | cases | canary | statrs 0.19 | statrs' worst case |");
    println!("|---|---|---|---|---|");
    for (name, ours, theirs, measure) in rows {
        let mut worst = (0.0_f64, 0.0_f64, Vec::new());
        for case in &cases[name] {
            let (args, reference) = case.split_at(case.len() - 1);
            let reference = reference[0];
            let a = measure(ours(args), reference);
            let b = measure(theirs(args), reference);
            worst.0 = worst.0.max(a);
            if b >= worst.1 {
                worst.1 = b;
                worst.2 = args.to_vec();
            }
        }
        println!(
            "| {name} | {} | {:.1e} | {:.1e} | {:?} |",
            cases[name].len(),
            worst.0,
            worst.1,
            worst.2
        );
    }
}

fn speed(c: &mut Criterion) {
    accuracy(&cases());
    let standard = Normal::standard();
    let mut group = c.benchmark_group("special functions");
    group.bench_function("canary ln_beta(45.5, 4455.5)", |b| {
        b.iter(|| special::ln_beta(black_box(45.5), black_box(4455.5)))
    });
    group.bench_function("statrs ln_beta(45.5, 4455.5)", |b| {
        b.iter(|| statrs::function::beta::ln_beta(black_box(45.5), black_box(4455.5)))
    });
    group.bench_function("canary ln_gamma(7.3)", |b| {
        b.iter(|| special::ln_gamma(black_box(7.3)))
    });
    group.bench_function("statrs ln_gamma(7.3)", |b| {
        b.iter(|| statrs::function::gamma::ln_gamma(black_box(7.3)))
    });
    group.bench_function("canary normal_sf(2.3)", |b| {
        b.iter(|| normal::normal_sf(black_box(2.3)))
    });
    group.bench_function("statrs Normal::sf(2.3)", |b| {
        b.iter(|| standard.sf(black_box(2.3)))
    });
    group.bench_function("canary normal_quantile(0.995)", |b| {
        b.iter(|| normal::normal_quantile(black_box(0.995)))
    });
    group.bench_function("statrs Normal::inverse_cdf(0.995)", |b| {
        b.iter(|| standard.inverse_cdf(black_box(0.995)))
    });
    group.bench_function("canary ln_hypergeometric_pmf(50; 1000, 9000, 500)", |b| {
        b.iter(|| {
            special::ln_hypergeometric_pmf(
                black_box(50.0),
                black_box(1000.0),
                black_box(9000.0),
                black_box(500.0),
            )
        })
    });
    let hypergeometric = Hypergeometric::new(10_000, 1000, 500).expect("valid");
    group.bench_function("statrs Hypergeometric::ln_pmf(50; 1000, 9000, 500)", |b| {
        b.iter(|| hypergeometric.ln_pmf(black_box(50)))
    });
    group.finish();
}

criterion_group!(benches, speed);
criterion_main!(benches);
