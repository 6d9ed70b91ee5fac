//! How the scalar values of a policy are read: fractions, durations, latency bounds and
//! quantiles. Each reader says, when it refuses, what it expected, with an example.

use std::time::Duration;

use super::raw::RawScalar;

pub(crate) const FRACTION_EXPECTED: &str = "expected a percentage like \"1%\" or 0.01";
pub(crate) const DURATION_EXPECTED: &str =
    "expected a duration like \"30s\", \"10m\" or \"1h 30m\"";
pub(crate) const LATENCY_EXPECTED: &str = "expected a latency like \"500ms\" or \"1s\"";
pub(crate) const QUANTILE_EXPECTED: &str = "expected a quantile like 0.95 or \"p95\"";
pub(crate) const NUMBER_EXPECTED: &str = "expected a number like 0 or 2.5";
pub(crate) const SIZE_EXPECTED: &str =
    "expected a size like \"32MiB\", \"512KiB\" or \"1GiB\", or a number of bytes";

/// `0.01`, `"1%"`, `"0.1 %"` → 0.01, 0.01, 0.001. Numbers above 1 are refused with a hint,
/// because `alpha: 5` almost certainly meant 5 %.
pub(crate) fn fraction(scalar: &RawScalar) -> Result<f64, String> {
    let value = match scalar {
        RawScalar::Number(x) => {
            if *x > 1.0 {
                return Err(format!(
                    "{FRACTION_EXPECTED}; {x} is more than 1 (did you mean \"{x}%\"?)"
                ));
            }
            *x
        }
        RawScalar::Text(text) => {
            let Some(number) = text.trim().strip_suffix('%') else {
                return Err(format!("{FRACTION_EXPECTED}, not {text:?}"));
            };
            match number.trim().parse::<f64>() {
                Ok(percent) => percent / 100.0,
                Err(_) => return Err(format!("{FRACTION_EXPECTED}, not {text:?}")),
            }
        }
    };
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{FRACTION_EXPECTED}; it must be 0 or more"));
    }
    Ok(value)
}

/// `"30s"`, `"10m"`, `"1h 30m"` (humantime). Bare numbers are refused: is `30` seconds or
/// minutes? The file should say.
pub(crate) fn duration(scalar: &RawScalar) -> Result<Duration, String> {
    match scalar {
        RawScalar::Text(text) => humantime::parse_duration(text.trim())
            .map_err(|err| format!("{DURATION_EXPECTED}, not {text:?} ({err})")),
        RawScalar::Number(x) => Err(format!(
            "{DURATION_EXPECTED}; a bare number ({x}) has no unit"
        )),
    }
}

/// `"32MiB"`, `"512 KiB"`, `"1GiB"`, `"100MB"`, `"2048B"` or a whole number of bytes. KiB, MiB
/// and GiB are powers of 1024; kB, MB and GB powers of 1000.
pub(crate) fn size_bytes(scalar: &RawScalar) -> Result<u64, String> {
    let bytes = match scalar {
        RawScalar::Number(x) if x.fract() == 0.0 && *x >= 0.0 => *x,
        RawScalar::Number(x) => return Err(format!("{SIZE_EXPECTED}, not {x}")),
        RawScalar::Text(text) => {
            let trimmed = text.trim();
            let split = trimmed
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(trimmed.len());
            let (number, unit) = trimmed.split_at(split);
            let factor: f64 = match unit.trim() {
                "" | "B" => 1.0,
                "kB" | "KB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => return Err(format!("{SIZE_EXPECTED}, not {text:?}")),
            };
            let number: f64 = number
                .parse()
                .map_err(|_| format!("{SIZE_EXPECTED}, not {text:?}"))?;
            (number * factor).round()
        }
    };
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{SIZE_EXPECTED}; this one is too large"));
    }
    Ok(bytes as u64)
}

/// A size as people read it: `32 MiB`, `512 KiB`, `100 bytes`.
pub fn size_as_written(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b if b >= MIB => format!("{:.1} MiB", b as f64 / MIB as f64),
        b => format!("{b} bytes"),
    }
}

/// A duration as people write it in policies and read it in messages: `5s`, `250ms`,
/// `1.500s`.
pub fn duration_as_written(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// A latency bound in seconds: `"500ms"`, `"1s"`. A bare number is refused, like a bare
/// duration: `max: 300` would be 300 seconds where the writer almost certainly meant 300 ms.
/// The hint guesses milliseconds from 1 up and seconds below (`0.5` → `500ms`).
pub(crate) fn latency_seconds(scalar: &RawScalar) -> Result<f64, String> {
    let seconds = match scalar {
        RawScalar::Number(x) => {
            let guess = if *x >= 1.0 {
                format!("{x}ms")
            } else {
                format!("{}ms", x * 1000.0)
            };
            return Err(format!(
                "{LATENCY_EXPECTED}; a bare number ({x}) has no unit (did you mean \"{guess}\"?)"
            ));
        }
        RawScalar::Text(text) => humantime::parse_duration(text.trim())
            .map_err(|_| format!("{LATENCY_EXPECTED}, not {text:?}"))?
            .as_secs_f64(),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("{LATENCY_EXPECTED}; it must be more than 0"));
    }
    Ok(seconds)
}

/// `0.95`, `"p95"`, `"p99.9"`, `"95%"` → a quantile strictly between 0 and 1.
pub(crate) fn quantile(scalar: &RawScalar) -> Result<f64, String> {
    let q = match scalar {
        RawScalar::Number(x) => *x,
        RawScalar::Text(text) => {
            let text = text.trim();
            let percent = text
                .strip_prefix('p')
                .or_else(|| text.strip_suffix('%'))
                .ok_or_else(|| format!("{QUANTILE_EXPECTED}, not {text:?}"))?;
            percent
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{QUANTILE_EXPECTED}, not {text:?}"))?
                / 100.0
        }
    };
    if !(q > 0.0 && q < 1.0) {
        return Err(format!(
            "{QUANTILE_EXPECTED}; it must be strictly between 0 and 1"
        ));
    }
    Ok(q)
}

/// A plain finite number.
pub(crate) fn number(scalar: &RawScalar) -> Result<f64, String> {
    match scalar {
        RawScalar::Number(x) if x.is_finite() => Ok(*x),
        RawScalar::Number(x) => Err(format!("{NUMBER_EXPECTED}, not {x}")),
        RawScalar::Text(text) => Err(format!("{NUMBER_EXPECTED}, not {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> RawScalar {
        RawScalar::Text(s.to_owned())
    }

    #[test]
    fn fractions_read_percent_strings_and_plain_numbers() {
        assert_eq!(fraction(&text("1%")).unwrap(), 0.01);
        assert_eq!(fraction(&text(" 0.1 %")).unwrap(), 0.001);
        assert_eq!(fraction(&RawScalar::Number(0.05)).unwrap(), 0.05);
        assert!(
            fraction(&RawScalar::Number(5.0))
                .unwrap_err()
                .contains("did you mean")
        );
        assert!(fraction(&text("five")).is_err());
        assert!(fraction(&text("-1%")).is_err());
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(duration(&text("1m 30s")).unwrap(), Duration::from_secs(90));
        assert!(
            duration(&RawScalar::Number(30.0))
                .unwrap_err()
                .contains("no unit")
        );
        assert!(duration(&text("10q")).is_err());
    }

    #[test]
    fn latencies_are_seconds() {
        assert_eq!(latency_seconds(&text("500ms")).unwrap(), 0.5);
        assert_eq!(latency_seconds(&text("1500ms")).unwrap(), 1.5);
        assert!(latency_seconds(&text("0s")).is_err());
        // A bare number has no unit: refused, with the likely meaning as a hint.
        let err = latency_seconds(&RawScalar::Number(300.0)).unwrap_err();
        assert!(err.contains("did you mean \"300ms\"?"), "{err}");
        let err = latency_seconds(&RawScalar::Number(0.5)).unwrap_err();
        assert!(err.contains("did you mean \"500ms\"?"), "{err}");
    }

    #[test]
    fn quantiles_read_p_notation() {
        assert_eq!(quantile(&text("p95")).unwrap(), 0.95);
        assert!((quantile(&text("p99.9")).unwrap() - 0.999).abs() < 1e-12);
        assert_eq!(quantile(&RawScalar::Number(0.5)).unwrap(), 0.5);
        assert!(quantile(&RawScalar::Number(1.0)).is_err());
        assert!(quantile(&text("median")).is_err());
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(duration_as_written(Duration::from_secs(5)), "5s");
        assert_eq!(duration_as_written(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_as_written(Duration::from_millis(1500)), "1.500s");
    }
}
