//! Secrets, and how none of them ever leaves the process in anything canary writes.
//!
//! A [`Secret`] holds a credential's value — a bearer token, a basic-auth password, a
//! webhook's signing key, a Slack webhook URL, a header value the policy reads from a file or
//! the environment, and any credential a metrics source or gateway adds later. It has no
//! `Display` and no `Serialize`, and its `Debug` prints `[redacted]`, so it cannot be
//! formatted into a message by mistake; the value is reached only through
//! [`Secret::expose`], where it is put on the wire.
//!
//! Redaction is by construction too: making a `Secret` teaches the process's [`Redactor`]
//! the value and every form in which an echo of it can come back — base64 (both alphabets,
//! at each of the three alignments inside a longer base64 text, so a basic-auth header or a
//! base64-encoded dump of headers is caught), URL-encoded, JSON-, HTML- and `Debug`-escaped —
//! and, for a secret long enough, any piece of it at least half its length at its start or
//! end (a proxy that cut its echo short). [`redact`] then scrubs any text of all of them. The
//! registry is the process's because the set of secrets a process has read is a fact about
//! the process: whatever it writes, wherever, must hold none of them; a token re-read at
//! every tick (tokens rotate) is learnt as it is read.
//!
//! Where it is applied (see `docs/reliability.md`): where outside text enters — the ports'
//! decorator [`Redacted`] around every metrics source, router and state store, the hooks'
//! and notifications' outcomes, and every place an adapter cuts outside text short (a cut
//! could split a secret, and a split secret no longer matches) — and again where anything is
//! written: reports, the step summary, the state, recordings, notifications, and every line
//! on stdout and stderr.
//!
//! Why not the `secrecy` crate: its `SecretString` gives the no-`Display` and redacted-`Debug`
//! part, but not the registration in a redactor, which is the part that keeps an *echo* of the
//! secret out of outputs; a wrapper around it would add a dependency for a zeroize-on-drop
//! that buys little here (the value is copied into HTTP header values and HMAC keys that do not
//! zeroize). The type below is small and does exactly the two things.
//!
//! Reading a secret ([`SecretSource::read`]) is the one place the core reads the
//! environment: one reader for every adapter, so that no read can skip the registration.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;
use crate::observation::{Reading, Tick};
use crate::policy::SecretSource;
use crate::ports::{MetricsSource, StateStore, TrafficRouter};

mod scan;
use crate::rollout::{ControlRequest, Rollout};
use crate::{Error, Result};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The shortest secret worth finding in text: a shorter one would match ordinary words and
/// numbers everywhere (and a credential that short is no credential). A shorter secret is
/// refused where it is read ([`check_long_enough`]).
pub const MIN_SECRET_LEN: usize = 4;

/// The shortest encoded form (a base64 piece) that is looked for.
const MIN_FORM_LEN: usize = 6;

/// Secrets at least this long are also found cut short: a piece of at least half of them
/// (and at least [`FRAGMENT_MIN`] characters) at their start or their end.
const FRAGMENT_SECRET_LEN: usize = 16;

/// The shortest piece of a secret that is found on its own.
const FRAGMENT_MIN: usize = 8;

/// A credential's value. Cannot be displayed or serialized; `Debug` shows `[redacted]`.
/// Making one teaches the process's redactor every form of it (see the module's docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: Arc<str>,
}

impl Secret {
    /// A secret with this value, learnt by the process's redactor.
    pub fn new(value: impl Into<String>) -> Secret {
        let value: String = value.into();
        learn(&value);
        Secret {
            value: Arc::from(value),
        }
    }

    /// A URL that is a secret (a Slack incoming webhook: whoever holds it can post): the
    /// whole URL, and its path and query on their own (a receiver echoing its request line
    /// shows only those), are learnt.
    pub fn url(value: impl Into<String>) -> Secret {
        let secret = Secret::new(value);
        if let Some((_, rest)) = secret.value.split_once("://")
            && let Some(slash) = rest.find('/')
        {
            learn(&rest[slash..]);
        }
        secret
    }

    /// The value, to put on the wire. Never format it into a message.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// An `Authorization` header value built from this secret (`Bearer …`, `Basic …`): a
    /// secret itself, learnt whole.
    pub fn header_value(&self, scheme: &str) -> Secret {
        Secret::new(format!("{scheme} {}", self.value))
    }

    /// The `Authorization: Basic` value of `username` with this password (RFC 7617), learnt
    /// whole (the password's own base64 forms are learnt already, at every alignment).
    pub fn basic_auth(&self, username: &str) -> Secret {
        let credentials = Secret::new(format!("{username}:{}", self.value));
        Secret::new(format!(
            "Basic {}",
            base64(credentials.value.as_bytes(), Alphabet::Standard, true)
        ))
    }

    /// Its length in bytes (to say a secret is short without saying what it is).
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl SecretSource {
    /// Reads the secret: the file's content or the variable's value, trimmed (a trailing
    /// newline is never part of a token). A missing or empty one is
    /// [`Error::Usage`](crate::Error::Usage) naming the file or the variable, never a value.
    /// The secret is learnt by the process's redactor as it is read.
    pub fn read(&self) -> Result<Secret> {
        let value = self.read_unchecked()?;
        check_long_enough(&value, &self.describe())?;
        Ok(Secret::new(value))
    }

    /// The value, trimmed, not yet checked nor learnt.
    fn read_unchecked(&self) -> Result<String> {
        let value = match self {
            SecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!(
                    "cannot read the secret file {}: {e}",
                    path.display()
                ))
            })?,
            SecretSource::Env(name) => std::env::var(name).map_err(|_| {
                Error::Usage(format!(
                    "the environment variable {name} is not set (or not UTF-8); the policy names it for a secret"
                ))
            })?,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::Usage(format!("{} is empty", self.describe())));
        }
        Ok(value.to_owned())
    }

    /// Where the secret is, in words: `the secret file F`, `the environment variable V`.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => format!("the secret file {}", path.display()),
            SecretSource::Env(name) => format!("the environment variable {name}"),
        }
    }
}

/// Reads every secret `policy` names and so teaches the process's redactor each of them
/// (a Slack URL with its path), before anything runs: an echo must be redacted even when
/// it comes before the secret's own first use — a `before` hook's output quoting the
/// Slack URL the first notification will read, a scrape page quoting a webhook's key. A
/// secret too short to be redacted is refused here, before anything is changed
/// ([`check_long_enough`]: exit 2, also from `policy lint`); one that cannot be read at all
/// is left to fail where it is used, saying so there (a lint without the CI's secrets).
///
/// AWS credentials (SigV4, CloudWatch) are found at run time (environment, shared file, web
/// identity) and learnt as they are read; those in the environment are learnt now too, so
/// that a hook's output quoting them before the first query is redacted.
pub fn learn_secrets_of(policy: &crate::policy::Policy) -> Result<()> {
    use crate::policy::{
        HeaderValueSpec, HookAction, MetricsSourceSpec, NotificationChannel, PrometheusAuth,
    };
    let mut sources: Vec<&SecretSource> = Vec::new();
    if let MetricsSourceSpec::Prometheus(spec) = &policy.metrics {
        match &spec.auth {
            PrometheusAuth::None => {}
            PrometheusAuth::Bearer(source) => sources.push(source),
            PrometheusAuth::Basic { password, .. } => sources.push(password),
            PrometheusAuth::OAuth2(oauth2) => sources.push(&oauth2.client_secret),
            // The AWS credentials are found at run time (environment, shared file, web
            // identity) and learnt as they are read; those in the environment are learnt now
            // too, so that a hook's output quoting them before the first query is redacted.
            PrometheusAuth::SigV4(_) => learn_aws_environment()?,
        }
        for (_, value) in &spec.headers {
            if let HeaderValueSpec::Secret(source) = value {
                sources.push(source);
            }
        }
    }
    if let MetricsSourceSpec::Json(spec) = &policy.metrics {
        sources.extend(spec.secret_sources());
        // CloudWatch signs with AWS credentials, found as for SigV4 above.
        if let crate::policy::ProviderApi::CloudWatch(_) = spec.api {
            learn_aws_environment()?;
        }
    }
    for hook in &policy.hooks {
        if let HookAction::Webhook {
            secret: Some(source),
            ..
        } = &hook.action
        {
            sources.push(source);
        }
    }
    for notification in &policy.notifications {
        match &notification.channel {
            NotificationChannel::Webhook {
                secret: Some(source),
                ..
            } => sources.push(source),
            NotificationChannel::Webhook { secret: None, .. } => {}
            NotificationChannel::Slack { url } => {
                if let Ok(value) = url.read_unchecked() {
                    check_long_enough(&value, &url.describe())?;
                    let _ = Secret::url(value);
                }
            }
        }
    }
    for source in sources {
        if let Ok(value) = source.read_unchecked() {
            check_long_enough(&value, &source.describe())?;
            let _ = Secret::new(value);
        }
    }
    Ok(())
}

/// Learns the AWS secret key and session token of the environment, if set.
fn learn_aws_environment() -> Result<()> {
    for name in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Ok(value) = SecretSource::Env(name.to_owned()).read_unchecked() {
            check_long_enough(&value, name)?;
            let _ = Secret::new(value);
        }
    }
    Ok(())
}

/// Refuses a secret shorter than [`MIN_SECRET_LEN`]: the redactor could not look for it
/// (it would match ordinary words and numbers everywhere), so an echo of it could reach an
/// output. Refused where it is read, before anything is sent with it (exit 2), naming where
/// it came from (`what`) and its length, never its value.
pub fn check_long_enough(value: &str, what: &str) -> Result<()> {
    let length = value.chars().count();
    if length < MIN_SECRET_LEN {
        return Err(Error::Usage(format!(
            "{what} holds a secret of {length} character{}; canary needs at least \
             {MIN_SECRET_LEN}, as a shorter one cannot be told apart from ordinary text and \
             so could not be kept out of logs and reports",
            if length == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// Finds secrets in text and replaces them with [`REDACTED`].
///
/// [`Redactor::learn`] adds a secret with every form of it; [`Redactor::redact`] replaces
/// the longest forms first, so that a whole header (`Bearer …`) goes before the token
/// inside it, and then pieces cut from a long secret's start or end.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Whole forms, longest first.
    forms: Vec<String>,
    /// Secrets whose start or end is also looked for on its own.
    fragmented: Vec<String>,
}

impl Redactor {
    /// A redactor that knows no secret.
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Whether it knows no secret.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Learns `secret` and every form an echo of it can take. Secrets shorter than
    /// [`MIN_SECRET_LEN`] are not looked for (see there).
    pub fn learn(&mut self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let mut new = vec![secret.to_owned()];
        new.extend(escaped_forms(secret));
        for alphabet in [Alphabet::Standard, Alphabet::Url] {
            for pad in [true, false] {
                new.push(base64(secret.as_bytes(), alphabet, pad));
            }
            new.extend(base64_cores(secret.as_bytes(), alphabet));
        }
        let mut changed = false;
        for form in new {
            let long_enough = form == secret || form.len() >= MIN_FORM_LEN;
            if long_enough && !self.forms.contains(&form) {
                self.forms.push(form);
                changed = true;
            }
        }
        if changed {
            // Longest first; ties in a fixed order so that redaction is deterministic.
            self.forms
                .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
        if secret.len() >= FRAGMENT_SECRET_LEN && !self.fragmented.iter().any(|s| s == secret) {
            self.fragmented.push(secret.to_owned());
        }
    }

    /// `text` with every secret it knows, in every form, replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for form in &self.forms {
            if text.contains(form.as_str()) {
                text = Cow::Owned(text.replace(form.as_str(), REDACTED));
            }
        }
        for secret in &self.fragmented {
            if let Some(cut) = redact_fragments(&text, secret) {
                text = Cow::Owned(cut);
            }
        }
        text
    }

    /// Every string in `value` (object keys included) redacted.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => {
                if let Cow::Owned(clean) = self.redact(text) {
                    *text = clean;
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    self.redact_json(item);
                }
            }
            serde_json::Value::Object(map) => {
                let dirty: Vec<String> = map
                    .keys()
                    .filter(|k| matches!(self.redact(k), Cow::Owned(_)))
                    .cloned()
                    .collect();
                for key in dirty {
                    if let Some(item) = map.remove(&key) {
                        map.insert(self.redact(&key).into_owned(), item);
                    }
                }
                for item in map.values_mut() {
                    self.redact_json(item);
                }
            }
            _ => {}
        }
    }
}

/// The process's redactor: every [`Secret`] made teaches it.
static PROCESS: RwLock<Redactor> = RwLock::new(Redactor {
    forms: Vec::new(),
    fragmented: Vec::new(),
});

/// Teaches the process's redactor `secret` (as [`Secret::new`] does).
fn learn(secret: &str) {
    // A poisoned lock still holds a usable list: a panic elsewhere must not stop redaction.
    PROCESS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .learn(secret);
}

/// `text` with every secret the process has read, in every form, replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let redactor = PROCESS.read().unwrap_or_else(PoisonError::into_inner);
    if redactor.is_empty() {
        return Cow::Borrowed(text);
    }
    match redactor.redact(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(clean) => Cow::Owned(clean),
    }
}

/// [`redact`] into a `String`.
pub fn redacted(text: &str) -> String {
    redact(text).into_owned()
}

/// Every string in `value` redacted with the process's redactor.
pub fn redact_json(value: &mut serde_json::Value) {
    let redactor = PROCESS.read().unwrap_or_else(PoisonError::into_inner);
    if !redactor.is_empty() {
        redactor.redact_json(value);
    }
}

/// A copy of `value` with every string in it redacted: the final pass over whatever is
/// written whole (a report, a rollout's state). It goes through the value's JSON form, so no
/// field can be forgotten; a value that does not come back from its JSON form is returned
/// as it was — which happens only when a secret was redacted out of one of the type's own
/// names (a field or variant name containing the whole of a short secret; a documented
/// limit, docs/reliability.md).
///
/// A value none of whose strings needs redacting — nearly every one — is only walked
/// ([`scan::needs_redaction`]) and cloned: building its JSON tree and the value again from
/// it was a fifth of a controller's processor time, at each of its rollouts' saves.
pub fn redact_value<T: Serialize + DeserializeOwned + Clone>(value: &T) -> T {
    redacted_copy(value).unwrap_or_else(|| value.clone())
}

/// [`redact_value`], `None` when it would return `value` as it is (no copy is made): how
/// the state stores pass a rollout on.
fn redacted_copy<T: Serialize + DeserializeOwned>(value: &T) -> Option<T> {
    let redactor = PROCESS.read().unwrap_or_else(PoisonError::into_inner);
    if redactor.is_empty() || scan::needs_redaction(&redactor, value) == Some(false) {
        return None;
    }
    let mut json = serde_json::to_value(value).ok()?;
    redactor.redact_json(&mut json);
    drop(redactor);
    serde_json::from_value(json).ok()
}

/// Replaces the start or end of `secret` where it stands cut short in `text` (at least
/// half of it and [`FRAGMENT_MIN`] characters): a proxy that truncated its echo leaves
/// such a piece. `None` when there is none.
fn redact_fragments(text: &str, secret: &str) -> Option<String> {
    let half = secret.len().div_ceil(2).max(FRAGMENT_MIN);
    let (Some(head), Some(tail)) = (
        secret.get(..half),
        secret
            .len()
            .checked_sub(half)
            .and_then(|at| secret.get(at..)),
    ) else {
        return None;
    };
    if !text.contains(head) && !text.contains(tail) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut cut: Vec<(usize, usize)> = Vec::new();
    for (at, _) in text.match_indices(head) {
        // Extend while the text goes on like the secret.
        let len = bytes[at..]
            .iter()
            .zip(secret.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        cut.push((at, at + len));
    }
    for (at, _) in text.match_indices(tail) {
        let end = at + tail.len();
        let len = bytes[..end]
            .iter()
            .rev()
            .zip(secret.as_bytes().iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        cut.push((end - len, end));
    }
    cut.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (start, end) in cut {
        if end <= from {
            continue;
        }
        let start = start.max(from);
        // Cut on character boundaries only (a secret's bytes are whole characters, but
        // the extension may stop inside one that merely begins alike).
        let start = floor_boundary(text, start);
        let end = ceil_boundary(text, end);
        out.push_str(&text[from..start]);
        out.push_str(REDACTED);
        from = end;
    }
    out.push_str(&text[from..]);
    Some(out)
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// The forms of `secret` that escaping in the outputs and by echoing servers produces:
/// URL-encoded (upper- and lowercase hex, and as a form field), JSON (also as Go escapes
/// `<`, `>` and `&`), HTML and Rust `Debug`. Only those that differ from the secret.
fn escaped_forms(secret: &str) -> Vec<String> {
    let mut forms = Vec::new();
    let mut push = |form: String| {
        if form != secret && !forms.contains(&form) {
            forms.push(form);
        }
    };
    push(percent_encode(secret, false, false));
    push(percent_encode(secret, true, false));
    push(percent_encode(secret, false, true));
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(&json)
        .to_owned();
    push(
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
    );
    push(json);
    let debug = format!("{secret:?}");
    push(debug[1..debug.len() - 1].to_owned());
    for (quote, apostrophe) in [("&quot;", "&#39;"), ("&#34;", "&#x27;")] {
        push(
            secret
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', quote)
                .replace('\'', apostrophe),
        );
    }
    forms
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set; `plus` writes a space
/// as `+`, as HTML forms do.
fn percent_encode(text: &str, lower: bool, plus: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else if plus && byte == b' ' {
            out.push('+');
        } else if lower {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A base64 alphabet (RFC 4648).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// `+` and `/`.
    Standard,
    /// `-` and `_`, for URLs.
    Url,
}

/// Base64 of `bytes` (RFC 4648), padded with `=` when `pad`.
pub fn base64(bytes: &[u8], alphabet: Alphabet, pad: bool) -> String {
    let table: &[u8; 64] = match alphabet {
        Alphabet::Standard => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        Alphabet::Url => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The characters of the base64 of any text holding `secret` that depend on the secret's
/// bytes alone, for each of the three positions the secret can start at within a 3-byte
/// group: whatever surrounds it (`user:` before a password, other headers after it), these
/// appear in the encoding.
fn base64_cores(secret: &[u8], alphabet: Alphabet) -> Vec<String> {
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(secret);
        let encoded = base64(&bytes, alphabet, false);
        // The first characters mix in the bytes before; the last, the bytes after.
        let skip = [0, 2, 3][offset];
        let total = offset + secret.len();
        let end = total / 3 * 4 + [0, 1, 2][total % 3];
        if let Some(core) = encoded.get(skip..end.min(encoded.len())) {
            cores.push(core.to_owned());
        }
    }
    cores
}

/// An error's message and its causes', each redacted: what a chain of errors from outside
/// becomes before it is kept or shown (the original's types are gone; their text remains).
#[derive(Debug)]
pub struct RedactedError {
    message: String,
    source: Option<Box<RedactedError>>,
}

impl RedactedError {
    /// The chain of `error`, redacted with the process's redactor.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> RedactedError {
        RedactedError {
            message: redacted(&error.to_string()),
            source: error
                .source()
                .map(|cause| Box::new(RedactedError::of(cause))),
        }
    }
}

impl std::fmt::Display for RedactedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RedactedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// This error with every text in it, and in its causes, redacted.
    pub fn redacted(self) -> Error {
        let chain = |source: Option<BoxError>| -> Option<BoxError> {
            source.map(|s| Box::new(RedactedError::of(s.as_ref())) as BoxError)
        };
        match self {
            Error::Policy(policy) => Error::Policy(policy),
            Error::Recording { file, message } => Error::Recording {
                file: redacted(&file),
                message: redacted(&message),
            },
            Error::Statistics { test, reason } => Error::Statistics {
                test,
                reason: redacted(&reason),
            },
            Error::Unavailable {
                component,
                address,
                message,
                source,
            } => Error::Unavailable {
                component,
                address: redacted(&address),
                message: redacted(&message),
                source: chain(source),
            },
            Error::Mismatch { component, message } => Error::Mismatch {
                component,
                message: redacted(&message),
            },
            Error::Usage(message) => Error::Usage(redacted(&message)),
            Error::ClaimLost(message) => Error::ClaimLost(redacted(&message)),
        }
    }
}

impl Tick {
    /// This tick with every reason and warning redacted (the numbers are numbers).
    pub fn redacted(mut self) -> Tick {
        for reading in self.readings.values_mut() {
            if let Reading::NoData { reason } | Reading::Invalid { reason } = reading
                && let Cow::Owned(clean) = redact(reason)
            {
                *reason = clean;
            }
        }
        for warning in &mut self.warnings {
            if let Cow::Owned(clean) = redact(warning) {
                *warning = clean;
            }
        }
        self
    }
}

/// A port with everything it hands in redacted: the errors (and their causes), a metrics
/// source's readings and warnings, a router's and a store's messages, and a saved rollout
/// both ways. Wrapped around every adapter where the binary builds it, so no adapter, of
/// today or added later, can hand the rest of the program a secret.
pub struct Redacted<T: ?Sized> {
    inner: Box<T>,
}

impl<T: ?Sized> Redacted<T> {
    /// `inner`, redacted.
    pub fn new(inner: Box<T>) -> Redacted<T> {
        Redacted { inner }
    }
}

#[async_trait]
impl MetricsSource for Redacted<dyn MetricsSource> {
    async fn read(&self, since: Timestamp, at: Timestamp) -> Result<Tick> {
        self.inner
            .read(since, at)
            .await
            .map(Tick::redacted)
            .map_err(Error::redacted)
    }

    // Forwarded, not left to the default: the default asks nothing.
    async fn preflight(&self) -> Result<()> {
        self.inner.preflight().await.map_err(Error::redacted)
    }

    // Forwarded, not left to the default: the default would read tick by tick through
    // `read` and lose the source's own way of reading a past window.
    async fn read_past(&self, since: Timestamp, times: &[Timestamp]) -> Result<Vec<Tick>> {
        self.inner
            .read_past(since, times)
            .await
            .map(|ticks| ticks.into_iter().map(Tick::redacted).collect())
            .map_err(Error::redacted)
    }

    async fn checkpoint(&self) -> Option<serde_json::Value> {
        let mut checkpoint = self.inner.checkpoint().await?;
        redact_json(&mut checkpoint);
        Some(checkpoint)
    }

    async fn restore(&self, checkpoint: &serde_json::Value) -> Result<()> {
        self.inner
            .restore(checkpoint)
            .await
            .map_err(Error::redacted)
    }

    fn describe(&self) -> String {
        redacted(&self.inner.describe())
    }
}

#[async_trait]
impl TrafficRouter for Redacted<dyn TrafficRouter> {
    async fn set_canary_weight(&self, weight: u8) -> Result<()> {
        self.inner
            .set_canary_weight(weight)
            .await
            .map_err(Error::redacted)
    }

    async fn canary_weight(&self) -> Result<u8> {
        self.inner.canary_weight().await.map_err(Error::redacted)
    }

    // Every method is forwarded: the trait's defaults (no route, nothing achieved) would
    // hide what the router behind says.
    async fn achieved_share(&self) -> Result<Option<crate::ports::AchievedShare>> {
        self.inner.achieved_share().await.map_err(Error::redacted)
    }

    async fn set_canary_route(&self, route: &crate::policy::StepRoute) -> Result<()> {
        self.inner
            .set_canary_route(route)
            .await
            .map_err(Error::redacted)
    }

    async fn canary_route(&self) -> Result<Option<crate::policy::StepRoute>> {
        self.inner.canary_route().await.map_err(Error::redacted)
    }

    async fn read_back(&self) -> Result<(u8, Option<crate::policy::StepRoute>)> {
        self.inner.read_back().await.map_err(Error::redacted)
    }

    async fn preflight(&self) -> Result<()> {
        self.inner.preflight().await.map_err(Error::redacted)
    }

    fn describe(&self) -> String {
        redacted(&self.inner.describe())
    }
}

#[async_trait]
impl StateStore for Redacted<dyn StateStore> {
    async fn claim(&self, take_over: bool) -> Result<()> {
        self.inner.claim(take_over).await.map_err(Error::redacted)
    }

    async fn release(&self) -> Result<()> {
        self.inner.release().await.map_err(Error::redacted)
    }

    async fn heartbeat(&self) -> Result<()> {
        self.inner.heartbeat().await.map_err(Error::redacted)
    }

    async fn check_claim(&self) -> Result<()> {
        self.inner.check_claim().await.map_err(Error::redacted)
    }

    fn heartbeat_period(&self) -> Option<std::time::Duration> {
        self.inner.heartbeat_period()
    }

    async fn holder(&self) -> Result<Option<String>> {
        self.inner
            .holder()
            .await
            .map(|holder| holder.map(|h| redacted(&h)))
            .map_err(Error::redacted)
    }

    async fn stale_claim(&self) -> Result<Option<String>> {
        self.inner
            .stale_claim()
            .await
            .map(|holder| holder.map(|h| redacted(&h)))
            .map_err(Error::redacted)
    }

    async fn load(&self) -> Result<Option<Rollout>> {
        self.inner
            .load()
            .await
            .map(|rollout| rollout.map(|r| redacted_copy(&r).unwrap_or(r)))
            .map_err(Error::redacted)
    }

    async fn save(&self, rollout: &Rollout) -> Result<()> {
        let redacted = redacted_copy(rollout);
        self.inner
            .save(redacted.as_ref().unwrap_or(rollout))
            .await
            .map_err(Error::redacted)
    }

    async fn archive(&self, rollout: &Rollout) -> Result<String> {
        self.inner
            .archive(&redact_value(rollout))
            .await
            .map_err(Error::redacted)
    }

    async fn request(&self, request: &ControlRequest) -> Result<()> {
        self.inner.request(request).await.map_err(Error::redacted)
    }

    async fn take_request(&self) -> Result<Option<ControlRequest>> {
        self.inner.take_request().await.map_err(Error::redacted)
    }

    fn describe(&self) -> String {
        redacted(&self.inner.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut redactor = Redactor::new();
        for secret in secrets {
            redactor.learn(secret);
        }
        redactor
    }

    /// The quick look of `redact_value` finds a secret wherever the long way would redact
    /// one — in a key, deep in a list, behind JSON escapes, cut short — and nowhere else.
    #[test]
    fn the_quick_look_for_secrets_agrees_with_redacting_every_string() {
        let redactor_of = redactor;
        let redactor = redactor_of(&["s3cr3t-t0ken-value", "quo\"te\\slash-secret\u{e9}\n"]);
        let changed_by_the_long_way = |value: &serde_json::Value| {
            let mut redacted = value.clone();
            redactor.redact_json(&mut redacted);
            redacted != *value
        };
        let values = [
            serde_json::json!({"phase": "waiting", "counts": [1, 2.5, -3, null, true]}),
            serde_json::json!({"a": {"b": [{"c": "Bearer s3cr3t-t0ken-value"}]}}),
            serde_json::json!({"header s3cr3t-t0ken-value": 1}),
            serde_json::json!(["x", "echo: quo\"te\\slash-secret\u{e9}\n!"]),
            serde_json::json!({"cut": "truncated s3cr3t-t0k"}),
            serde_json::json!({"base64": "czNjcjN0LXQwa2VuLXZhbHVl"}),
            serde_json::json!({"near": "s3cr3t quo te t0ken"}),
            serde_json::json!("plain"),
        ];
        let mut found = 0;
        for value in &values {
            let long = changed_by_the_long_way(value);
            assert_eq!(
                scan::needs_redaction(&redactor, value),
                Some(long),
                "{value}"
            );
            found += usize::from(long);
        }
        assert_eq!(found, 5, "the cases that hold a secret are told apart");
        // A map's integer key is a string in the JSON form; an integer value is not.
        let digits = redactor_of(&["12345678"]);
        let keyed = std::collections::BTreeMap::from([(12_345_678_u32, 1_u32)]);
        let valued = std::collections::BTreeMap::from([(1_u32, 12_345_678_u32)]);
        assert_eq!(scan::needs_redaction(&digits, &keyed), Some(true));
        assert_eq!(scan::needs_redaction(&digits, &valued), Some(false));
    }

    #[test]
    fn a_secret_cannot_be_shown_by_debug() {
        let secret = Secret::new("hunter2-value");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.expose(), "hunter2-value");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b"", Alphabet::Standard, true), "");
        assert_eq!(base64(b"f", Alphabet::Standard, true), "Zg==");
        assert_eq!(base64(b"fo", Alphabet::Standard, true), "Zm8=");
        assert_eq!(base64(b"foo", Alphabet::Standard, true), "Zm9v");
        assert_eq!(base64(b"fo", Alphabet::Standard, false), "Zm8");
        assert_eq!(
            base64(b"Aladdin:open sesame", Alphabet::Standard, true),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(&[0xfb, 0xff], Alphabet::Standard, true), "+/8=");
        assert_eq!(base64(&[0xfb, 0xff], Alphabet::Url, false), "-_8");
    }

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let token = "tok/9f8e+7d6c=5b4a-never<print>me";
        let r = redactor(&[token]);
        let shown = |text: &str| r.redact(text).into_owned();
        assert_eq!(shown(&format!("Bearer {token}!")), "Bearer [redacted]!");
        for form in [
            "tok%2F9f8e%2B7d6c%3D5b4a-never%3Cprint%3Eme",
            "tok%2f9f8e%2b7d6c%3d5b4a-never%3cprint%3eme",
            "tok/9f8e+7d6c=5b4a-never&lt;print&gt;me",
            "tok/9f8e+7d6c=5b4a-never\\u003cprint\\u003eme",
        ] {
            assert_eq!(shown(&format!("[{form}]")), "[[redacted]]", "{form}");
        }
        // Base64 of the token inside a longer text, at every alignment, in both alphabets.
        for prefix in ["", "a", "ab", "user:", "Authorization: Bearer "] {
            for alphabet in [Alphabet::Standard, Alphabet::Url] {
                let encoded = base64(
                    format!("{prefix}{token}\r\nX-Other: 1").as_bytes(),
                    alphabet,
                    true,
                );
                let clean = shown(&encoded);
                assert!(clean.contains(REDACTED), "{prefix:?}: {encoded} → {clean}");
            }
        }
    }

    #[test]
    fn a_basic_auth_header_is_redacted_whole_and_its_password_alone() {
        let password = Secret::new("pw-Zq81&wX/3c+never-print");
        let header = password.basic_auth("ci-user");
        let expected = format!(
            "Basic {}",
            base64(
                b"ci-user:pw-Zq81&wX/3c+never-print",
                Alphabet::Standard,
                true
            )
        );
        assert_eq!(header.expose(), expected);
        assert_eq!(
            redact(&format!("got `{expected}`")),
            format!("got `{REDACTED}`")
        );
        let other_user = base64(
            b"someone-else:pw-Zq81&wX/3c+never-print",
            Alphabet::Standard,
            true,
        );
        assert!(redact(&other_user).contains(REDACTED));
    }

    #[test]
    fn a_secret_cut_short_by_an_echo_is_still_redacted() {
        let token = "tok-9f8e7d6c5b4a-never-print-me";
        let r = redactor(&[token]);
        // Cut after more than half: the rest is gone.
        let cut = &token[..20];
        assert_eq!(r.redact(&format!("header: {cut}")), "header: [redacted]");
        // Its end, without its start.
        let end = &token[10..];
        assert_eq!(r.redact(&format!("…{end} ok")), "…[redacted] ok");
        // A short piece of a long secret is left: it could be anything.
        assert_eq!(r.redact("tok-9f8e"), "tok-9f8e");
    }

    #[test]
    fn short_secrets_are_not_looked_for_and_text_without_secrets_is_not_copied() {
        let r = redactor(&["pw", "abc"]);
        assert!(r.is_empty());
        let r = redactor(&["s3cr3t-value"]);
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_values_are_redacted_keys_and_all() {
        let r = redactor(&["s3cr3t-value"]);
        let mut value = serde_json::json!({
            "a": ["x s3cr3t-value y", 1, {"s3cr3t-value": "z"}],
        });
        r.redact_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"a": ["x [redacted] y", 1, {"[redacted]": "z"}]})
        );
    }

    #[test]
    fn a_url_secret_is_redacted_with_its_path_alone() {
        let _ = Secret::url("https://hooks.slack.example/services/T0AAA/B0BBB/xyzXYZ123456");
        let line = "POST /services/T0AAA/B0BBB/xyzXYZ123456 HTTP/1.1";
        assert_eq!(redact(line), "POST [redacted] HTTP/1.1");
    }

    #[test]
    fn reading_a_secret_trims_it_and_names_where_it_is_not() {
        let dir = std::env::temp_dir().join(format!("canary-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "file-token-value\n").unwrap();
        let secret = SecretSource::File(file.clone()).read().unwrap();
        assert_eq!(secret.expose(), "file-token-value");
        assert_eq!(redact("x file-token-value"), "x [redacted]");
        std::fs::write(&file, " \n").unwrap();
        let err = SecretSource::File(file.clone()).read().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the secret file {} is empty", file.display())
        );
        let err = SecretSource::Env("CANARY_CORE_TEST_UNSET".to_owned())
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("CANARY_CORE_TEST_UNSET"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 13: a secret too short to be looked for in text is refused where it is read,
    /// naming where it is and its length, never its value.
    #[test]
    fn a_secret_shorter_than_four_characters_is_refused_when_read() {
        let dir = std::env::temp_dir().join(format!("canary-short-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        for (value, length) in [("Zq9\n", "3 characters"), ("é", "1 character")] {
            std::fs::write(&file, value).unwrap();
            let err = SecretSource::File(file.clone()).read().unwrap_err();
            assert_eq!(err.exit_code(), crate::ExitCode::BadInput);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "the secret file {} holds a secret of {length}; canary needs at least 4",
                    file.display()
                )),
                "{message}"
            );
            assert!(!message.contains(value.trim()), "{message}");
        }
        std::fs::write(&file, "Zq9x").unwrap();
        assert_eq!(SecretSource::File(file).read().unwrap().expose(), "Zq9x");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn errors_are_redacted_down_their_chain() {
        let _ = Secret::new("chain-secret-value");
        let cause = std::io::Error::other("the server said chain-secret-value");
        let err = Error::Unavailable {
            component: "prometheus",
            address: "http://h".to_owned(),
            message: "echo: chain-secret-value".to_owned(),
            source: Some(Box::new(cause)),
        }
        .redacted();
        assert_eq!(err.to_string(), "prometheus at http://h: echo: [redacted]");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(cause, "the server said [redacted]");
    }

    /// Polls a future that is ready at once (the fakes below never wait).
    fn ready<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the fake adapters never wait"),
        }
    }

    const PORT_TOKEN: &str = "port-token/9f8e+7d6c=never";

    /// Outside text echoing the token raw, URL-encoded and as a base64 header dump.
    fn echo() -> String {
        format!(
            "echo {PORT_TOKEN} | {} | {}",
            percent_encode(PORT_TOKEN, false, false),
            base64(
                format!("Authorization: Bearer {PORT_TOKEN}\r\n").as_bytes(),
                Alphabet::Standard,
                true
            )
        )
    }

    fn assert_clean(text: &str) {
        assert!(!text.contains(PORT_TOKEN), "{text}");
        assert!(!text.contains("9f8e%2B7d6c"), "{text}");
        let core = &base64_cores(PORT_TOKEN.as_bytes(), Alphabet::Standard);
        assert!(core.iter().all(|c| !text.contains(c.as_str())), "{text}");
    }

    struct EchoingAdapter;

    fn echoing_error() -> Error {
        Error::Unavailable {
            component: "gateway",
            address: format!("http://h/?t={PORT_TOKEN}"),
            message: echo(),
            source: Some(Box::new(std::io::Error::other(echo()))),
        }
    }

    #[async_trait]
    impl MetricsSource for EchoingAdapter {
        async fn read(&self, _since: Timestamp, at: Timestamp) -> Result<Tick> {
            if at == Timestamp::UNIX_EPOCH {
                return Err(echoing_error());
            }
            let mut readings = std::collections::BTreeMap::new();
            readings.insert("c".to_owned(), Reading::Invalid { reason: echo() });
            Ok(Tick {
                at,
                window_seconds: 30.0,
                readings,
                warnings: vec![echo()],
            })
        }

        fn describe(&self) -> String {
            echo()
        }
    }

    #[async_trait]
    impl TrafficRouter for EchoingAdapter {
        async fn set_canary_weight(&self, _weight: u8) -> Result<()> {
            Err(echoing_error())
        }

        async fn canary_weight(&self) -> Result<u8> {
            Err(Error::Mismatch {
                component: "gateway",
                message: echo(),
            })
        }

        fn describe(&self) -> String {
            echo()
        }
    }

    /// A router that routes by request and approximates weights, to see that the redacting
    /// wrapper forwards what it says rather than the trait's defaults.
    struct RoutingAdapter;

    #[async_trait]
    impl TrafficRouter for RoutingAdapter {
        async fn set_canary_weight(&self, _weight: u8) -> Result<()> {
            Ok(())
        }

        async fn canary_weight(&self) -> Result<u8> {
            Ok(0)
        }

        async fn achieved_share(&self) -> Result<Option<crate::ports::AchievedShare>> {
            Ok(Some(crate::ports::AchievedShare {
                canary_ready: 1,
                stable_ready: 7,
            }))
        }

        async fn set_canary_route(&self, _route: &crate::policy::StepRoute) -> Result<()> {
            Ok(())
        }

        async fn canary_route(&self) -> Result<Option<crate::policy::StepRoute>> {
            Ok(Some(crate::policy::StepRoute::Mirror { percent: 5 }))
        }

        fn describe(&self) -> String {
            "routing".to_owned()
        }
    }

    #[test]
    fn the_redacted_router_forwards_every_method() {
        let router: Redacted<dyn TrafficRouter> = Redacted::new(Box::new(RoutingAdapter));
        let mirror = crate::policy::StepRoute::Mirror { percent: 5 };
        assert!(ready(router.set_canary_route(&mirror)).is_ok());
        assert_eq!(ready(router.canary_route()).unwrap(), Some(mirror.clone()));
        assert_eq!(ready(router.read_back()).unwrap(), (0, Some(mirror)));
        assert_eq!(
            ready(router.achieved_share()).unwrap(),
            Some(crate::ports::AchievedShare {
                canary_ready: 1,
                stable_ready: 7,
            }),
            "the replica-count router's achieved share is lost behind the redaction"
        );
    }

    #[test]
    fn every_port_hands_in_nothing_secret() {
        let _ = Secret::new(PORT_TOKEN).header_value("Bearer");
        let chain = |err: &Error| {
            let mut text = err.to_string();
            let mut cause = std::error::Error::source(err);
            while let Some(c) = cause {
                text.push_str(&format!(" / {c}"));
                cause = c.source();
            }
            text
        };
        let source: Redacted<dyn MetricsSource> = Redacted::new(Box::new(EchoingAdapter));
        let err = ready(source.read(Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH)).unwrap_err();
        assert_clean(&chain(&err));
        let at = Timestamp::from_second(1_767_225_600).unwrap();
        let tick = ready(source.read(at, at)).unwrap();
        assert_clean(&serde_json::to_string(&tick).unwrap());
        assert_clean(&MetricsSource::describe(&source));
        let router: Redacted<dyn TrafficRouter> = Redacted::new(Box::new(EchoingAdapter));
        assert_clean(&chain(&ready(router.set_canary_weight(10)).unwrap_err()));
        assert_clean(&chain(&ready(router.canary_weight()).unwrap_err()));
        assert_clean(&TrafficRouter::describe(&router));
    }
}
