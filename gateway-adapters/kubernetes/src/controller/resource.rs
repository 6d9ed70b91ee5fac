//! The `CanaryRollout` custom resource (`canary.dev/v1alpha1`): what `canary controller`
//! reconciles. Its spec is a policy — the same schema as a policy file, inline or in a
//! ConfigMap — and what is rolled out; its status is where the rollout stands, for
//! `kubectl get` and for `canary wait --kube`.
//!
//! The CRD is generated from these types (`canary controller crd`); the checked-in copy in
//! `examples/kubernetes/controller/crd.yaml` is compared with it by a test.
//!
//! The policy inside a resource is validated by the very validator of policy files
//! ([`Policy::from_yaml`]); its problems name the field path inside the resource
//! (`spec.policy.checks[0].slo.max: …`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use canary_core::policy::{Policy, PolicyError, Problem};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of canary's resources.
pub const GROUP: &str = "canary.dev";
/// The API version of `CanaryRollout`.
pub const VERSION: &str = "v1alpha1";
/// The default key of a policy held in a ConfigMap.
pub const DEFAULT_POLICY_KEY: &str = "policy.yaml";

/// A canary rollout that `canary controller` carries out: the policy that says how (steps,
/// checks, gateway), and what is rolled out. A new `revision` (or a new pod template of the
/// `targetRef` Deployment) starts a new rollout; the last one's state is archived.
// Each printer column says `type_ = "string"` again, which clippy takes for a repeat.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "canary.dev",
    version = "v1alpha1",
    kind = "CanaryRollout",
    namespaced,
    status = "CanaryRolloutStatus",
    shortname = "crollout",
    category = "canary",
    doc = "A progressive rollout judged by canary: a policy (the same schema as canary's policy files) and what is rolled out.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the rollout stands"
    ),
    printcolumn(
        name = "Step",
        type_ = "string",
        json_path = ".status.step",
        description = "The analysed step, e.g. 2/3"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.weight",
        description = "The canary's weight, in percent, as last set"
    ),
    printcolumn(
        name = "Revision",
        type_ = "string",
        json_path = ".status.revision",
        description = "What this rollout rolls out"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = "1",
        description = "Why it stands where it does, in one line"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRolloutSpec {
    /// The policy, inline: the same fields as a policy file (docs/policy-reference.md).
    /// Exactly one of `policy` and `policyFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub policy: Option<Value>,
    /// The policy, from a key of a ConfigMap in the resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_from: Option<PolicySource>,
    /// What is rolled out, e.g. the canary's image tag or a CI pipeline id: a new value
    /// starts a new rollout. Exactly one of `revision` and `targetRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The canary Deployment whose pod template is rolled out: a change of its template
    /// starts a new rollout (the revision is a digest of the template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
}

/// Where a policy is kept outside the resource.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySource {
    /// A ConfigMap key holding the policy's YAML.
    pub config_map_key_ref: ConfigMapKeyRef,
}

/// A key of a ConfigMap in the resource's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    pub name: String,
    /// The key (default `policy.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The workload whose pod template is rolled out.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// `Deployment` (the only kind followed).
    pub kind: String,
    /// Its name, in the resource's namespace.
    pub name: String,
}

/// Where a rollout stands: written by the controller only (the status subresource).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRolloutStatus {
    /// The resource's `metadata.generation` this status is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the rollout this status is about rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `Pending`, `Progressing`, `Paused`, `Promoted`, `RolledBack`, `Failed` or `Invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The rollout machine's own phase name (`starting`, `step`, `promoting`, `soak`,
    /// `finalizing`, `promoted`, `rolling-back`, `rolled-back`, `held`, `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_phase: Option<String>,
    /// The analysed step, `N/M` (1-based), while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The canary's weight, in percent, as last set and confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// The canary's weight as last read back from the gateway, when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_read_back: Option<u8>,
    /// Why the rollout stands where it does, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The exit code `canary wait` ends with, once the rollout has ended (0 promoted, 1
    /// rolled back, 3 inconclusive, 4 infrastructure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the rollout started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The ConfigMap holding the rollout's whole state (and its evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_config_map: Option<String>,
    /// Each criterion's latest verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub criteria: Vec<CriterionStatus>,
    /// `Progressing`, `Promoted`, `RolledBack`, `Paused` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One criterion's latest verdict.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CriterionStatus {
    /// `check/criterion`, e.g. `errors/slo`.
    pub name: String,
    /// `pass`, `fail`, `inconclusive`, `nodata` or `error`.
    pub verdict: String,
    /// Why, in plain words and the policy's units.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A condition, as Kubernetes' `metav1.Condition` has it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Progressing`, `Promoted`, `RolledBack`, `Paused` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// One line for people.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The schema of the inline policy: any object (the API server keeps its fields as sent);
/// the controller validates it with the policy validator and says what is wrong in the
/// status.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "The policy, inline: the same fields as a policy file (docs/policy-reference.md). Exactly one of `policy` and `policyFrom`."
    })
}

/// The CustomResourceDefinition, as YAML: what `canary controller crd` prints and
/// `examples/kubernetes/controller/crd.yaml` holds.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt as _;
    let crd = serde_json::to_value(CanaryRollout::crd()).unwrap_or(Value::Null);
    let mut out = String::from(
        "# Generated by `canary controller crd`; a test compares this file with its output.\n",
    );
    write_yaml(&mut out, &crd, 0);
    out
}

/// The rollout's identity, for messages: `CanaryRollout NAMESPACE/NAME`.
pub fn describe(resource: &CanaryRollout) -> String {
    format!(
        "CanaryRollout {}/{}",
        resource.metadata.namespace.as_deref().unwrap_or(""),
        resource.metadata.name.as_deref().unwrap_or("")
    )
}

/// Where a resource's policy comes from, once the spec has been checked.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyOrigin<'a> {
    /// `spec.policy`.
    Inline(&'a Value),
    /// `spec.policyFrom.configMapKeyRef`: the ConfigMap's name and key.
    ConfigMap {
        /// The ConfigMap.
        name: &'a str,
        /// The key.
        key: &'a str,
    },
}

/// What is rolled out, once the spec has been checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Rolled<'a> {
    /// `spec.revision`.
    Revision(&'a str),
    /// `spec.targetRef`: a Deployment's name.
    Deployment(&'a str),
}

impl CanaryRolloutSpec {
    /// Where the policy comes from; exactly one of `policy` and `policyFrom`.
    pub fn policy_origin(&self) -> Result<PolicyOrigin<'_>, Problem> {
        match (&self.policy, &self.policy_from) {
            (Some(inline), None) => Ok(PolicyOrigin::Inline(inline)),
            (None, Some(from)) => {
                let reference = &from.config_map_key_ref;
                if reference.name.is_empty() {
                    return Err(spec_problem(
                        "spec.policyFrom.configMapKeyRef.name",
                        "must name a ConfigMap",
                    ));
                }
                Ok(PolicyOrigin::ConfigMap {
                    name: &reference.name,
                    key: reference.key.as_deref().unwrap_or(DEFAULT_POLICY_KEY),
                })
            }
            (Some(_), Some(_)) => Err(spec_problem(
                "spec",
                "has both `policy` and `policyFrom`; give exactly one",
            )),
            (None, None) => Err(spec_problem(
                "spec",
                "has neither `policy` (inline) nor `policyFrom` (a ConfigMap key); give exactly one",
            )),
        }
    }

    /// What is rolled out; exactly one of `revision` and `targetRef`.
    pub fn rolled(&self) -> Result<Rolled<'_>, Problem> {
        match (&self.revision, &self.target_ref) {
            (Some(revision), None) if revision.trim().is_empty() => {
                Err(spec_problem("spec.revision", "is empty"))
            }
            (Some(revision), None) => Ok(Rolled::Revision(revision)),
            (None, Some(target)) if target.kind != "Deployment" => Err(spec_problem(
                "spec.targetRef.kind",
                &format!("is {:?}; only `Deployment` is followed", target.kind),
            )),
            (None, Some(target)) if target.name.is_empty() => Err(spec_problem(
                "spec.targetRef.name",
                "must name a Deployment",
            )),
            (None, Some(target)) => Ok(Rolled::Deployment(&target.name)),
            (Some(_), Some(_)) => Err(spec_problem(
                "spec",
                "has both `revision` and `targetRef`; give exactly one",
            )),
            (None, None) => Err(spec_problem(
                "spec",
                "has neither `revision` nor `targetRef`: say what is rolled out",
            )),
        }
    }
}

fn spec_problem(path: &str, message: &str) -> Problem {
    Problem {
        line: None,
        column: None,
        path: path.to_owned(),
        message: message.to_owned(),
    }
}

/// Validates the inline policy of `resource` (`spec.policy`) with the policy validator.
/// Each problem names its path inside the resource, e.g. `spec.policy.checks[0].slo.max`;
/// `origin` names the resource in the error.
pub fn inline_policy(value: &Value, origin: &str) -> Result<Policy, PolicyError> {
    // The validator reads YAML and reports every problem in one run by blanking the lines
    // of the entries it has reported; block YAML with one value per line lets it do so.
    let mut text = String::new();
    write_yaml(&mut text, value, 0);
    Policy::from_yaml(&text, origin).map_err(|err| PolicyError {
        file: err.file,
        problems: err
            .problems
            .into_iter()
            .map(|problem| Problem {
                // The lines are those of the text made here, meaningless to the user.
                line: None,
                column: None,
                path: if problem.path.is_empty() {
                    "spec.policy".to_owned()
                } else {
                    format!("spec.policy.{}", problem.path)
                },
                message: problem.message,
            })
            .collect(),
    })
}

/// Validates a policy read from a ConfigMap key; `origin` names the ConfigMap and key (its
/// problems keep their line and column in that key's text).
pub fn configmap_policy(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    Policy::from_yaml(text, origin)
}

/// Writes `value` as block YAML, each scalar on its own line, strings double-quoted (a
/// JSON string is a valid YAML double-quoted scalar), keys in the object's order.
fn write_yaml(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                let _ = write!(out, "{pad}{}:", yaml_key(key));
                write_nested(out, item, indent);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                let _ = write!(out, "{pad}-");
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // The first key on the dash's line, the rest under it.
                        let mut first = true;
                        for (key, nested) in map {
                            if first {
                                let _ = write!(out, " {}:", yaml_key(key));
                                first = false;
                            } else {
                                let _ = write!(out, "{pad}  {}:", yaml_key(key));
                            }
                            write_nested(out, nested, indent + 2);
                        }
                    }
                    _ => write_nested(out, item, indent),
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", scalar_text(scalar));
        }
    }
}

/// After `key:` or `-`: a scalar on the same line, a collection on the next ones.
fn write_nested(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_yaml(out, value, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_yaml(out, value, indent + 2);
        }
        Value::String(text) => {
            // Long strings are folded at spaces to stay within the repository's line length
            // (yamllint's 100): in a double-quoted scalar a line break reads as one space.
            let column = out.len() - out.rfind('\n').map_or(0, |i| i + 1);
            out.push(' ');
            fold_quoted(out, text, column + 1, indent + 2);
            out.push('\n');
        }
        scalar => {
            let _ = writeln!(out, " {}", scalar_text(scalar));
        }
    }
}

/// Lines of the YAML made here are at most this long.
const MAX_LINE: usize = 100;

/// Writes `text` double-quoted, starting at `column`, breaking at single spaces so that
/// no line passes [`MAX_LINE`]; continuation lines are indented by `indent`.
fn fold_quoted(out: &mut String, text: &str, column: usize, indent: usize) {
    let quoted = Value::String(text.to_owned()).to_string();
    let bytes = quoted.as_bytes();
    // Break only at a single space between two other characters: a break folds into
    // exactly one space, and YAML drops the continuation line's leading blanks.
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in 1..bytes.len().saturating_sub(1) {
        if bytes[i] == b' ' && bytes[i - 1] != b' ' && bytes[i + 1] != b' ' {
            pieces.push(&quoted[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&quoted[start..]);
    let mut at = column;
    for (n, piece) in pieces.iter().enumerate() {
        if n > 0 {
            if at + 1 + piece.len() > MAX_LINE {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                at = indent;
            } else {
                out.push(' ');
                at += 1;
            }
        }
        out.push_str(piece);
        at += piece.len();
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        other => other.to_string(),
    }
}

/// A key as YAML: bare when it is plainly a name, quoted otherwise.
fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            key,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// The labels the controller puts on what it creates for a resource.
pub fn owned_labels(resource: &CanaryRollout) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "canary-controller".to_owned(),
        ),
        (
            "canary.dev/rollout".to_owned(),
            resource.metadata.name.clone().unwrap_or_default(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Value {
        json!({
            "service": "checkout",
            "traffic": {"label": "version", "baseline": "stable", "canary": "canary"},
            "metrics": {"prometheus": {"url": "http://prometheus:9090"}},
            "checks": [{
                "name": "errors",
                "error-rate": {"requests": "http_requests_total", "errors": "code=~\"5..\""},
                "slo": {"max": "1%"}
            }]
        })
    }

    #[test]
    fn block_yaml_puts_every_value_on_its_own_line() {
        let mut text = String::new();
        write_yaml(
            &mut text,
            &json!({"a": {"b": [1, {"c": "x: y", "d": []}], "e": {}}, "true": null}),
            0,
        );
        assert_eq!(
            text,
            "a:\n  b:\n    - 1\n    - c: \"x: y\"\n      d: []\n  e: {}\n\"true\": null\n"
        );
    }

    #[test]
    fn long_strings_fold_within_the_line_length_and_read_back_the_same() {
        let long = "word ".repeat(60) + "end  two  spaces \"quoted\" back\\slash\ttab";
        let value = json!({"spec": {"items": [{"description": long.clone(), "n": 1}]}});
        let mut text = String::new();
        write_yaml(&mut text, &value, 0);
        assert!(text.lines().all(|l| l.len() <= MAX_LINE), "{text}");
        assert!(text.lines().count() > 4, "{text}");
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn the_crd_yaml_reads_back_as_the_crd() {
        use kube::CustomResourceExt as _;
        let back: Value = serde_saphyr::from_str(&crd_yaml()).unwrap();
        assert_eq!(back, serde_json::to_value(CanaryRollout::crd()).unwrap());
    }

    #[test]
    fn problems_of_an_inline_policy_name_the_path_inside_the_resource() {
        let mut bad = policy();
        bad["checks"][0]["slo"]["max"] = json!("lots");
        bad["rollout"] = json!({"steps": [50, 10, 100], "colour": "red"});
        let err = inline_policy(&bad, "CanaryRollout shop/checkout").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("spec.policy.checks[0].slo.max"), "{text}");
        assert!(text.contains("spec.policy.rollout"), "{text}");
        assert!(text.starts_with("CanaryRollout shop/checkout:"), "{text}");
        assert!(err.problems.iter().all(|p| p.line.is_none()), "{err:?}");
    }

    #[test]
    fn a_valid_inline_policy_is_the_policy_a_file_would_give() {
        let from_resource = inline_policy(&policy(), "CanaryRollout shop/checkout").unwrap();
        let mut yaml = String::new();
        write_yaml(&mut yaml, &policy(), 0);
        let from_file = Policy::from_yaml(&yaml, "checkout.yaml").unwrap();
        assert_eq!(from_resource, from_file);
        assert_eq!(from_resource.digest(), from_file.digest());
    }

    #[test]
    fn the_spec_says_exactly_one_policy_and_one_thing_rolled_out() {
        let mut spec = CanaryRolloutSpec::default();
        assert!(
            spec.policy_origin()
                .unwrap_err()
                .message
                .contains("neither")
        );
        assert!(spec.rolled().unwrap_err().message.contains("neither"));
        spec.policy = Some(policy());
        spec.revision = Some("v2".to_owned());
        assert_eq!(spec.rolled().unwrap(), Rolled::Revision("v2"));
        spec.policy_from = Some(PolicySource {
            config_map_key_ref: ConfigMapKeyRef {
                name: "p".to_owned(),
                key: None,
            },
        });
        assert!(spec.policy_origin().unwrap_err().message.contains("both"));
        spec.policy = None;
        assert_eq!(
            spec.policy_origin().unwrap(),
            PolicyOrigin::ConfigMap {
                name: "p",
                key: DEFAULT_POLICY_KEY
            }
        );
        spec.revision = None;
        spec.target_ref = Some(TargetRef {
            kind: "StatefulSet".to_owned(),
            name: "x".to_owned(),
        });
        assert_eq!(spec.rolled().unwrap_err().path, "spec.targetRef.kind");
    }

    #[test]
    fn the_crd_has_the_status_subresource_and_printer_columns() {
        use kube::CustomResourceExt as _;
        let crd = serde_json::to_value(CanaryRollout::crd()).unwrap();
        assert_eq!(crd["spec"]["group"], GROUP);
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], VERSION);
        assert_eq!(version["subresources"]["status"], json!({}));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            ["Phase", "Step", "Weight", "Revision", "Reason", "Age"]
        );
        let policy =
            &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["policy"];
        assert_eq!(policy["x-kubernetes-preserve-unknown-fields"], true);
    }
}
