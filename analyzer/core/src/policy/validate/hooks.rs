//! `hooks` and `notify`: commands and webhooks run at a rollout's events, and who is told.

use super::*;

impl Validator {
    pub(super) fn hooks(&mut self, raw: &[RawHook]) -> Option<Vec<HookSpec>> {
        let mut hooks = Vec::new();
        let mut names = HashSet::new();
        let mut ok = true;
        for (i, hook) in raw.iter().enumerate() {
            let path = format!("hooks[{i}]");
            if hook.name.value.trim().is_empty() {
                self.problem(format!("{path}.name"), Some(&hook.name), "expected a name");
                ok = false;
            } else if !names.insert(hook.name.value.clone()) {
                self.problem(
                    format!("{path}.name"),
                    Some(&hook.name),
                    format!("a hook named {:?} is already defined", hook.name.value),
                );
                ok = false;
            }
            let mut on = Vec::new();
            if hook.on.value.is_empty() {
                self.problem(
                    format!("{path}.on"),
                    Some(&hook.on),
                    "expected one or more of before, step, promote, rollback",
                );
                ok = false;
            }
            for (j, event) in hook.on.value.iter().enumerate() {
                match event.value.as_str() {
                    "before" => on.push(HookEvent::Before),
                    "step" => on.push(HookEvent::Step),
                    "promote" => on.push(HookEvent::Promote),
                    "rollback" => on.push(HookEvent::Rollback),
                    other => {
                        self.problem(
                            format!("{path}.on[{j}]"),
                            Some(event),
                            format!(
                                "expected one of before, step, promote, rollback, not {other:?}"
                            ),
                        );
                        ok = false;
                    }
                }
            }
            let action = match (&hook.command, &hook.webhook) {
                (Some(command), None) => {
                    if command.value.is_empty() {
                        self.problem(
                            format!("{path}.command"),
                            Some(command),
                            "expected a command and its arguments",
                        );
                        ok = false;
                    }
                    ok &= self.placeholders(
                        &format!("{path}.command"),
                        command,
                        &["weight", "step", "service"],
                    );
                    Some(HookAction::Command(command.value.clone()))
                }
                (None, Some(webhook)) => {
                    ok &= self.http_url(&format!("{path}.webhook.url"), &webhook.url);
                    let secret = match (&webhook.secret_env, &webhook.secret_file) {
                        (None, None) => None,
                        (Some(var), None) => Some(SecretSource::Env(var.clone())),
                        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
                        (Some(_), Some(_)) => {
                            self.problem::<()>(
                                format!("{path}.webhook"),
                                None,
                                "expected at most one of `secret-env` and `secret-file`",
                            );
                            ok = false;
                            None
                        }
                    };
                    Some(HookAction::Webhook {
                        url: webhook.url.value.clone(),
                        secret,
                    })
                }
                _ => {
                    self.problem(
                        path.clone(),
                        Some(&hook.name),
                        "expected exactly one of `command` or `webhook`",
                    );
                    ok = false;
                    None
                }
            };
            let rollback_on_failure = match &hook.on_failure {
                None => true,
                Some(at) => match at.value.as_str() {
                    "rollback" => true,
                    "ignore" => false,
                    other => {
                        self.problem(
                            format!("{path}.on-failure"),
                            Some(at),
                            format!("expected `rollback` or `ignore`, not {other:?}"),
                        );
                        ok = false;
                        true
                    }
                },
            };
            let timeout = self.positive_duration(
                &format!("{path}.timeout"),
                hook.timeout.as_ref(),
                DEFAULT_COMMAND_TIMEOUT,
            );
            let env = self.hook_env(&path, hook);
            ok &= env.is_some();
            if let (Some(action), Some(timeout)) = (action, timeout) {
                hooks.push(HookSpec {
                    name: hook.name.value.clone(),
                    on,
                    action,
                    timeout,
                    rollback_on_failure,
                    env: env.unwrap_or_default(),
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(hooks)
    }

    /// A hook's `env`: names a shell would take, none of the `CANARY_` context ones, each
    /// once, and for command hooks only.
    fn hook_env(&mut self, path: &str, hook: &RawHook) -> Option<HookEnv> {
        let Some(raw) = &hook.env else {
            return Some(HookEnv::default());
        };
        let mut ok = true;
        if hook.command.is_none() {
            self.problem::<()>(
                format!("{path}.env"),
                None,
                "only a command hook has an environment (a webhook gets none)",
            );
            ok = false;
        }
        let valid = |name: &str| {
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let mut seen = HashSet::new();
        let named: Vec<(String, Option<&At<String>>, &str)> = raw
            .pass
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    format!("{path}.env.pass[{i}]"),
                    Some(name),
                    name.value.as_str(),
                )
            })
            .chain(
                raw.set
                    .keys()
                    .map(|name| (format!("{path}.env.set.{name}"), None, name.as_str())),
            )
            .collect();
        for (field, at, name) in named {
            let problem = if !valid(name) {
                format!(
                    "{name:?} is not a variable name (letters, digits and `_`, not starting with a digit)"
                )
            } else if name.starts_with("CANARY_") {
                format!("{name} is set by canary itself (CANARY_ names are the hook's context)")
            } else if !seen.insert(name.to_owned()) {
                format!("{name} is named more than once")
            } else {
                continue;
            };
            self.problem(field, at, problem);
            ok = false;
        }
        ok.then(|| HookEnv {
            pass: raw.pass.iter().map(|n| n.value.clone()).collect(),
            set: raw.set.clone(),
        })
    }

    pub(super) fn notifications(
        &mut self,
        raw: &[RawNotification],
    ) -> Option<Vec<NotificationSpec>> {
        let mut notifications = Vec::new();
        let mut ok = true;
        for (i, notification) in raw.iter().enumerate() {
            let path = format!("notify[{i}]");
            let channel = match (&notification.webhook, &notification.slack) {
                (Some(webhook), None) => {
                    ok &= self.http_url(&format!("{path}.webhook.url"), &webhook.url);
                    let secret = match (&webhook.secret_env, &webhook.secret_file) {
                        (None, None) => None,
                        (Some(var), None) => Some(SecretSource::Env(var.clone())),
                        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
                        (Some(_), Some(_)) => {
                            self.problem::<()>(
                                format!("{path}.webhook"),
                                None,
                                "expected at most one of `secret-env` and `secret-file`",
                            );
                            ok = false;
                            None
                        }
                    };
                    Some(NotificationChannel::Webhook {
                        url: webhook.url.value.clone(),
                        secret,
                    })
                }
                (None, Some(slack)) => match (&slack.webhook_url_env, &slack.webhook_url_file) {
                    (Some(var), None) => Some(NotificationChannel::Slack {
                        url: SecretSource::Env(var.clone()),
                    }),
                    (None, Some(file)) => Some(NotificationChannel::Slack {
                        url: SecretSource::File(PathBuf::from(file)),
                    }),
                    _ => {
                        self.problem::<()>(
                            format!("{path}.slack"),
                            None,
                            "expected exactly one of `webhook-url-env` and `webhook-url-file` (the URL is a secret: never written in the policy)",
                        );
                        None
                    }
                },
                _ => {
                    self.problem::<()>(
                        path.clone(),
                        None,
                        "expected exactly one of `webhook` or `slack`",
                    );
                    None
                }
            };
            let on = match &notification.on {
                None => NoticeKind::NOTIFIABLE.to_vec(),
                Some(at) => {
                    let mut kinds = Vec::new();
                    for (j, kind) in at.value.iter().enumerate() {
                        if let Some(known) = NoticeKind::notifiable_named(&kind.value) {
                            kinds.push(known);
                        } else {
                            self.problem(
                                format!("{path}.on[{j}]"),
                                Some(kind),
                                format!(
                                    "expected one of {}, not {:?}",
                                    NoticeKind::NOTIFIABLE.map(NoticeKind::as_str).join(", "),
                                    kind.value
                                ),
                            );
                            ok = false;
                        }
                    }
                    kinds
                }
            };
            let timeout = self.positive_duration(
                &format!("{path}.timeout"),
                notification.timeout.as_ref(),
                Duration::from_secs(10),
            );
            match (channel, timeout) {
                (Some(channel), Some(timeout)) => notifications.push(NotificationSpec {
                    channel,
                    on,
                    timeout,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(notifications)
    }
}
