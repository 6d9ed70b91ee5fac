//! Helpers shared by the golden tests (the `golden_*` modules of the core test binary).

#![allow(dead_code)]

/// Tracks the largest deviation seen, so each test prints it (`--nocapture`) and fails with
/// every offending case listed rather than only the first.
pub(crate) struct Deviations {
    what: &'static str,
    max_abs: f64,
    max_rel: f64,
    compared: usize,
    failures: Vec<String>,
}

impl Deviations {
    pub(crate) fn new(what: &'static str) -> Self {
        Deviations {
            what,
            max_abs: 0.0,
            max_rel: 0.0,
            compared: 0,
            failures: Vec::new(),
        }
    }

    /// |actual − expected| ≤ tolerance · max(|expected|, floor). Infinities and NaN must match
    /// exactly.
    pub(crate) fn relative(
        &mut self,
        context: &str,
        actual: f64,
        expected: f64,
        tolerance: f64,
        floor: f64,
    ) {
        if let Some((abs, rel)) = self.deviation(context, actual, expected, floor) {
            if rel > tolerance {
                self.failures.push(format!(
                    "{context}: {actual} vs {expected} (relative {rel:.3e} > {tolerance:e})"
                ));
            }
            self.max_abs = self.max_abs.max(abs);
        }
    }

    /// |actual − expected| ≤ tolerance. Infinities and NaN must match exactly.
    pub(crate) fn absolute(&mut self, context: &str, actual: f64, expected: f64, tolerance: f64) {
        if let Some((abs, _)) = self.deviation(context, actual, expected, 1.0) {
            if abs > tolerance {
                self.failures.push(format!(
                    "{context}: {actual} vs {expected} (absolute {abs:.3e} > {tolerance:e})"
                ));
            }
            self.max_abs = self.max_abs.max(abs);
        }
    }

    /// The two values must be the same float (NaN matching NaN).
    pub(crate) fn identical(&mut self, context: &str, actual: f64, expected: f64) {
        self.compared += 1;
        let same = (actual.is_nan() && expected.is_nan()) || actual.to_bits() == expected.to_bits();
        if !same {
            self.failures.push(format!(
                "{context}: {actual:?} vs {expected:?} (not identical)"
            ));
        }
        if actual.is_finite() && expected.is_finite() {
            self.max_abs = self.max_abs.max((actual - expected).abs());
        }
    }

    fn deviation(
        &mut self,
        context: &str,
        actual: f64,
        expected: f64,
        floor: f64,
    ) -> Option<(f64, f64)> {
        self.compared += 1;
        if !expected.is_finite() || !actual.is_finite() {
            let same = (expected.is_nan() && actual.is_nan()) || expected == actual;
            if !same {
                self.failures
                    .push(format!("{context}: {actual} vs {expected}"));
            }
            return None;
        }
        let abs = (actual - expected).abs();
        let rel = abs / expected.abs().max(floor);
        self.max_rel = self.max_rel.max(rel);
        Some((abs, rel))
    }

    /// Prints the largest deviations and panics if any comparison failed.
    pub(crate) fn finish(self) {
        println!(
            "{}: {} comparisons, max absolute deviation {:.3e}, max relative deviation {:.3e}",
            self.what, self.compared, self.max_abs, self.max_rel
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} comparisons failed:\n{}",
            self.failures.len(),
            self.compared,
            self.failures.join("\n")
        );
    }
}
