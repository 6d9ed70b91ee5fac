//! [`ConfigMapStateStore`]: a rollout's state in a ConfigMap, so that whichever runner runs
//! `canary rollout` next resumes it, and only one drives it at a time.
//!
//! The ConfigMap (`canary-rollout-SERVICE` unless named otherwise) holds up to three keys:
//! - `rollout.json` — the [`Rollout`], compact JSON;
//! - `owner.json` — the [`Holder`] driving it (host or CI job, pid, start time) and when it
//!   last renewed its claim (a heartbeat every `ttl/6`, see [`canary_core::claim`]); absent
//!   when nobody drives it;
//! - `request.json` — a [`ControlRequest`] left by `canary promote` or `canary abort`.
//!
//! Every write is a JSON merge patch carrying the `metadata.resourceVersion` it was decided on
//! — the one just read, the one a load read less than a second before (a claim after a load),
//! or the one this store's own last write produced (a save after a save, claim or heartbeat) —
//! so a write based on anything older is refused (409 Conflict) and redone from a fresh read;
//! a save that finds another holder in `owner.json` stops with "taken over". Archived rollouts go to
//! ConfigMaps of their own, `NAME-YYYYMMDD-HHMMSS`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canary_core::claim::{DEFAULT_CLAIM_TTL, heartbeat_period, is_stale};
use canary_core::ports::StateStore;
use canary_core::rollout::{ControlRequest, Rollout};
use canary_core::{Error, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::KubernetesError;
use crate::{CONFLICT_BACKOFF, FIELD_MANAGER, KubeConnection, Permission, api_error};
use canary_core::retry::{Failure, retry};

/// The key of the rollout.
pub const ROLLOUT_KEY: &str = "rollout.json";
/// The key of the holder.
pub const OWNER_KEY: &str = "owner.json";
/// The key of a pending request.
pub const REQUEST_KEY: &str = "request.json";
/// A ConfigMap holds at most 1 MiB; leave room for the metadata and the other keys.
const MAX_STATE_BYTES: usize = 900 * 1024;
/// How often [`StateStore::take_request`] asks the API server (the driver polls much more
/// often; once a second is quick enough for a person and light on the API server).
const REQUEST_POLL: Duration = Duration::from_secs(1);
/// How long the ConfigMap a load read answers the `holder` and `claim` that follow it.
const FRESH_READ: Duration = Duration::from_secs(1);

/// Who drives a rollout: enough for a person to find it, and to tell two drivers apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The host, and the CI job when there is one (`$CANARY_HOLDER` overrides both).
    pub identity: String,
    /// The process id.
    pub pid: u32,
    /// When the process started driving.
    pub started_at: Timestamp,
    /// Its last heartbeat (renewed every `ttl/6`, and with every save; see
    /// [`canary_core::claim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<Timestamp>,
    /// How long its claim lives without a heartbeat, in seconds, as it promised (absent in
    /// records of older versions: [`DEFAULT_CLAIM_TTL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// The host it runs on, exactly (absent in records of older versions, and then its pid
    /// is never looked up: only its heartbeat can make its claim stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its pid namespace (`pid:[4026531836]`): a pid means something only inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// Its kernel's boot id (`/proc/sys/kernel/random/boot_id`): two machines of one name
    /// both have the initial pid namespace, whose name is the same constant on every Linux
    /// host; the boot id tells them (and a reboot) apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl Holder {
    /// This process: `$CANARY_HOLDER`, or the host name and the CI job found in the usual
    /// variables (GitHub Actions, GitLab CI, Jenkins, Buildkite).
    ///
    /// What names the process is read once (the environment, /proc): a controller makes a
    /// holder for each rollout it resumes, and reading them each time was 1.4 % of a
    /// take-over's processor time. The start time is now.
    pub fn this_process() -> Holder {
        static THIS_PROCESS: std::sync::OnceLock<Holder> = std::sync::OnceLock::new();
        Holder {
            started_at: Timestamp::now(),
            ..THIS_PROCESS.get_or_init(Holder::read_this_process).clone()
        }
    }

    fn read_this_process() -> Holder {
        let identity = std::env::var("CANARY_HOLDER")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| {
                let host = host_name();
                match ci_job() {
                    Some(job) => format!("{host} ({job})"),
                    None => host,
                }
            });
        Holder {
            identity,
            pid: std::process::id(),
            started_at: Timestamp::now(),
            renewed_at: None,
            ttl_seconds: None,
            host: Some(host_name()),
            pid_namespace: pid_namespace(),
            boot_id: boot_id(),
        }
    }

    /// Whether this holder no longer counts as alive at `now`: no heartbeat within its time
    /// to live (since it started, if it never renewed), or a process of this host that is
    /// gone.
    fn is_gone(&self, now: Timestamp) -> bool {
        let ttl = self
            .ttl_seconds
            .map_or(DEFAULT_CLAIM_TTL, Duration::from_secs);
        is_stale(self.renewed_at.unwrap_or(self.started_at), ttl, now)
            || self.is_dead_local_process()
    }

    /// Whether two records name the same driver.
    fn same(&self, other: &Holder) -> bool {
        self.identity == other.identity
            && self.pid == other.pid
            && self.started_at == other.started_at
    }

    /// Whether this record names a process of this host, boot and pid namespace that is gone
    /// (no such pid, or a zombie): such a claim is stale, whoever asks. The host is compared
    /// exactly, never by the identity's prefix (`ci-runner-7` is not `ci`), and a pid of
    /// another pid namespace (a container sharing the host's name) means nothing here; a
    /// /proc that cannot be read proves nothing either. The file store's rule.
    fn is_dead_local_process(&self) -> bool {
        if self.pid == std::process::id()
            || self.host.as_deref() != Some(host_name().as_str())
            || self.pid_namespace.is_none()
            || self.pid_namespace != pid_namespace()
            || self.boot_id.is_none()
            || self.boot_id != boot_id()
        {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // A zombie (killed, not yet reaped) is gone too.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| matches!(state, 'Z' | 'X')),
            Err(err) => err.kind() == std::io::ErrorKind::NotFound,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pid {}, started {}",
            self.identity, self.pid, self.started_at
        )?;
        if let Some(at) = self.renewed_at {
            write!(f, ", last heartbeat {at}")?;
        }
        Ok(())
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// This kernel's boot id (a random UUID per boot); `None` where there is no /proc.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// This process's pid namespace, as the kernel names it (`pid:[4026531836]`); `None`
/// where there is no /proc.
fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.display().to_string())
}

fn ci_job() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(run) = var("GITHUB_RUN_ID") {
        let job = var("GITHUB_JOB").unwrap_or_default();
        return Some(
            format!("GitHub Actions run {run} {job}")
                .trim_end()
                .to_owned(),
        );
    }
    if let Some(job) = var("CI_JOB_ID") {
        return Some(format!("GitLab CI job {job}"));
    }
    if let Some(tag) = var("BUILD_TAG") {
        return Some(format!("Jenkins {tag}"));
    }
    var("BUILDKITE_JOB_ID").map(|job| format!("Buildkite job {job}"))
}

/// The rollout's state in `map`, as text (`None`: no ConfigMap, or no state in it).
fn state_in(map: Option<&ConfigMap>) -> Option<&str> {
    map?.data.as_ref()?.get(ROLLOUT_KEY).map(String::as_str)
}

/// What the answer to a write of the ConfigMap is read for: the resourceVersion it produced.
/// The answer is the whole ConfigMap, the rollout's state in it, which a controller read into
/// a `ConfigMap` — every string of it copied — at each save of each of its rollouts; here the
/// rest is skipped unread.
#[derive(Deserialize)]
struct Written {
    #[serde(default)]
    metadata: WrittenMetadata,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrittenMetadata {
    resource_version: Option<String>,
}

/// The rollout state of one service in a ConfigMap (see the module docs).
pub struct ConfigMapStateStore {
    connection: KubeConnection,
    namespace: Option<String>,
    name: String,
    service: String,
    holder: Holder,
    /// How long this store's claim lives without a heartbeat.
    ttl: Duration,
    claimed: AtomicBool,
    /// The resourceVersion this store's last save, claim or heartbeat produced, and whether
    /// it was claimed then: the next save is guarded by it without reading the ConfigMap
    /// first (see [`ConfigMapStateStore::save_unread`]). `None` after any other write of
    /// this store.
    saved_version: Mutex<Option<(String, bool)>>,
    /// The ConfigMap as [`StateStore::load`] last read it (`None` inside: there was none),
    /// and when, until a claim takes it or this store writes: the `holder` and the claim's
    /// first attempt that follow within [`FRESH_READ`] use it instead of reading again
    /// ([`ConfigMapStateStore::loaded_if_fresh`]), and the claim refuses a state changed since
    /// ([`StateStore::claim`]).
    loaded: Mutex<Option<(Instant, Option<ConfigMap>)>>,
    last_request_check: Mutex<Option<Instant>>,
    /// How often [`StateStore::take_request`] asks the API server at most.
    request_poll: Duration,
    /// A claim taking over takes over only holders whose identity starts with this
    /// ([`ConfigMapStateStore::taking_over_only_from`]); any holder when `None`.
    take_over_only_from: Option<String>,
}

impl ConfigMapStateStore {
    /// The default ConfigMap name of a service's rollout.
    pub fn default_name(service: &str) -> String {
        format!("canary-rollout-{service}")
    }

    /// The store of `service`'s rollout in ConfigMap `name` (default
    /// [`default_name`](Self::default_name)) of `namespace` (default: the connection's).
    /// Refuses a name Kubernetes would not take.
    pub fn new(
        connection: KubeConnection,
        namespace: Option<String>,
        service: &str,
        name: Option<String>,
    ) -> Result<ConfigMapStateStore> {
        let name = name.unwrap_or_else(|| Self::default_name(service));
        let valid = !name.is_empty()
            && name.len() <= 253 - 16
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(Error::Usage(format!(
                "{name:?} cannot name a ConfigMap (lower-case letters, digits, `-` and `.`); name one with --state-configmap"
            )));
        }
        Ok(ConfigMapStateStore {
            connection,
            namespace,
            name,
            service: service.to_owned(),
            holder: Holder::this_process(),
            ttl: DEFAULT_CLAIM_TTL,
            claimed: AtomicBool::new(false),
            saved_version: Mutex::new(None),
            loaded: Mutex::new(None),
            last_request_check: Mutex::new(None),
            request_poll: REQUEST_POLL,
            take_over_only_from: None,
        })
    }

    /// The same store, driven as `holder` (tests make two drivers in one process).
    pub fn with_holder(mut self, holder: Holder) -> ConfigMapStateStore {
        self.holder = holder;
        self
    }

    /// The same store, whose claims live `ttl` without a heartbeat
    /// ([`DEFAULT_CLAIM_TTL`] otherwise).
    pub fn with_claim_ttl(mut self, ttl: Duration) -> ConfigMapStateStore {
        self.ttl = ttl;
        self
    }

    /// The same store, whose [`StateStore::take_request`] asks the API server at most every
    /// `poll` (once a second otherwise). `canary controller` asks only when its watch says a
    /// request was left, and then at once (`Duration::ZERO`).
    pub fn with_request_poll(mut self, poll: Duration) -> ConfigMapStateStore {
        self.request_poll = poll;
        self
    }

    /// The same store, whose claims taking over take over only a holder whose identity
    /// starts with `prefix`; any other is "in progress", as without taking over. `canary
    /// controller` takes over another controller process's claim, never that of `canary
    /// promote|abort` driving a rollout from a shell. The rule is checked at every attempt of
    /// the claim: a shell's claim written between the claim's read and its write (a 409,
    /// read again) is refused, not taken over.
    pub fn taking_over_only_from(mut self, prefix: impl Into<String>) -> ConfigMapStateStore {
        self.take_over_only_from = Some(prefix.into());
        self
    }

    /// Whether a claim (taking over or not) may take `owner`'s place now.
    fn may_take_from(&self, owner: &Holder, take_over: bool) -> bool {
        if owner.same(&self.holder) {
            return true;
        }
        match &self.take_over_only_from {
            Some(prefix) if take_over => owner.identity.starts_with(prefix.as_str()),
            _ => take_over || owner.is_gone(Timestamp::now()),
        }
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn api(&self) -> Result<(Api<ConfigMap>, String), KubernetesError> {
        let (client, default_namespace) = self.connection.client().await?;
        let namespace = self.namespace.clone().unwrap_or(default_namespace);
        Ok((Api::namespaced(client, &namespace), namespace))
    }

    fn object(&self, namespace: &str) -> String {
        format!("ConfigMap {namespace}/{}", self.name)
    }

    fn permission(&self, verb: &'static str, namespace: &str) -> Permission {
        Permission {
            verb,
            api_group: String::new(),
            resource: "configmaps".to_owned(),
            namespace: namespace.to_owned(),
            name: (verb != "create").then(|| self.name.clone()),
        }
    }

    /// The ConfigMap, or `None` when there is none.
    async fn read(
        &self,
        api: &Api<ConfigMap>,
        namespace: &str,
    ) -> Result<Option<ConfigMap>, KubernetesError> {
        match api.get(&self.name).await {
            Ok(map) => Ok(Some(map)),
            Err(err) if crate::is_not_found(&err) => Ok(None),
            Err(err) => Err(api_error(
                &self.object(namespace),
                self.permission("get", namespace),
                err,
            )),
        }
    }

    /// The ConfigMap [`StateStore::load`] read, when it read it less than [`FRESH_READ`]
    /// ago and nothing was written since. A controller resuming a rollout loads it, asks who
    /// holds it and claims it: one read for the three rather than three (at a take-over of
    /// 10,000 rollouts, 20,000 requests fewer). A claim decided on it is still a write guarded
    /// by its resourceVersion (409, and read again, when anything was written since); who
    /// holds it is then as old as a read a second ago.
    fn loaded_if_fresh(&self) -> Option<Option<ConfigMap>> {
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*loaded {
            Some((at, map)) if at.elapsed() < FRESH_READ => Some(map.clone()),
            _ => None,
        }
    }

    /// What [`StateStore::load`] read, taken (a claim decides on it once).
    fn take_loaded(&self) -> Option<(Instant, Option<ConfigMap>)> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn forget_loaded(&self) {
        *self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn owner_of(
        &self,
        map: &ConfigMap,
        namespace: &str,
    ) -> Result<Option<Holder>, KubernetesError> {
        let Some(text) = map.data.as_ref().and_then(|d| d.get(OWNER_KEY)) else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|err| KubernetesError::Object {
                object: self.object(namespace),
                message: format!("key {OWNER_KEY} does not parse ({err}): {text:?}"),
            })
    }

    fn in_progress(&self, holder: &Holder) -> Error {
        Error::Mismatch {
            component: "state",
            message: format!(
                // What to do next beyond taking over depends on the command that asked.
                "a rollout of {} is in progress, owned by {holder}; `canary rollout --take-over` resumes it if that driver is gone",
                self.service
            ),
        }
    }

    /// This process as the owner record, stamped now.
    fn owner_json(&self) -> String {
        let mut holder = self.holder.clone();
        holder.renewed_at = Some(Timestamp::now());
        holder.ttl_seconds = Some(self.ttl.as_secs().max(1));
        serde_json::to_string(&holder).unwrap_or_default()
    }

    /// Creates the ConfigMap with `data`; `false` when it exists already (someone was
    /// quicker: read it again).
    async fn create(
        &self,
        api: &Api<ConfigMap>,
        namespace: &str,
        name: &str,
        data: BTreeMap<String, String>,
    ) -> Result<bool, KubernetesError> {
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "canary".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        self.forget_loaded();
        // The connection's guard (the controller's Lease fence), on every attempt: a claim
        // retried after 409 takes the claim from whoever holds it by then.
        self.connection
            .may_write(&format!("ConfigMap {namespace}/{name}"))?;
        match api.create(&params, &map).await {
            Ok(_) => Ok(true),
            Err(err) if crate::is_conflict(&err) => Ok(false),
            Err(err) => Err(api_error(
                &format!("ConfigMap {namespace}/{name}"),
                self.permission("create", namespace),
                err,
            )),
        }
    }

    /// A merge patch of `data` guarded by the resourceVersion of `map`; `false` on a
    /// conflict (read again and redo).
    async fn patch(
        &self,
        api: &Api<ConfigMap>,
        namespace: &str,
        map: &ConfigMap,
        data: Value,
    ) -> Result<bool, KubernetesError> {
        Ok(self
            .patch_at(
                api,
                namespace,
                map.metadata.resource_version.as_deref(),
                data,
            )
            .await?
            .is_some())
    }

    /// A merge patch of `data` guarded by `version`: `Some` with the version it produced
    /// (`None` inside when the answer had none), or `None` on a conflict. Any write of this
    /// store moves the ConfigMap on from the version its last save produced.
    async fn patch_at(
        &self,
        api: &Api<ConfigMap>,
        namespace: &str,
        version: Option<&str>,
        data: Value,
    ) -> Result<Option<Option<String>>, KubernetesError> {
        self.forget_saved_version();
        self.forget_loaded();
        let body = json!({
            "metadata": {"resourceVersion": version},
            "data": data,
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        self.connection.may_write(&self.object(namespace))?;
        // `Api::patch` as it sends it, the answer read for its resourceVersion alone.
        let written = match kube::core::Request::new(api.resource_url()).patch(
            &self.name,
            &params,
            &Patch::Merge(&body),
        ) {
            Ok(request) => api.clone().into_client().request::<Written>(request).await,
            Err(err) => Err(kube::Error::BuildRequest(err)),
        };
        match written {
            Ok(written) => Ok(Some(written.metadata.resource_version)),
            Err(err) if crate::is_conflict(&err) => Ok(None),
            Err(err) => Err(api_error(
                &self.object(namespace),
                self.permission("patch", namespace),
                err,
            )),
        }
    }

    fn forget_saved_version(&self) {
        *self
            .saved_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn remember_saved_version(&self, version: Option<String>, claimed: bool) {
        *self
            .saved_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            version.filter(|v| !v.is_empty()).map(|v| (v, claimed));
    }

    /// The save of `data` without reading the ConfigMap first: a merge patch guarded by
    /// the version this store's last save produced, when it has one and was claimed as it is
    /// now. That version is the ConfigMap exactly as that save left it — this store's
    /// rollout, and this store's claim when claimed — so the checks a read would make (the
    /// owner is this store, or nobody when not claimed) hold for it; anything written since
    /// (a take-over, a request, a heartbeat, a deletion) fails the guard (409, or 404), and
    /// `false` sends the save to read and decide as before. Half of a waiting rollout's API
    /// requests were that read.
    async fn save_unread(
        &self,
        api: &Api<ConfigMap>,
        namespace: &str,
        claimed: bool,
        data: &Value,
    ) -> Result<bool, KubernetesError> {
        let saved = self
            .saved_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some((version, saved_claimed)) = saved else {
            return Ok(false);
        };
        if saved_claimed != claimed {
            return Ok(false);
        }
        match self
            .patch_at(api, namespace, Some(&version), data.clone())
            .await
        {
            Ok(Some(produced)) => {
                self.remember_saved_version(produced, claimed);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(KubernetesError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The error of a claim that found the state changed since the load before it.
    fn changed_since_loaded(&self) -> Error {
        Error::Mismatch {
            component: "state",
            message: format!(
                "the rollout of {} changed since this process read it (another driver saved it); it reads it again before it claims it",
                self.service
            ),
        }
    }

    /// The lost-claim error: who holds it now (`None`: nobody, released by someone else).
    fn lost(&self, owner: Option<&Holder>) -> Error {
        let by = owner.map_or_else(
            || format!("released by someone else (no {OWNER_KEY})"),
            |owner| format!("taken over by {owner}"),
        );
        Error::ClaimLost(format!(
            "the claim on the rollout of {} was {by}; this process stops driving it and touches nothing more",
            self.service
        ))
    }

    fn conflicted(&self, namespace: &str) -> Error {
        KubernetesError::Conflict {
            object: self.object(namespace),
            attempts: CONFLICT_BACKOFF.attempts(),
        }
        .into()
    }

    /// Runs `step` (read, decide, write) until its write does not conflict.
    async fn retrying<T, F, Fut>(&self, namespace: &str, mut step: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        retry(CONFLICT_BACKOFF, tokio::time::sleep, |attempt| {
            let step = step(attempt);
            async move {
                step.await?
                    .ok_or_else(|| Failure::Retryable(self.conflicted(namespace)))
            }
        })
        .await
    }
}

#[async_trait]
impl StateStore for ConfigMapStateStore {
    /// A claim that follows a load decides for a caller that acts on what it loaded: it
    /// refuses when the state is no longer that one (another driver saved, finished or
    /// aborted the rollout meanwhile: a shell's `canary abort --kube` released its claim
    /// between a controller's load and its claim, and the controller saved the state it had
    /// loaded over the abort — a review found it), and the caller loads again.
    async fn claim(&self, take_over: bool) -> Result<()> {
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        let loaded = self.take_loaded();
        let loaded = &loaded;
        self.retrying(namespace, move |attempt| async move {
            // The first attempt may decide on the load just before it; a retry reads again.
            let map = match loaded {
                Some((at, map)) if attempt == 1 && at.elapsed() < FRESH_READ => map.clone(),
                _ => self.read(api, namespace).await?,
            };
            if let Some((_, seen)) = loaded
                && state_in(map.as_ref()) != state_in(seen.as_ref())
            {
                return Err(self.changed_since_loaded());
            }
            let Some(map) = map else {
                let data = BTreeMap::from([(OWNER_KEY.to_owned(), self.owner_json())]);
                return Ok(self
                    .create(api, namespace, &self.name, data)
                    .await?
                    .then_some(()));
            };
            if let Some(owner) = self.owner_of(&map, namespace)?
                && !self.may_take_from(&owner, take_over)
            {
                return Err(self.in_progress(&owner));
            }
            let data = json!({ OWNER_KEY: self.owner_json() });
            let version = map.metadata.resource_version.as_deref();
            let Some(produced) = self.patch_at(api, namespace, version, data).await? else {
                return Ok(None);
            };
            // The ConfigMap as this claim left it: the next save need not read it first.
            self.remember_saved_version(produced, true);
            Ok(Some(()))
        })
        .await?;
        self.claimed.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn release(&self) -> Result<()> {
        if !self.claimed.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        self.retrying(namespace, move |_| async move {
            let Some(map) = self.read(api, namespace).await? else {
                return Ok(Some(()));
            };
            match self.owner_of(&map, namespace)? {
                Some(owner) if owner.same(&self.holder) => {
                    let data = json!({ OWNER_KEY: null });
                    Ok(self.patch(api, namespace, &map, data).await?.then_some(()))
                }
                // Taken over: the claim is not ours to give up.
                _ => Ok(Some(())),
            }
        })
        .await
    }

    async fn heartbeat(&self) -> Result<()> {
        if !self.claimed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        self.retrying(namespace, move |_| async move {
            let map = self.read(api, namespace).await?;
            let owner = match &map {
                Some(map) => self.owner_of(map, namespace)?,
                None => None,
            };
            match (map, owner) {
                (Some(map), Some(owner)) if owner.same(&self.holder) => {
                    let data = json!({ OWNER_KEY: self.owner_json() });
                    let version = map.metadata.resource_version.as_deref();
                    let Some(produced) = self.patch_at(api, namespace, version, data).await? else {
                        return Ok(None);
                    };
                    self.remember_saved_version(produced, true);
                    Ok(Some(()))
                }
                (_, owner) => Err(self.lost(owner.as_ref())),
            }
        })
        .await
    }

    async fn check_claim(&self) -> Result<()> {
        if !self.claimed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (api, namespace) = self.api().await?;
        let owner = match self.read(&api, &namespace).await? {
            Some(map) => self.owner_of(&map, &namespace)?,
            None => None,
        };
        match owner {
            Some(owner) if owner.same(&self.holder) => Ok(()),
            owner => Err(self.lost(owner.as_ref())),
        }
    }

    fn heartbeat_period(&self) -> Option<Duration> {
        Some(heartbeat_period(self.ttl))
    }

    async fn holder(&self) -> Result<Option<String>> {
        let (api, namespace) = self.api().await?;
        let map = match self.loaded_if_fresh() {
            Some(map) => map,
            None => self.read(&api, &namespace).await?,
        };
        let Some(map) = map else {
            return Ok(None);
        };
        Ok(self
            .owner_of(&map, &namespace)?
            .filter(|holder| *holder != self.holder)
            .map(|holder| holder.to_string()))
    }

    async fn stale_claim(&self) -> Result<Option<String>> {
        let (api, namespace) = self.api().await?;
        let Some(map) = self.read(&api, &namespace).await? else {
            return Ok(None);
        };
        let now = Timestamp::now();
        Ok(self
            .owner_of(&map, &namespace)?
            .filter(|owner| !owner.same(&self.holder) && owner.is_gone(now))
            .map(|owner| {
                let why = if owner.is_dead_local_process() {
                    "is gone (no such process on this host)"
                } else {
                    "counts as gone (its claim is stale)"
                };
                format!("{owner}, which {why}")
            }))
    }

    async fn load(&self) -> Result<Option<Rollout>> {
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        let map = self.read(api, namespace).await?;
        let loaded = map
            .as_ref()
            .and_then(|map| map.data.as_ref())
            .and_then(|d| d.get(ROLLOUT_KEY))
            .map(|text| Rollout::from_json(text.as_bytes()));
        *self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), map));
        let Some(loaded) = loaded else {
            return Ok(None);
        };
        loaded.map(Some).map_err(|err| {
            Error::Usage(format!(
                "{}, key {ROLLOUT_KEY}: {err}; inspect it with kubectl, then delete the key to start over",
                self.object(namespace)
            ))
        })
    }

    async fn save(&self, rollout: &Rollout) -> Result<()> {
        let json = rollout.to_json(false)?;
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        if json.len() > MAX_STATE_BYTES {
            return Err(Error::unavailable(
                "state",
                self.object(namespace),
                format!(
                    "the rollout state is {} bytes, more than a ConfigMap holds ({MAX_STATE_BYTES}); use the file store (--state-store file)",
                    json.len()
                ),
            ));
        }
        let json = json.as_str();
        let claimed = self.claimed.load(Ordering::SeqCst);
        let data = if claimed {
            json!({ ROLLOUT_KEY: json, OWNER_KEY: self.owner_json() })
        } else {
            json!({ ROLLOUT_KEY: json })
        };
        if self.save_unread(api, namespace, claimed, &data).await? {
            return Ok(());
        }
        let data = &data;
        self.retrying(namespace, move |_| async move {
            let Some(map) = self.read(api, namespace).await? else {
                let mut data = BTreeMap::from([(ROLLOUT_KEY.to_owned(), json.to_owned())]);
                if claimed {
                    data.insert(OWNER_KEY.to_owned(), self.owner_json());
                }
                return Ok(self
                    .create(api, namespace, &self.name, data)
                    .await?
                    .then_some(()));
            };
            let owner = self.owner_of(&map, namespace)?;
            if let Some(owner) = &owner
                && !owner.same(&self.holder)
            {
                return Err(self.lost(Some(owner)));
            }
            if claimed && owner.is_none() {
                return Err(self.lost(None));
            }
            let Some(produced) = self
                .patch_at(
                    api,
                    namespace,
                    map.metadata.resource_version.as_deref(),
                    data.clone(),
                )
                .await?
            else {
                return Ok(None);
            };
            self.remember_saved_version(produced, claimed);
            Ok(Some(()))
        })
        .await
    }

    async fn archive(&self, rollout: &Rollout) -> Result<String> {
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        let stamp = rollout.started_at().strftime("%Y%m%d-%H%M%S").to_string();
        let archive = format!("{}-{stamp}", self.name);
        let json = rollout.to_json(false)?;
        let data = BTreeMap::from([(ROLLOUT_KEY.to_owned(), json)]);
        if !self.create(api, namespace, &archive, data).await? {
            return Err(Error::Mismatch {
                component: "state",
                message: format!(
                    "ConfigMap {namespace}/{archive} exists already: this rollout was archived before"
                ),
            });
        }
        self.retrying(namespace, move |_| async move {
            let Some(map) = self.read(api, namespace).await? else {
                return Ok(Some(()));
            };
            let data = json!({ ROLLOUT_KEY: null });
            Ok(self.patch(api, namespace, &map, data).await?.then_some(()))
        })
        .await?;
        Ok(format!("ConfigMap {namespace}/{archive}"))
    }

    async fn request(&self, request: &ControlRequest) -> Result<()> {
        let json = serde_json::to_string(request).map_err(|e| Error::Usage(e.to_string()))?;
        let json = json.as_str();
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        self.retrying(namespace, move |_| async move {
            let Some(map) = self.read(api, namespace).await? else {
                let data = BTreeMap::from([(REQUEST_KEY.to_owned(), json.to_owned())]);
                return Ok(self
                    .create(api, namespace, &self.name, data)
                    .await?
                    .then_some(()));
            };
            // Decided on what this read saw; the patch is guarded by its resourceVersion, so a
            // request put in between fails it and this is decided again.
            let pending = map
                .data
                .as_ref()
                .and_then(|d| d.get(REQUEST_KEY))
                .and_then(|text| serde_json::from_str::<ControlRequest>(text).ok());
            if let Some(why) = pending.and_then(|pending| request.refused_by(&pending)) {
                return Err(Error::Usage(format!(
                    "refusing the {} of the rollout in ConfigMap {namespace}/{}: {why}",
                    request.action.name(),
                    self.name
                )));
            }
            let data = json!({ REQUEST_KEY: json });
            Ok(self.patch(api, namespace, &map, data).await?.then_some(()))
        })
        .await
    }

    async fn take_request(&self) -> Result<Option<ControlRequest>> {
        {
            let mut last = self
                .last_request_check
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < self.request_poll) {
                return Ok(None);
            }
            *last = Some(Instant::now());
        }
        let (api, namespace) = self.api().await?;
        let (api, namespace) = (&api, namespace.as_str());
        self.retrying(namespace, move |_| async move {
            let Some(map) = self.read(api, namespace).await? else {
                return Ok(Some(None));
            };
            let Some(text) = map.data.as_ref().and_then(|d| d.get(REQUEST_KEY)).cloned() else {
                return Ok(Some(None));
            };
            let data = json!({ REQUEST_KEY: null });
            if !self.patch(api, namespace, &map, data).await? {
                return Ok(None);
            }
            // A request that does not parse is dropped, as the file store drops it.
            Ok(Some(serde_json::from_str(&text).ok()))
        })
        .await
    }

    fn describe(&self) -> String {
        let namespace = self.namespace.as_deref().unwrap_or("(default namespace)");
        format!(
            "ConfigMap {namespace}/{} via {}",
            self.name,
            self.connection.describe()
        )
    }
}
