//! Notifications: people told about a rollout as it goes — a generic JSON webhook
//! (HMAC-SHA256-signed like the hooks' webhooks) and Slack-compatible incoming webhooks —
//! on its start, each step, promotion and rollback.
//!
//! A notification never changes the rollout: a failure is reported to the caller, who logs
//! it and carries on. The Slack URL is a secret (anyone holding it can post): it is read at
//! send time and never appears in messages, which name only the receiver's host.

use canary_core::policy::{NotificationChannel, NotificationSpec};
use canary_core::rollout::{Notice, NoticeKind};

use canary_core::secret::Secret;

use crate::error::{GatewayError, Result};

use crate::hooks::{SignedPost, post_signed_json, read_secret};

/// Sends notices to the policy's notification channels.
#[derive(Clone, Debug)]
pub struct Notifier {
    client: reqwest::Client,
    channels: Vec<NotificationSpec>,
}

impl Notifier {
    /// A notifier for the policy's channels (none: it sends nothing).
    pub fn new(channels: &[NotificationSpec]) -> Result<Self> {
        canary_metrics::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("canary/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GatewayError::HttpClient {
                message: e.to_string(),
            })?;
        Ok(Notifier::with_client(client, channels))
    }

    /// A notifier sending through `client` (one built as [`Notifier::new`] builds it: no
    /// redirects, canary's user agent), for callers that share one client among many
    /// rollouts ([`crate::HookRunner::notifier`]).
    pub(crate) fn with_client(client: reqwest::Client, channels: &[NotificationSpec]) -> Self {
        Notifier {
            client,
            channels: channels.to_vec(),
        }
    }

    /// Whether any channel wants this notice.
    pub fn wants(&self, notice: &Notice) -> bool {
        self.channels.iter().any(|c| c.on.contains(&notice.kind))
    }

    /// Sends `notice` to every channel that asked for its kind; returns one failure message
    /// per channel that could not be reached (never the secret).
    pub async fn send(&self, notice: &Notice, at: jiff::Timestamp) -> Vec<String> {
        let mut failures = Vec::new();
        for channel in self.channels.iter().filter(|c| c.on.contains(&notice.kind)) {
            if let Err(failure) = self.send_one(channel, notice, at).await {
                // A receiver's answer is outside text: redacted before it goes anywhere.
                failures.push(canary_core::secret::redacted(&failure));
            }
        }
        failures
    }

    async fn send_one(
        &self,
        spec: &NotificationSpec,
        notice: &Notice,
        at: jiff::Timestamp,
    ) -> std::result::Result<(), String> {
        let (url, body, secret) = match &spec.channel {
            NotificationChannel::Webhook { url, secret } => {
                (url.clone(), webhook_body(notice, at), secret.as_ref())
            }
            NotificationChannel::Slack { url } => {
                // The whole URL is the credential; its path alone is learnt too.
                let url = Secret::url(read_secret(url)?.expose());
                (url.expose().to_owned(), slack_body(notice), None)
            }
        };
        post_signed_json(
            &self.client,
            SignedPost {
                url: &url,
                body: body.into_bytes(),
                secret,
                event: notice.kind.as_str(),
                timeout: spec.timeout,
                what: "notification",
            },
        )
        .await
    }
}

/// The generic webhook's JSON body.
fn webhook_body(notice: &Notice, at: jiff::Timestamp) -> String {
    serde_json::json!({
        "service": notice.service,
        "event": notice.kind,
        "weight": notice.weight,
        "message": notice.message,
        "timestamp": at.to_string(),
    })
    .to_string()
}

/// A Slack message: one line, with an emoji that says how it went.
fn slack_body(notice: &Notice) -> String {
    let icon = match notice.kind {
        NoticeKind::Promoted => ":white_check_mark:",
        NoticeKind::RolledBack | NoticeKind::Failed => ":rotating_light:",
        NoticeKind::Held
        | NoticeKind::Extended
        | NoticeKind::Interrupted
        | NoticeKind::Drift
        | NoticeKind::IgnoredRequest => ":warning:",
        NoticeKind::Started
        | NoticeKind::Step
        | NoticeKind::Promoting
        | NoticeKind::Finalizing
        | NoticeKind::RollingBack
        | NoticeKind::Tick => ":hatching_chick:",
    };
    let weight = notice
        .weight
        .map(|w| format!(" (canary at {w} %)"))
        .unwrap_or_default();
    serde_json::json!({
        "text": format!(
            "{icon} *{}* {}{weight}: {}",
            notice.service,
            plain_words(notice.kind),
            notice.message
        ),
    })
    .to_string()
}

/// What happened, in the words the summary and the live view use ("rolled back", not the
/// webhook's machine name `rolled-back`).
fn plain_words(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Started => "started",
        NoticeKind::Step => "next step",
        NoticeKind::Promoting => "promoting",
        NoticeKind::Finalizing => "finishing the promotion",
        NoticeKind::RollingBack => "rolling back",
        NoticeKind::Tick => "metrics",
        NoticeKind::Promoted => "promoted",
        NoticeKind::RolledBack => "rolled back",
        NoticeKind::Failed => "failed",
        NoticeKind::Held => "held",
        NoticeKind::Extended => "step extended",
        NoticeKind::Interrupted => "interrupted",
        NoticeKind::Drift => "weight drift",
        NoticeKind::IgnoredRequest => "ignored a request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: NoticeKind) -> Notice {
        Notice {
            kind,
            service: "checkout".to_owned(),
            weight: Some(25),
            message: "step 2/3: canary at 25 %".to_owned(),
        }
    }

    #[test]
    fn bodies_are_json_with_what_happened() {
        let at: jiff::Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&webhook_body(&notice(NoticeKind::Step), at)).unwrap();
        assert_eq!(body["event"], "step");
        assert_eq!(body["weight"], 25);
        assert_eq!(body["timestamp"], "2026-11-22T10:00:00Z");
        let slack: serde_json::Value =
            serde_json::from_str(&slack_body(&notice(NoticeKind::RolledBack))).unwrap();
        let text = slack["text"].as_str().unwrap();
        // Plain words, as the summary says them ("rolled back", "25 %"), not the event's
        // machine name: the machine name is the webhook's `event` field.
        assert!(
            text.starts_with(":rotating_light: *checkout* rolled back (canary at 25 %)"),
            "{text}"
        );
        for kind in [
            NoticeKind::RollingBack,
            NoticeKind::IgnoredRequest,
            NoticeKind::Drift,
            NoticeKind::Promoted,
        ] {
            let slack: serde_json::Value =
                serde_json::from_str(&slack_body(&notice(kind))).unwrap();
            let text = slack["text"].as_str().unwrap();
            assert!(
                !text.contains(kind.as_str()) || !kind.as_str().contains('-'),
                "{text}"
            );
            assert!(text.contains("(canary at 25 %)"), "{text}");
        }
        // One vocabulary with the summary and the reports (issue 15), for every kind.
        for kind in &NoticeKind::NOTIFIABLE {
            let slack: serde_json::Value =
                serde_json::from_str(&slack_body(&notice(*kind))).unwrap();
            canary_tests::vocabulary::assert_one_vocabulary(
                "Slack",
                slack["text"].as_str().unwrap(),
            );
        }
    }

    #[test]
    fn only_the_kinds_asked_for_are_wanted() {
        let notifier = Notifier::new(&[NotificationSpec {
            channel: NotificationChannel::Webhook {
                url: "http://127.0.0.1:1/".to_owned(),
                secret: None,
            },
            on: vec![NoticeKind::Promoted],
            timeout: std::time::Duration::from_secs(1),
        }])
        .unwrap();
        assert!(notifier.wants(&notice(NoticeKind::Promoted)));
        assert!(!notifier.wants(&notice(NoticeKind::Step)));
    }
}
