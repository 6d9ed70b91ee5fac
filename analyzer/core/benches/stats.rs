//! How fast canary's statistics are: the rate-ratio e-value (one tick's update, the e-value,
//! the anytime-valid lower bound), the beta-binomial confidence sequence, Prometheus'
//! `histogram_quantile`, the Wilson interval, and the Mann–Whitney U test and Hodges–Lehmann
//! interval on samples of 50, 500 and 5000 — the same data `mann_whitney_scipy.py` times
//! scipy on (see docs/benchmarks.md).
//!
//! ```text
//! cargo bench -p canary-core --bench stats
//! ```

use std::hint::black_box;

use canary_core::stats::rate_ratio::{EventCounts, RateRatioTest};
use canary_core::stats::{
    Alternative, Bucket, binomial_cs, histogram_quantile, hodges_lehmann, mann_whitney_u,
    wilson_interval,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// The samples both this bench and `mann_whitney_scipy.py` use: a 64-bit LCG (Knuth's MMIX
/// constants), 53-bit uniforms in [0, 1); `y` is shifted by −0.02.
fn samples(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let x: Vec<f64> = (0..n).map(|_| next()).collect();
    let y: Vec<f64> = (0..n).map(|_| next() - 0.02).collect();
    (x, y)
}

fn rate_ratio(c: &mut Criterion) {
    let test = RateRatioTest::new(0.0).expect("a valid test");
    let mut state = test.start();
    for _ in 0..30 {
        test.update(
            &mut state,
            EventCounts::new(150, 2),
            EventCounts::new(1350, 14),
        )
        .expect("valid counts");
    }
    c.bench_function("rate_ratio/update one tick", |b| {
        b.iter_batched_ref(
            || state.clone(),
            |s| {
                test.update(s, EventCounts::new(150, 3), EventCounts::new(1350, 13))
                    .expect("valid counts")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("rate_ratio/e_value", |b| {
        b.iter(|| test.e_value(black_box(&state)))
    });
    c.bench_function("rate_ratio/lower_bound", |b| {
        b.iter(|| test.lower_bound(black_box(&state), 0.005))
    });
}

fn confidence_sequences(c: &mut Criterion) {
    c.bench_function("binomial_cs/interval (45 of 4500)", |b| {
        b.iter(|| binomial_cs::interval(black_box(45), black_box(4500), 0.005))
    });
    c.bench_function("wilson_interval", |b| {
        b.iter(|| wilson_interval(black_box(5), black_box(2000), 0.95))
    });
}

fn histograms(c: &mut Criterion) {
    let bounds = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let mut buckets: Vec<Bucket> = bounds
        .iter()
        .enumerate()
        .map(|(i, &le)| Bucket::new(le, (100 * (i + 1) * (i + 1)) as f64))
        .collect();
    buckets.push(Bucket::new(f64::INFINITY, 15_000.0));
    c.bench_function("histogram_quantile (12 buckets)", |b| {
        b.iter(|| histogram_quantile(black_box(0.95), black_box(&buckets)))
    });
}

fn mann_whitney(c: &mut Criterion) {
    let mut group = c.benchmark_group("mann_whitney_u");
    for n in [50, 500, 5000] {
        let (x, y) = samples(n, 42);
        let result = mann_whitney_u(&x, &y, Alternative::Greater).expect("a test");
        // Printed to compare with mann_whitney_scipy.py's output on the same data.
        eprintln!("n = {n}: U = {:.1}, p = {:.6e}", result.u, result.p_value);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| mann_whitney_u(black_box(&x), black_box(&y), Alternative::Greater))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("hodges_lehmann 98%");
    for n in [50, 500] {
        let (x, y) = samples(n, 42);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| hodges_lehmann(black_box(&x), black_box(&y), 0.98, Alternative::TwoSided))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    rate_ratio,
    confidence_sequences,
    histograms,
    mann_whitney
);
criterion_main!(benches);
