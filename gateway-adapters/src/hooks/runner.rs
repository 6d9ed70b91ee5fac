//! Hooks: a user's command or an HTTP webhook, run before the rollout, at each step, on
//! promotion and on rollback, each with a timeout and a typed outcome.
//!
//! A **command** hook runs its argv with `{service}`, `{step}` and `{weight}` replaced, in a
//! minimal environment ([`hook_environment`]): `PATH`, `HOME`, `USER`, `LANG`, `LC_ALL`, `TZ`
//! and `TMPDIR` from canary's own, what the policy's `env` passes or sets, and
//! `CANARY_SERVICE`, `CANARY_EVENT`, `CANARY_STEP`, `CANARY_WEIGHT` and `CANARY_HOOK` — never
//! the rest of canary's environment, where a CI keeps its tokens. It succeeds when it exits 0
//! within the timeout (on timeout its whole process group is killed).
//!
//! A **webhook** is an HTTP POST of a JSON object:
//!
//! ```json
//! {"hook":"announce","service":"checkout","event":"step","step":2,"weight":25,
//!  "timestamp":"2025-06-01T12:00:00Z"}
//! ```
//!
//! with `Content-Type: application/json` and `X-Canary-Event: step`. When the hook has a
//! secret, `X-Canary-Signature: sha256=HEX` carries the HMAC-SHA256 of the exact body bytes
//! under that secret (the GitHub webhook convention), so a receiver can check that the call
//! came from someone holding the secret; the timestamp inside the signed body lets it refuse
//! replays. A secret that cannot be read fails the hook: canary never sends unsigned what was
//! meant to be signed. Redirects are not followed (they would carry the signature elsewhere),
//! and a webhook succeeds on a 2xx answer within the timeout. Messages name the webhook's
//! scheme, host and port only: its path and query often hold a token.

use std::fmt;
use std::time::{Duration, Instant};

use canary_core::policy::{HookAction, HookEvent, HookSpec, NotificationSpec, SecretSource};
use canary_core::secret::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{GatewayError, Result};
use crate::process;

/// Where a rollout is when a hook runs: what the placeholders and the webhook body say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookContext {
    /// The service being rolled out (the policy's `service`).
    pub service: String,
    /// The event the hooks run for.
    pub event: HookEvent,
    /// The step's number, 1 for the first step; 0 before the first step (`before`).
    pub step: usize,
    /// The canary's weight in percent at this point (for `step`, the weight just set).
    pub weight: u8,
}

/// How a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// The command exited 0, or the webhook answered 2xx, within the timeout.
    Ok,
    /// It did not; the reason names the program or the webhook's host, never a secret.
    Failed {
        /// What went wrong, in words.
        reason: String,
    },
    /// The command could not be started at all (no such program, not executable): the
    /// policy's configuration is wrong, which says nothing about the canary.
    Unstartable {
        /// What went wrong, in words.
        reason: String,
    },
}

/// One hook's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRun {
    /// The hook's name.
    pub hook: String,
    /// The event it ran for.
    pub event: HookEvent,
    /// How it ended.
    pub outcome: HookOutcome,
    /// How long it took.
    pub elapsed: Duration,
    /// The hook's `on-failure: rollback` setting.
    pub rollback_on_failure: bool,
}

impl HookRun {
    /// Whether the hook succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome == HookOutcome::Ok
    }

    /// Whether this run asks for a rollback: it failed, it is a `before` or `step` hook, and
    /// its policy says a failure rolls back (the default). Promotion and rollback hooks run
    /// when the outcome is decided; their failures are reported, not acted on.
    pub fn demands_rollback(&self) -> bool {
        !self.is_ok()
            && self.rollback_on_failure
            && matches!(self.event, HookEvent::Before | HookEvent::Step)
    }
}

impl fmt::Display for HookRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            HookOutcome::Ok => write!(f, "hook {} ok", self.hook),
            HookOutcome::Failed { reason } => write!(f, "hook {} failed: {reason}", self.hook),
            HookOutcome::Unstartable { reason } => {
                write!(f, "hook {} cannot be started: {reason}", self.hook)
            }
        }
    }
}

/// Runs hooks. Holds one HTTP client for all webhooks.
#[derive(Clone, Debug)]
pub struct HookRunner {
    client: reqwest::Client,
}

impl HookRunner {
    /// A runner with an HTTP client that verifies TLS certificates with the system's roots
    /// and follows no redirects.
    pub fn new() -> Result<Self> {
        canary_metrics::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GatewayError::HttpClient {
                message: error_chain(&e),
            })?;
        Ok(HookRunner { client })
    }

    /// A notifier for `channels` that sends through this runner's HTTP client (the same
    /// settings: no redirects, the system's roots). The controller builds one runner and
    /// hands each rollout a clone and a notifier of it: a client per rollout loaded the
    /// system's root certificates again for each of thousands of rollouts.
    pub fn notifier(&self, channels: &[NotificationSpec]) -> crate::Notifier {
        crate::Notifier::with_client(self.client.clone(), channels)
    }

    /// Runs every hook of `hooks` whose `on` lists the context's event, in the order written.
    /// All of them run, whatever the earlier ones did; the caller acts on
    /// [`HookRun::demands_rollback`].
    pub async fn run_event(&self, hooks: &[HookSpec], context: &HookContext) -> Vec<HookRun> {
        let mut runs = Vec::new();
        for hook in hooks.iter().filter(|h| h.on.contains(&context.event)) {
            runs.push(self.run(hook, context).await);
        }
        runs
    }

    /// Runs one hook for the context's event (whether or not its `on` lists it).
    pub async fn run(&self, hook: &HookSpec, context: &HookContext) -> HookRun {
        let started = Instant::now();
        let result = match &hook.action {
            HookAction::Command(argv) => run_command(hook, argv, context).await,
            HookAction::Webhook { url, secret } => {
                self.post(hook, url, secret.as_ref(), context).await
            }
        };
        HookRun {
            hook: hook.name.clone(),
            event: context.event,
            outcome: match result {
                Ok(()) => HookOutcome::Ok,
                // The one point where a hook's outside text (a command's output, a
                // receiver's answer) enters: redacted of every secret the process holds.
                Err(HookError::Failed(reason)) => HookOutcome::Failed {
                    reason: canary_core::secret::redacted(&reason),
                },
                Err(HookError::Unstartable(reason)) => HookOutcome::Unstartable {
                    reason: canary_core::secret::redacted(&reason),
                },
            },
            elapsed: started.elapsed(),
            rollback_on_failure: hook.rollback_on_failure,
        }
    }

    async fn post(
        &self,
        hook: &HookSpec,
        url: &str,
        secret: Option<&SecretSource>,
        context: &HookContext,
    ) -> std::result::Result<(), HookError> {
        let body = webhook_body(&hook.name, context);
        post_signed_json(
            &self.client,
            SignedPost {
                url,
                body,
                secret,
                event: event_name(context.event),
                timeout: hook.timeout,
                what: "webhook",
            },
        )
        .await
        .map_err(HookError::Failed)
    }
}

/// Why a hook did not succeed, before it becomes a [`HookOutcome`].
/// A command hook's whole environment: the variables of [`HOOK_BASE_ENVIRONMENT`] and those
/// the policy passes by name, as `lookup` (canary's environment) has them; those the policy
/// sets; and the `CANARY_*` context, last, so nothing overrides it. Values that are not
/// UTF-8 are left out.
///
/// [`HOOK_BASE_ENVIRONMENT`]: canary_core::policy::HOOK_BASE_ENVIRONMENT
pub fn hook_environment(
    hook: &HookSpec,
    context: &HookContext,
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<(String, String)> {
    let mut env: std::collections::BTreeMap<String, String> =
        canary_core::policy::HOOK_BASE_ENVIRONMENT
            .iter()
            .copied()
            .chain(hook.env.pass.iter().map(String::as_str))
            .filter_map(|name| {
                let value = lookup(name)?.into_string().ok()?;
                Some((name.to_owned(), value))
            })
            .collect();
    env.extend(hook.env.set.clone());
    for (name, value) in [
        ("CANARY_SERVICE", context.service.clone()),
        ("CANARY_EVENT", event_name(context.event).to_owned()),
        ("CANARY_STEP", context.step.to_string()),
        ("CANARY_WEIGHT", context.weight.to_string()),
        ("CANARY_HOOK", hook.name.clone()),
    ] {
        env.insert(name.to_owned(), value);
    }
    env.into_iter().collect()
}

enum HookError {
    Failed(String),
    Unstartable(String),
}

async fn run_command(
    hook: &HookSpec,
    argv: &[String],
    context: &HookContext,
) -> std::result::Result<(), HookError> {
    let values = [
        ("service", context.service.clone()),
        ("step", context.step.to_string()),
        ("weight", context.weight.to_string()),
    ];
    let argv: Vec<String> = argv
        .iter()
        .map(|arg| process::substitute(arg, &values))
        .collect();
    let env = hook_environment(hook, context, |name| std::env::var_os(name));
    process::run_in(&argv, process::Environment::Only(&env), hook.timeout)
        .await
        .map(drop)
        .map_err(|failure| {
            let reason = format!(
                "`{}` {failure}",
                argv.first().map(String::as_str).unwrap_or_default()
            );
            match failure {
                process::CommandFailure::Spawn(_) => HookError::Unstartable(reason),
                _ => HookError::Failed(reason),
            }
        })
}

/// The JSON body of a webhook call.
fn webhook_body(hook: &str, context: &HookContext) -> Vec<u8> {
    let body = serde_json::json!({
        "hook": hook,
        "service": context.service,
        "event": event_name(context.event),
        "step": context.step,
        "weight": context.weight,
        "timestamp": jiff::Timestamp::now().to_string(),
    });
    body.to_string().into_bytes()
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 2 * digest.len());
    hex.push_str("sha256=");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Reads a secret from its source with the one reader every adapter uses (which teaches the
/// process's redactor its value); the message names the variable or file, never a value.
pub(crate) fn read_secret(source: &SecretSource) -> std::result::Result<Secret, String> {
    source.read().map_err(|e| e.to_string())
}

/// A JSON POST to a webhook: hooks and notifications send them alike.
pub(crate) struct SignedPost<'a> {
    pub(crate) url: &'a str,
    pub(crate) body: Vec<u8>,
    /// Signs the body (`X-Canary-Signature: sha256=…`) when given.
    pub(crate) secret: Option<&'a SecretSource>,
    /// `X-Canary-Event`.
    pub(crate) event: &'a str,
    pub(crate) timeout: Duration,
    /// What it is, for messages: `webhook`, `notification`.
    pub(crate) what: &'a str,
}

/// Sends a [`SignedPost`]; the error names only the receiver's scheme, host and port (the
/// path and query often hold tokens) and quotes the start of a non-2xx answer.
pub(crate) async fn post_signed_json(
    client: &reqwest::Client,
    post: SignedPost<'_>,
) -> std::result::Result<(), String> {
    let target = origin(post.url);
    let what = post.what;
    let mut request = client
        .post(post.url)
        .timeout(post.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Canary-Event", post.event);
    if let Some(secret) = post.secret {
        let key = read_secret(secret)?;
        request = request.header(
            "X-Canary-Signature",
            signature(key.expose().as_bytes(), &post.body),
        );
    }
    let response = request.body(post.body).send().await.map_err(|e| {
        if e.is_timeout() {
            format!(
                "{what} {target} did not answer within {}",
                canary_core::policy::duration_as_written(post.timeout)
            )
        } else {
            format!("{what} {target}: {}", error_chain(&e.without_url()))
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // A short excerpt of the answer helps; the whole page would not.
    let text = response.text().await.unwrap_or_default();
    let excerpt = process::first_lines(text.as_bytes());
    let excerpt: String = excerpt.chars().take(200).collect();
    Err(if excerpt.is_empty() {
        format!("{what} {target} answered {status}")
    } else {
        format!("{what} {target} answered {status}: {excerpt}")
    })
}

/// `scheme://host:port` of a URL, for messages (paths and queries often hold tokens).
pub(crate) fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            _ => format!("{}://", u.scheme()),
        },
        Err(_) => "(invalid URL)".to_owned(),
    }
}

fn event_name(event: HookEvent) -> &'static str {
    match event {
        HookEvent::Before => "before",
        HookEvent::Step => "step",
        HookEvent::Promote => "promote",
        HookEvent::Rollback => "rollback",
    }
}

/// An error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        // reqwest's and hyper's messages often repeat their source's; say each thing once.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        // RFC 4231, 4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn origin_leaves_out_path_and_query() {
        assert_eq!(
            origin("https://hooks.example/services/T0/B0/SECRET?token=x"),
            "https://hooks.example"
        );
        assert_eq!(origin("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
    }

    #[test]
    fn only_failed_before_and_step_hooks_roll_back() {
        let run = |event, ok, rollback_on_failure| HookRun {
            hook: "h".to_owned(),
            event,
            outcome: if ok {
                HookOutcome::Ok
            } else {
                HookOutcome::Failed {
                    reason: "x".to_owned(),
                }
            },
            elapsed: Duration::ZERO,
            rollback_on_failure,
        };
        assert!(run(HookEvent::Before, false, true).demands_rollback());
        assert!(run(HookEvent::Step, false, true).demands_rollback());
        assert!(!run(HookEvent::Step, true, true).demands_rollback());
        assert!(!run(HookEvent::Step, false, false).demands_rollback());
        assert!(!run(HookEvent::Promote, false, true).demands_rollback());
        assert!(!run(HookEvent::Rollback, false, true).demands_rollback());
    }
}
