//! Per-interval samples (what `samples` checks read: CPU seconds per request, memory per
//! pod) as the simulated world draws them. Each version's value is the traffic's mean plus
//! its own noise; with a correlation time τ the noise is an Ornstein–Uhlenbeck process, so two
//! samples Δt apart have correlation e^(−Δt/τ) — an AR(1) series at a fixed interval, as
//! CPU or memory read every interval are — and with τ = 0 each sample is independent.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::scenario::Traffic;

/// Each version's noise, in standard deviations, and when it was last drawn.
#[derive(Clone, Debug, Default)]
pub(crate) struct SampleNoise {
    canary: Option<f64>,
    baseline: Option<f64>,
    /// Seconds since the start at the last draw.
    last_at: Option<f64>,
}

impl SampleNoise {
    /// Both versions' samples at `at` seconds since the start (before the canary's shift).
    pub(crate) fn draw(&mut self, rng: &mut ChaCha8Rng, traffic: &Traffic, at: f64) -> (f64, f64) {
        let tau = traffic.sample_correlation_seconds;
        let correlation = match self.last_at {
            Some(last) if tau > 0.0 => (-(at - last).max(0.0) / tau).exp(),
            _ => 0.0,
        };
        let fresh = (1.0 - correlation * correlation).sqrt();
        let step = |state: &mut Option<f64>, rng: &mut ChaCha8Rng| {
            let innovation: f64 = StandardNormal.sample(rng);
            let next = match *state {
                Some(previous) => correlation * previous + fresh * innovation,
                None => innovation,
            };
            *state = Some(next);
            next
        };
        let canary = step(&mut self.canary, rng);
        let baseline = step(&mut self.baseline, rng);
        self.last_at = Some(at);
        let sd = traffic.sample_sd.max(0.0);
        (
            traffic.sample_mean + sd * canary,
            traffic.sample_mean + sd * baseline,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn lag_one_correlation(tau: f64, interval: f64) -> f64 {
        let traffic = Traffic {
            sample_correlation_seconds: tau,
            ..Traffic::constant(10.0, 0.01)
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut noise = SampleNoise::default();
        let xs: Vec<f64> = (0..20_000)
            .map(|k| noise.draw(&mut rng, &traffic, k as f64 * interval).0)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        let cov = xs
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>();
        cov / var
    }

    #[test]
    fn samples_are_as_autocorrelated_as_the_correlation_time_says() {
        assert!(lag_one_correlation(0.0, 30.0).abs() < 0.03);
        let phi = lag_one_correlation(30.0 / (1.0f64 / 0.9).ln(), 30.0);
        assert!((phi - 0.9).abs() < 0.02, "{phi}");
    }
}
