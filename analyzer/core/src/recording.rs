//! Recorded data: the ticks an analysis read, saved so that it can be judged again offline.
//!
//! `canary analyze --record FILE` writes this format and `canary analyze --input FILE`
//! reads it; `docs/recording-format.md` documents it for people who produce it by other
//! means. It is JSON:
//!
//! ```json
//! { "format": "canary-recording/1", "service": "checkout",
//!   "started_at": "2026-11-22T10:00:00Z",
//!   "ticks": [ { "at": "2026-11-22T10:00:30Z", "window_seconds": 30,
//!                "readings": { "errors": { "reading": "observed", "kind": "counts",
//!                  "canary": { "requests": 120, "errors": 1 },
//!                  "baseline": { "requests": 1080, "errors": 9 } } } } ] }
//! ```
//!
//! Values are cumulative since `started_at`, as the sources produce them.

use serde::{Deserialize, Serialize};

use crate::observation::Tick;
use crate::{Error, Result};

/// The format tag this version reads and writes.
pub const FORMAT: &str = "canary-recording/1";

/// A recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Always [`FORMAT`].
    pub format: String,
    /// The service the data is about.
    pub service: String,
    /// When the analysed window starts; every tick's values are cumulative since then.
    pub started_at: jiff::Timestamp,
    /// Where the data came from (for people; not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The ticks, in time order.
    pub ticks: Vec<Tick>,
}

impl Recording {
    /// A new, empty recording.
    pub fn new(
        service: impl Into<String>,
        started_at: jiff::Timestamp,
        source: Option<String>,
    ) -> Self {
        Recording {
            format: FORMAT.to_owned(),
            service: service.into(),
            started_at,
            source,
            ticks: Vec::new(),
        }
    }

    /// Reads a recording from its JSON text; `origin` names the file in messages, which
    /// give the line, column and field path of what is wrong.
    pub fn from_json(text: &str, origin: &str) -> Result<Recording> {
        let fail = |message: String| Error::Recording {
            file: origin.to_owned(),
            message,
        };
        if text.trim().is_empty() {
            return Err(fail(
                "the file is empty; expected a canary recording (JSON)".to_owned(),
            ));
        }
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        let recording: Recording =
            serde_path_to_error::deserialize(deserializer).map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let line = inner.line();
                let column = inner.column();
                let mut message = inner.to_string();
                if let Some(at) = message.rfind(" at line ") {
                    message.truncate(at);
                }
                if path.is_empty() || path == "." {
                    fail(format!("{line}:{column}: {message}"))
                } else {
                    fail(format!("{line}:{column}: {path}: {message}"))
                }
            })?;
        if recording.format != FORMAT {
            return Err(fail(format!(
                "format: expected {FORMAT:?}, found {:?}",
                recording.format
            )));
        }
        for (i, pair) in recording.ticks.windows(2).enumerate() {
            if pair[1].at < pair[0].at {
                return Err(fail(format!(
                    "ticks[{}].at: ticks must be in time order ({} comes after {})",
                    i + 1,
                    pair[1].at,
                    pair[0].at
                )));
            }
        }
        for (i, tick) in recording.ticks.iter().enumerate() {
            if tick.at < recording.started_at {
                return Err(fail(format!(
                    "ticks[{i}].at: {} is before started_at {}",
                    tick.at, recording.started_at
                )));
            }
            if !tick.window_seconds.is_finite() || tick.window_seconds < 0.0 {
                return Err(fail(format!(
                    "ticks[{i}].window_seconds: expected a number of seconds of 0 or more"
                )));
            }
        }
        Ok(recording)
    }

    /// The recording as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
