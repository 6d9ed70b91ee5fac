//! `traffic`: how canary and baseline series are told apart (a label, its two values, and
//! an optional selector).

use super::*;

impl Validator {
    pub(super) fn traffic(&mut self, raw: &RawTraffic) -> Option<TrafficSelector> {
        let mut ok = true;
        if !is_label_name(&raw.label.value) {
            self.problem(
                "traffic.label",
                Some(&raw.label),
                format!(
                    "expected a Prometheus label name like `version`, not {:?}",
                    raw.label.value
                ),
            );
            ok = false;
        }
        for (field, value) in [("canary", &raw.canary), ("baseline", &raw.baseline)] {
            if value.value.is_empty() {
                self.problem(
                    format!("traffic.{field}"),
                    Some(value),
                    "the label value must not be empty",
                );
                ok = false;
            }
        }
        if raw.canary.value == raw.baseline.value {
            self.problem(
                "traffic.baseline",
                Some(&raw.baseline),
                format!(
                    "canary and baseline have the same label value {:?}; they must differ",
                    raw.canary.value
                ),
            );
            ok = false;
        }
        let matchers = match &raw.selector {
            None => Vec::new(),
            Some(selector) => match parse_matchers(&selector.value) {
                Ok(matchers) => {
                    if matchers.iter().any(|m| m.name == raw.label.value) {
                        self.problem(
                            "traffic.selector",
                            Some(selector),
                            format!(
                                "the selector must not match on `{}`: `traffic.canary` and `traffic.baseline` say that",
                                raw.label.value
                            ),
                        );
                        ok = false;
                    }
                    matchers
                }
                Err(message) => {
                    self.problem("traffic.selector", Some(selector), message);
                    return None;
                }
            },
        };
        ok.then(|| TrafficSelector {
            label: raw.label.value.clone(),
            canary: raw.canary.value.clone(),
            baseline: raw.baseline.value.clone(),
            matchers,
        })
    }
}
