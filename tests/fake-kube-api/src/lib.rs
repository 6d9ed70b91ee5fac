//! `canary-fake-kube-api`: an **in-process fake** of the Kubernetes API server, for tests
//! only — no API server can run where canary's tests run. It is not a Kubernetes, and
//! nothing in the product depends on it: `canary-kubernetes` (and the binary's Kubernetes
//! tests) use it as a dev-dependency.
//!
//! [`FakeApiServer`] listens on a loopback port, for `kube::Client` to talk to over plain
//! HTTP exactly as it talks to a real API server.
//!
//! It stores objects by API group, resource, namespace and name; gives each write a new
//! `metadata.resourceVersion`; answers a write that carries a stale one with 409 Conflict
//! (a PUT's body, or the object a PATCH produces, as the real server does), a missing
//! object with 404, and a request its RBAC rules do not allow with 403 and the real
//! server's message. RBAC is enforced from `Role`/`ClusterRole` objects (verbs × apiGroups ×
//! resources × resourceNames, in the Role's namespace) once any is granted; with none, all
//! is allowed. Verbs: get, list, create (POST), update (PUT), patch (JSON patch and JSON
//! merge patch), delete. Like the real server it serves each API group only in its versions —
//! those of the objects inserted, or what [`FakeApiServer::serve`] declares — answering any
//! other version with 404 "the server could not find the requested resource", and lists the
//! groups and versions it serves at `GET /apis` (discovery, which every user may read). Every request is recorded, with its body and the time it was answered, for assertions. A test
//! can make another writer change an object right before the next writes, to provoke
//! conflicts.
//!
//! For controllers (kube-runtime's watcher, `canary controller`) it also serves, as the API
//! server documents them:
//! - **watch** (`?watch=true`, namespaced or across all namespaces): a stream of `ADDED`,
//!   `MODIFIED` and `DELETED` events with each object's resourceVersion, starting after the
//!   resourceVersion asked for (none or `"0"`: the objects there are now, as `ADDED`, then
//!   what follows); `BOOKMARK` events carrying the latest resourceVersion when
//!   `allowWatchBookmarks=true`; an `ERROR` event with a 410 `Expired` status when the
//!   resourceVersion asked for is older than the history kept ([`FakeApiServer::compact`]);
//!   the stream ends after `timeoutSeconds`;
//! - the **status subresource** of the resources declared with
//!   [`FakeApiServer::serve_status_subresource`]: writes to the object leave its `status` as
//!   it was, writes to `…/status` change nothing but the `status`, and `metadata.generation`
//!   grows only when something other than metadata and status changed;
//! - `metadata.generateName` on create, as the Events recorders use it.
//!
//! Leases (`coordination.k8s.io/v1`) are checked as the API server decodes and validates
//! them (`MicroTime` fields with six fractional digits, a positive `leaseDurationSeconds`);
//! with the resourceVersion rules above, that is what leader election relies on (a write
//! based on a stale read gets 409). Events (`v1` and `events.k8s.io`) are objects like any
//! other. Each request's bearer token is recorded, to tell the clients of a test apart, and a
//! client's requests to some paths can be left unanswered ([`FakeApiServer::never_answer`]).
//! Label and field selectors are not served (a request with one is answered as if it had
//! none).
//!
//! [`fixtures`] holds the objects the adapters are tested on.

pub mod fixtures;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::{Value, json};

/// The identity requests are made as, in 403 messages.
pub const USER: &str = "system:serviceaccount:ci:canary";

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The HTTP method, e.g. `PATCH`.
    pub method: String,
    /// The path, e.g. `/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout`.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// The `Content-Type` header (which says the kind of patch).
    pub content_type: String,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The status the fake answered with.
    pub status: u16,
    /// The bearer token the request carried: tests give each client its own kubeconfig
    /// ([`FakeApiServer::kubeconfig_with_token`]) to tell their requests apart.
    pub token: Option<String>,
    /// When the fake answered it (a write has taken effect by then): to time what clients
    /// did against the test's own clock, e.g. a standby's first writes after the leader was
    /// killed.
    pub answered_at: std::time::Instant,
}

/// Where an object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: String,
    resource: String,
    namespace: String,
    name: String,
}

/// One change, as a watch reports it.
#[derive(Clone, Debug)]
struct Change {
    /// The resourceVersion the change made.
    version: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    kind: &'static str,
    key: Key,
    object: Value,
}

/// How many changes the fake remembers for watches (the API server's watch cache keeps a
/// window too); older resourceVersions get 410 Gone.
const DEFAULT_HISTORY: usize = 100_000;

/// How often a watch that asked for bookmarks gets one, unless a test says otherwise.
const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    /// The changes watches are served from, oldest first.
    history: VecDeque<Change>,
    /// Changes up to this resourceVersion are forgotten: a watch from before it gets 410.
    compacted_to: u64,
    /// How many changes are kept (0: the default).
    history_limit: usize,
    /// Woken at every change, for the watches.
    changed: Arc<tokio::sync::Notify>,
    /// Bookmark interval (`None`: the default).
    bookmark_interval: Option<Duration>,
    /// The (group, resource) pairs served with a status subresource.
    status_subresources: BTreeSet<(String, String)>,
    /// apiVersion and kind of each (group, resource) seen, for bookmarks.
    kinds: BTreeMap<(String, String), (String, String)>,
    last_version: u64,
    requests: Vec<Recorded>,
    /// Whether [`Recorded::body`] is kept (the default); the scale harness turns it off, as
    /// a log of every state save's body grew its process by gigabytes at 10,000 rollouts.
    drop_request_bodies: bool,
    /// `None`: everything is allowed. Otherwise (namespace or None for cluster-wide, rule).
    rules: Option<Vec<(Option<String>, PolicyRule)>>,
    /// Writes to get in the way of: before each of the next N PATCH/PUT requests, another
    /// writer changes the object (an annotation), so a write based on the last read conflicts.
    interfere: u32,
    /// A mutating admission controller: after each write of an object of this resource,
    /// the value at this JSON pointer is forced to this value.
    admission: Option<(String, String, Value)>,
    /// A Deployment controller: `Some(n)` rolls a Deployment out `n` reads after its spec
    /// was written (`None`: Deployments never roll out).
    deployment_controller: Option<u32>,
    /// Reads left before each Deployment in progress is rolled out.
    rolling_out: BTreeMap<Key, u32>,
    /// Deployments (by name) whose pods never become ready (an image that cannot be
    /// pulled, a readiness probe that always fails): their rollout never completes and
    /// `status.readyReplicas` stays 0.
    never_ready: BTreeSet<String>,
    /// An authenticating proxy in front that refuses every write, quoting the request's
    /// `Authorization` header in its message.
    echo_credentials_on_writes: bool,
    /// Requests never answered (a network that drops them): by a client's bearer token and a
    /// fragment of the path.
    unanswered: Vec<(String, String)>,
    /// The versions each named API group is served in (the core group is always served).
    served: BTreeMap<String, BTreeSet<String>>,
    /// linkerd-smi's adaptor, with the cluster domain it names Services in: `Some` mirrors
    /// every TrafficSplit written into its apex Service's ServiceProfile.
    linkerd_smi: Option<String>,
}

/// The fake API server; stops when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

type Shared = Arc<Mutex<Store>>;

impl FakeApiServer {
    /// Starts it on a free loopback port, empty and allowing everything.
    pub async fn start() -> FakeApiServer {
        let store: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let addr = listener.local_addr().expect("its address");
        let app = Router::new().fallback(handle).with_state(store.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApiServer { addr, store, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A `kube::Client` for it, with `namespace` as the default namespace.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("a URL"));
        config.default_namespace = namespace.to_owned();
        kube::Client::try_from(config).expect("a client for the fake")
    }

    /// A kubeconfig file pointing at it (context `fake`, namespace `namespace`).
    pub fn kubeconfig(&self, namespace: &str) -> String {
        self.kubeconfig_with_token(namespace, "fake-token")
    }

    /// A kubeconfig file like [`FakeApiServer::kubeconfig`] whose user sends `token`: the
    /// requests made with it carry it in [`Recorded::token`].
    pub fn kubeconfig_with_token(&self, namespace: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: canary\n  user:\n    token: {token}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: canary\n    namespace: {namespace}\n\
             current-context: fake\n",
            self.url()
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `object` as if created (resourceVersion, uid, creationTimestamp set).
    pub fn insert(&self, object: Value) -> Value {
        let mut store = self.lock();
        let key = key_of(&object).expect("an object with apiVersion, kind, namespace and name");
        if let Some((group, version)) = object["apiVersion"]
            .as_str()
            .and_then(|v| v.rsplit_once('/'))
        {
            store
                .served
                .entry(group.to_owned())
                .or_default()
                .insert(version.to_owned());
        }
        let object = store.created(object);
        let kind = if store.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        store.apply_traffic_split(&key, &object);
        store.objects.insert(key.clone(), object.clone());
        store.record(kind, &key, &object);
        object
    }

    /// Serves `resource` of `group` with a status subresource (as a CustomResourceDefinition
    /// with `subresources: {status: {}}` does): see the crate's documentation.
    pub fn serve_status_subresource(&self, group: &str, resource: &str) {
        self.lock()
            .status_subresources
            .insert((group.to_owned(), resource.to_owned()));
    }

    /// Forgets every change so far, as the API server's watch cache does with time: a watch
    /// from a resourceVersion before now gets an `ERROR` event with 410 Gone.
    pub fn compact(&self) {
        let mut store = self.lock();
        store.compacted_to = store.last_version;
        store.history.clear();
    }

    /// Keeps at most `changes` changes for watches from now on.
    pub fn keep_history(&self, changes: usize) {
        self.lock().history_limit = changes.max(1);
    }

    /// Sends bookmarks to the watches that ask for them this often.
    pub fn bookmark_every(&self, interval: Duration) {
        self.lock().bookmark_interval = Some(interval);
    }

    /// The latest resourceVersion given out.
    pub fn resource_version(&self) -> u64 {
        self.lock().last_version
    }

    /// Changes `object` as another writer would (a controller, a user): the stored object
    /// is replaced by it with a new resourceVersion (its metadata kept), and watches see it.
    pub fn replace(&self, object: Value) -> Value {
        let mut store = self.lock();
        let key = key_of(&object).expect("an object with apiVersion, kind, namespace and name");
        let mut object = object;
        if let Some(current) = store.objects.get(&key) {
            for field in ["uid", "creationTimestamp", "generation"] {
                object["metadata"][field] = current["metadata"][field].clone();
            }
        }
        let version = store.next_version();
        object["metadata"]["resourceVersion"] = json!(version);
        store.objects.insert(key.clone(), object.clone());
        store.record("MODIFIED", &key, &object);
        object
    }

    /// Deletes an object as another client would; watches see it.
    pub fn remove(&self, group: &str, resource: &str, namespace: &str, name: &str) {
        let mut store = self.lock();
        let key = Key {
            group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        if let Some(mut object) = store.objects.remove(&key) {
            let version = store.next_version();
            object["metadata"]["resourceVersion"] = json!(version);
            store.record("DELETED", &key, &object);
        }
    }

    /// Serves `group` in exactly `versions` from now on (an empty list: not at all, as when
    /// its CustomResourceDefinition is not installed).
    pub fn serve(&self, group: &str, versions: &[&str]) {
        self.lock().served.insert(
            group.to_owned(),
            versions.iter().map(|v| (*v).to_owned()).collect(),
        );
    }

    /// The object, as stored now.
    pub fn object(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.lock()
            .objects
            .get(&Key {
                group: group.to_owned(),
                resource: resource.to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
            .cloned()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// How many requests were made so far.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// The requests from the `start`-th on (0-based): the log's tail, without copying what
    /// came before.
    pub fn requests_from(&self, start: usize) -> Vec<Recorded> {
        let store = self.lock();
        store.requests.get(start..).unwrap_or_default().to_vec()
    }

    /// From now on, requests are logged without their bodies ([`Recorded::body`] is `None`).
    pub fn drop_request_bodies(&self) {
        self.lock().drop_request_bodies = true;
    }

    /// The requests so far with this method.
    pub fn requests_with(&self, method: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// From now on, only what these Roles and ClusterRoles allow is allowed (as if each were
    /// bound to the client's service account: a Role in its namespace, a ClusterRole in all).
    pub fn grant(&self, roles: &[Role], cluster_roles: &[ClusterRole]) {
        let mut rules = Vec::new();
        for role in roles {
            for rule in role.rules.iter().flatten() {
                rules.push((role.metadata.namespace.clone(), rule.clone()));
            }
        }
        for role in cluster_roles {
            for rule in role.rules.iter().flatten() {
                rules.push((None, rule.clone()));
            }
        }
        self.lock().rules = Some(rules);
    }

    /// Acts as a Deployment controller that completes a Deployment's rollout `reads` GETs
    /// after its spec changed (its generation is bumped then, and its status says it is in
    /// progress until done).
    pub fn run_deployment_controller(&self, reads: u32) {
        self.lock().deployment_controller = Some(reads);
    }

    /// Makes the pods of the Deployment `name` (in any namespace) never become ready from
    /// now on, as with an image that cannot be pulled: the Deployment controller of
    /// [`FakeApiServer::run_deployment_controller`] creates them but keeps
    /// `status.readyReplicas` and `availableReplicas` at 0.
    pub fn pods_never_ready(&self, name: &str) {
        self.lock().never_ready.insert(name.to_owned());
    }

    /// Acts as linkerd-smi's adaptor (`linkerd/linkerd-smi`, `pkg/adaptor`): after every
    /// write of a TrafficSplit, the ServiceProfile `SERVICE.NAMESPACE.svc.DOMAIN` of its
    /// `spec.service` gets one `dstOverrides` entry per backend (authority the backend's
    /// FQDN, weight its weight), created when missing, left alone when it carries the
    /// annotation `smi.linkerd.io/skip`. The fake applies it in the same request; the real
    /// adaptor lags by its work queue.
    pub fn run_linkerd_smi_adaptor(&self, cluster_domain: &str) {
        self.lock().linkerd_smi = Some(cluster_domain.to_owned());
    }

    /// Stops the adaptor of [`FakeApiServer::run_linkerd_smi_adaptor`] (as when its pod is
    /// gone): TrafficSplit writes are no longer applied.
    pub fn stop_linkerd_smi_adaptor(&self) {
        self.lock().linkerd_smi = None;
    }

    /// Acts as a mutating admission controller that forces `pointer` of every object of
    /// `resource` written from now on to `value` (something that overrides canary's weights).
    pub fn force_on_write(&self, resource: &str, pointer: &str, value: Value) {
        self.lock().admission = Some((resource.to_owned(), pointer.to_owned(), value));
    }

    /// Acts as an authenticating proxy in front of the API server that refuses every write
    /// (POST, PUT, PATCH, DELETE) with 403, its message quoting the request's
    /// `Authorization` header, as a misconfigured proxy may: a hostile answer for the
    /// redaction tests.
    pub fn refuse_writes_echoing_credentials(&self) {
        self.lock().echo_credentials_on_writes = true;
    }

    /// From now on, requests with the bearer `token` whose path contains `path_fragment`
    /// are never answered (nor recorded, nor applied): a network that lost them, as far as
    /// that client can tell until its timeout.
    pub fn never_answer(&self, token: &str, path_fragment: &str) {
        self.lock()
            .unanswered
            .push((token.to_owned(), path_fragment.to_owned()));
    }

    /// Before each of the next `writes` PATCH or PUT requests, another writer changes the
    /// object first (an annotation `other-writer/touched`), so their resourceVersion is stale.
    pub fn interfere_with_next_writes(&self, writes: u32) {
        self.lock().interfere = writes;
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Store {
    /// Remembers a change for the watches and wakes them.
    fn record(&mut self, kind: &'static str, key: &Key, object: &Value) {
        if let (Some(api_version), Some(object_kind)) =
            (object["apiVersion"].as_str(), object["kind"].as_str())
        {
            self.kinds.insert(
                (key.group.clone(), key.resource.clone()),
                (api_version.to_owned(), object_kind.to_owned()),
            );
        }
        let version = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.last_version);
        self.history.push_back(Change {
            version,
            kind,
            key: key.clone(),
            object: object.clone(),
        });
        let limit = if self.history_limit == 0 {
            DEFAULT_HISTORY
        } else {
            self.history_limit
        };
        while self.history.len() > limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_to = dropped.version;
            }
        }
        self.changed.notify_waiters();
    }

    /// The status subresource's rules for a write that would make `written` of `current`:
    /// through the object, the status stays as it was; through `…/status`, only the status
    /// changes. Then `metadata.generation` grows if anything but metadata and status changed
    /// (for the resources served with a status subresource; the others keep the fake's
    /// older behaviour).
    fn subresource_rules(
        &self,
        key: &Key,
        status_write: bool,
        current: &Value,
        mut written: Value,
    ) -> Value {
        if !self.has_status(key) {
            return written;
        }
        if status_write {
            let mut object = current.clone();
            object["status"] = written["status"].clone();
            if object["status"].is_null()
                && let Some(map) = object.as_object_mut()
            {
                map.remove("status");
            }
            // The precondition stays the writer's.
            object["metadata"]["resourceVersion"] = written["metadata"]["resourceVersion"].clone();
            return object;
        }
        match current.get("status") {
            Some(status) => written["status"] = status.clone(),
            None => {
                if let Some(map) = written.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        if without_metadata_and_status(&written) != without_metadata_and_status(current) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            written["metadata"]["generation"] = json!(generation);
        }
        written
    }

    /// Whether `resource` of `group` has a status subresource.
    fn has_status(&self, key: &Key) -> bool {
        self.status_subresources
            .contains(&(key.group.clone(), key.resource.clone()))
    }

    /// What a Deployment controller sees of a spec change: a new generation, a rollout
    /// in progress.
    fn spec_changed(&mut self, key: &Key, object: &mut Value) {
        let Some(reads) = self.deployment_controller else {
            return;
        };
        if key.resource != "deployments" {
            return;
        }
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object["metadata"]["generation"] = json!(generation);
        let replicas = object["status"]["replicas"].clone();
        // Pods already ready stay ready while the new ones start (a scale-down removes the
        // extra ones at once): what a rollout with maxUnavailable 0 shows.
        let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
        let ready = object["status"]["readyReplicas"]
            .as_i64()
            .unwrap_or(0)
            .min(wanted);
        object["status"] = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": 0,
            "readyReplicas": ready,
            "availableReplicas": replicas,
        });
        self.rolling_out.insert(key.clone(), reads);
    }

    /// Counts a read of a Deployment whose rollout is in progress; completes it when due.
    fn roll_out(&mut self, key: &Key) {
        let Some(left) = self.rolling_out.get_mut(key) else {
            return;
        };
        *left = left.saturating_sub(1);
        if *left > 0 {
            return;
        }
        if self.never_ready.contains(&key.name) {
            // Pods that never become ready: the rollout stays in progress, nothing ready.
            if let Some(object) = self.objects.get_mut(key) {
                let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
                object["status"] = json!({
                    "observedGeneration": object["metadata"]["generation"],
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": 0,
                    "availableReplicas": 0,
                });
            }
            return;
        }
        self.rolling_out.remove(key);
        if let Some(object) = self.objects.get_mut(key) {
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            object["status"] = json!({
                "observedGeneration": object["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            });
        }
    }

    /// What linkerd-smi's adaptor does after `object` (of `key`) was written.
    fn apply_traffic_split(&mut self, key: &Key, object: &Value) {
        let Some(domain) = self.linkerd_smi.clone() else {
            return;
        };
        if key.resource != "trafficsplits" {
            return;
        }
        let Some(service) = object.pointer("/spec/service").and_then(Value::as_str) else {
            return;
        };
        let fqdn = |name: &str| format!("{name}.{}.svc.{domain}", key.namespace);
        let overrides: Vec<Value> = object
            .pointer("/spec/backends")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|backend| {
                let name = backend.get("service")?.as_str()?;
                // A Kubernetes quantity, as the adaptor's Go type serialises it.
                let weight = match backend.get("weight")? {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                Some(json!({"authority": fqdn(name), "weight": weight}))
            })
            .collect();
        let profile_key = Key {
            group: "linkerd.io".to_owned(),
            resource: "serviceprofiles".to_owned(),
            namespace: key.namespace.clone(),
            name: fqdn(service),
        };
        let mut profile = match self.objects.get(&profile_key) {
            Some(existing) => {
                if existing
                    .pointer("/metadata/annotations/smi.linkerd.io~1skip")
                    .is_some()
                {
                    return;
                }
                let mut profile = existing.clone();
                profile["metadata"]["resourceVersion"] = json!(self.next_version());
                profile
            }
            None => self.created(json!({
                "apiVersion": "linkerd.io/v1alpha2",
                "kind": "ServiceProfile",
                "metadata": {"name": profile_key.name, "namespace": key.namespace},
                "spec": {},
            })),
        };
        profile["spec"]["dstOverrides"] = Value::Array(overrides);
        self.served
            .entry("linkerd.io".to_owned())
            .or_default()
            .insert("v1alpha2".to_owned());
        self.objects.insert(profile_key, profile);
    }

    fn next_version(&mut self) -> String {
        self.last_version += 1;
        self.last_version.to_string()
    }

    fn created(&mut self, mut object: Value) -> Value {
        let version = self.next_version();
        let metadata = object
            .as_object_mut()
            .expect("an object")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        metadata["resourceVersion"] = json!(version);
        metadata["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.last_version));
        metadata["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        metadata["generation"] = json!(1);
        object
    }

    fn allows(&self, verb: &str, key: &Key, named: bool) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        rules.iter().any(|(namespace, rule)| {
            let has = |list: &Option<Vec<String>>, value: &str| {
                list.iter().flatten().any(|v| v == "*" || v == value)
            };
            namespace.as_ref().is_none_or(|ns| *ns == key.namespace)
                && (rule.verbs.iter().any(|v| v == "*" || v == verb))
                && has(&rule.api_groups, &key.group)
                && has(&rule.resources, &key.resource)
                && match &rule.resource_names {
                    None => true,
                    Some(names) if names.is_empty() => true,
                    // Rules naming objects never allow requests that name none (create, list).
                    Some(names) => named && names.contains(&key.name),
                }
        })
    }
}

/// The key of an object from its own apiVersion, kind and metadata.
fn key_of(object: &Value) -> Option<Key> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    Some(Key {
        group: group.to_owned(),
        resource: plural(kind),
        namespace: object.pointer("/metadata/namespace")?.as_str()?.to_owned(),
        name: object.pointer("/metadata/name")?.as_str()?.to_owned(),
    })
}

/// The plural resource name of a kind, as the kinds used here have it.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("ss") {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// A `Status` answer, as the API server writes them.
fn status(code: StatusCode, reason: &str, message: String, key: &Key) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": key.name, "group": key.group, "kind": key.resource},
        "code": code.as_u16(),
    });
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn qualified(key: &Key) -> String {
    if key.group.is_empty() {
        key.resource.clone()
    } else {
        format!("{}.{}", key.resource, key.group)
    }
}

/// The discovery answer `GET /apis`: every named group served, its versions in order.
fn api_group_list(store: &Store) -> Value {
    let groups: Vec<Value> = store
        .served
        .iter()
        .filter(|(_, versions)| !versions.is_empty())
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({
                "name": group,
                "versions": versions,
                "preferredVersion": versions.last().cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The group and version of `/apis/GROUP/VERSION/…`.
fn group_version(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.trim_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("apis"), Some(group), Some(version)) => Some((group, version)),
        _ => None,
    }
}

/// Parses `/api/v1/namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE]]`,
/// `/apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME[/SUBRESOURCE]]` and the lists across
/// all namespaces, `/api/v1/RESOURCE` and `/apis/GROUP/VERSION/RESOURCE` (namespace empty).
fn parse_path(path: &str) -> Option<(Key, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let key = |namespace: &str, resource: &str, name: &str| Key {
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    match rest {
        [resource] => Some((key("", resource, ""), None)),
        ["namespaces", namespace, resource] => Some((key(namespace, resource, ""), None)),
        ["namespaces", namespace, resource, name] => Some((key(namespace, resource, name), None)),
        ["namespaces", namespace, resource, name, subresource] => Some((
            key(namespace, resource, name),
            Some((*subresource).to_owned()),
        )),
        _ => None,
    }
}

/// One query parameter's value.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The whole object without what the API server does not count as a change of its spec
/// (metadata and status): a change of the rest bumps `metadata.generation`.
fn without_metadata_and_status(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    rest
}

/// Whether a watch of `watched` (namespace empty: all) sees a change of `key`.
fn watches(watched: &Key, key: &Key) -> bool {
    watched.group == key.group
        && watched.resource == key.resource
        && (watched.namespace.is_empty() || watched.namespace == key.namespace)
}

/// A watch's stream: the changes after `from` (or the objects there are now, then the
/// changes after them), bookmarks if asked, until `timeout` or the client goes away.
fn watch(
    shared: Shared,
    watched: Key,
    from: Option<u64>,
    bookmarks: bool,
    timeout: Duration,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let line = |kind: &str, object: &Value| {
            let mut text = json!({"type": kind, "object": object}).to_string();
            text.push('\n');
            Bytes::from(text)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let (mut seen, initial, gone, interval, changed, kind_of) = {
            let store = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let gone = from.is_some_and(|from| from < store.compacted_to);
            let initial: Vec<Value> = if from.is_none() {
                store
                    .objects
                    .iter()
                    .filter(|(k, _)| watches(&watched, k))
                    .map(|(_, v)| v.clone())
                    .collect()
            } else {
                Vec::new()
            };
            (
                from.unwrap_or(store.last_version),
                initial,
                gone,
                store.bookmark_interval.unwrap_or(DEFAULT_BOOKMARK_INTERVAL),
                store.changed.clone(),
                store
                    .kinds
                    .get(&(watched.group.clone(), watched.resource.clone()))
                    .cloned(),
            )
        };
        if gone {
            // What the API server sends for a resourceVersion its watch cache no longer has.
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {} ({})", from.unwrap_or(0), seen),
                "reason": "Expired", "code": 410,
            });
            let _ = sender.send(line("ERROR", &status)).await;
            return;
        }
        for object in initial {
            if sender.send(line("ADDED", &object)).await.is_err() {
                return;
            }
        }
        let mut next_bookmark = tokio::time::Instant::now() + interval;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (changes, latest, expired) = {
                let store = shared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // The history is in resourceVersion order but for a few neighbours (the
                // linkerd-smi mirror records its object before the one it mirrors): start a
                // little before the first change not sent rather than scan it all, up to
                // 100,000 changes at every change under the store's lock (most of a core at
                // 1,000 rollouts).
                let first = store
                    .history
                    .partition_point(|c| c.version <= seen)
                    .saturating_sub(16);
                let changes: Vec<Change> = store
                    .history
                    .range(first..)
                    .filter(|c| c.version > seen && watches(&watched, &c.key))
                    .cloned()
                    .collect();
                (changes, store.last_version, seen < store.compacted_to)
            };
            if expired {
                // Changes this watch has not been sent were forgotten: as the API server,
                // end the watch; the client lists again.
                return;
            }
            for change in changes {
                seen = change.version;
                if sender
                    .send(line(change.kind, &change.object))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if bookmarks && tokio::time::Instant::now() >= next_bookmark {
                next_bookmark = tokio::time::Instant::now() + interval;
                seen = seen.max(latest);
                let (api_version, kind) = kind_of
                    .clone()
                    .unwrap_or_else(|| ("v1".to_owned(), "Object".to_owned()));
                let bookmark = json!({
                    "kind": kind, "apiVersion": api_version,
                    "metadata": {"resourceVersion": seen.to_string()},
                });
                if sender.send(line("BOOKMARK", &bookmark)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {}
                _ = tokio::time::sleep_until(deadline) => return,
                _ = sender.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), receiver))
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let parsed_body: Option<Value> = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
        )
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let unanswered = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .unanswered
        .iter()
        .any(|(lost, fragment)| token.as_deref() == Some(lost) && uri.path().contains(fragment));
    if unanswered {
        return std::future::pending().await;
    }
    let mut store = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let response = if store.echo_credentials_on_writes && method != Method::GET {
        let authorization = headers
            .get("authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("proxy: write refused for the request with Authorization: {authorization}"),
            "reason": "Forbidden", "code": 403,
        });
        ok(StatusCode::FORBIDDEN, &status)
    } else {
        answer(
            &mut store,
            &shared,
            &method,
            uri.path(),
            uri.query().unwrap_or(""),
            &content_type,
            parsed_body.clone(),
        )
    };
    let body = if store.drop_request_bodies {
        None
    } else {
        parsed_body
    };
    store.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        content_type,
        body,
        status: response.status().as_u16(),
        token,
        answered_at: std::time::Instant::now(),
    });
    response
}

fn ok(code: StatusCode, object: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        object.to_string(),
    )
        .into_response()
}

#[allow(clippy::too_many_arguments)] // one request's parts, as the handler has them
fn answer(
    store: &mut Store,
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: Option<Value>,
) -> Response {
    if method == Method::GET && path.trim_end_matches('/') == "/apis" {
        return ok(StatusCode::OK, &api_group_list(store));
    }
    if let Some((group, version)) = group_version(path)
        && let Some(versions) = store.served.get(group)
        && !versions.contains(version)
    {
        // What the real server answers for a group or version it does not serve.
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource",
            "reason": "NotFound", "details": {}, "code": 404,
        });
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let Some((mut key, subresource)) = parse_path(path) else {
        return (StatusCode::NOT_FOUND, format!("the fake serves no {path}")).into_response();
    };
    let status_write = match subresource.as_deref() {
        None => false,
        Some("status") if store.has_status(&key) => true,
        Some(other) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("the server could not find the requested resource ({other})"),
                &key,
            );
        }
    };
    let named = !key.name.is_empty();
    let watching = matches!(query_param(query, "watch"), Some("true" | "1"));
    let verb = match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        _ => return (StatusCode::METHOD_NOT_ALLOWED, "not served").into_response(),
    };
    let mut body = body;
    if verb == "create"
        && let Some(object) = body.as_mut().filter(|b| b.is_object())
        && object.pointer("/metadata/name").is_none()
        && let Some(prefix) = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_owned)
    {
        // generateName: the prefix and five characters, as the API server makes them.
        let suffix = format!("{:05x}", (store.last_version + 1) * 7919 % 0xfffff);
        object["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    if verb == "create"
        && let Some(name) = body
            .as_ref()
            .and_then(|b| b.pointer("/metadata/name"))
            .and_then(Value::as_str)
    {
        key.name = name.to_owned();
    }
    // RBAC names a subresource as `resource/subresource`.
    let mut checked = key.clone();
    if let Some(subresource) = &subresource {
        checked.resource = format!("{}/{subresource}", key.resource);
    }
    if !store.allows(verb, &checked, named) {
        let object = if named {
            format!("{} \"{}\" is forbidden", qualified(&key), key.name)
        } else {
            format!("{} is forbidden", qualified(&key))
        };
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{object}: User \"{USER}\" cannot {verb} resource \"{}\" in API group \"{}\" {}",
                checked.resource,
                key.group,
                if key.namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace \"{}\"", key.namespace)
                }
            ),
            &key,
        );
    }
    let not_found = |key: &Key| {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{}\" not found", qualified(key), key.name),
            key,
        )
    };
    let conflict = |key: &Key| {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(key),
                key.name
            ),
            key,
        )
    };
    if matches!(verb, "update" | "patch") && store.interfere > 0 && store.objects.contains_key(&key)
    {
        store.interfere -= 1;
        let version = store.next_version();
        let count = store.last_version;
        if let Some(object) = store.objects.get_mut(&key) {
            let metadata = &mut object["metadata"];
            if !metadata["annotations"].is_object() {
                metadata["annotations"] = json!({});
            }
            metadata["annotations"]["other-writer/touched"] = json!(count.to_string());
            metadata["resourceVersion"] = json!(version);
        }
    }
    match verb {
        "get" => {
            store.roll_out(&key);
            match store.objects.get(&key) {
                Some(object) => ok(StatusCode::OK, object),
                None => not_found(&key),
            }
        }
        "watch" => {
            let from = match query_param(query, "resourceVersion") {
                None | Some("" | "0") => None,
                Some(version) => match version.parse::<u64>() {
                    Ok(version) => Some(version),
                    Err(_) => {
                        return status(
                            StatusCode::BAD_REQUEST,
                            "BadRequest",
                            format!("invalid resource version: {version}"),
                            &key,
                        );
                    }
                },
            };
            let bookmarks = matches!(
                query_param(query, "allowWatchBookmarks"),
                Some("true" | "1")
            );
            // The API server's default is a random time of 30 to 60 minutes; an hour here.
            let timeout = query_param(query, "timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map_or(Duration::from_secs(3600), Duration::from_secs);
            watch(shared.clone(), key, from, bookmarks, timeout)
        }
        "list" => {
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|(k, _)| watches(&key, k))
                .map(|(_, v)| v.clone())
                .collect();
            let list = json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": store.last_version.to_string()}, "items": items});
            ok(StatusCode::OK, &list)
        }
        "create" => {
            let Some(mut object) = body.filter(Value::is_object) else {
                return (StatusCode::BAD_REQUEST, "expected an object").into_response();
            };
            if store.objects.contains_key(&key) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{} \"{}\" already exists", qualified(&key), key.name),
                    &key,
                );
            }
            object["metadata"]["namespace"] = json!(key.namespace);
            if let Some(refusal) = refusal(&key, &object) {
                return refusal;
            }
            let mut object = store.created(object);
            if store.has_status(&key) {
                // Status is the controller's, written through the subresource only.
                if let Some(map) = object.as_object_mut() {
                    map.remove("status");
                }
            }
            store.apply_traffic_split(&key, &object);
            store.objects.insert(key.clone(), object.clone());
            store.record("ADDED", &key, &object);
            ok(StatusCode::CREATED, &object)
        }
        "update" => {
            let Some(current) = store.objects.get(&key).cloned() else {
                return not_found(&key);
            };
            let Some(mut object) = body.filter(Value::is_object) else {
                return (StatusCode::BAD_REQUEST, "expected an object").into_response();
            };
            let sent = object.pointer("/metadata/resourceVersion").cloned();
            if sent.is_some() && sent.as_ref() != current.pointer("/metadata/resourceVersion") {
                return conflict(&key);
            }
            for field in ["uid", "creationTimestamp", "generation"] {
                object["metadata"][field] = current["metadata"][field].clone();
            }
            if let Some(refusal) = refusal(&key, &object) {
                return refusal;
            }
            let mut object = store.subresource_rules(&key, status_write, &current, object);
            if object == current {
                return ok(StatusCode::OK, &object);
            }
            let version = store.next_version();
            object["metadata"]["resourceVersion"] = json!(version);
            store.apply_traffic_split(&key, &object);
            store.objects.insert(key.clone(), object.clone());
            store.record("MODIFIED", &key, &object);
            ok(StatusCode::OK, &object)
        }
        "patch" => {
            let Some(current) = store.objects.get(&key).cloned() else {
                return not_found(&key);
            };
            let Some(patch) = body else {
                return (StatusCode::BAD_REQUEST, "expected a patch").into_response();
            };
            let mut object = current.clone();
            match content_type.split(';').next().unwrap_or("") {
                "application/json-patch+json" => {
                    let ops: json_patch::Patch = match serde_json::from_value(patch) {
                        Ok(ops) => ops,
                        Err(err) => {
                            return status(
                                StatusCode::BAD_REQUEST,
                                "BadRequest",
                                format!("invalid JSON patch: {err}"),
                                &key,
                            );
                        }
                    };
                    if let Err(err) = json_patch::patch(&mut object, &ops) {
                        return status(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            format!("the JSON patch does not apply: {err}"),
                            &key,
                        );
                    }
                }
                "application/merge-patch+json" => json_patch::merge(&mut object, &patch),
                other => {
                    return status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the fake does not serve patches of type {other:?}"),
                        &key,
                    );
                }
            }
            // The patched object's resourceVersion is a precondition, as in the API server.
            if object.pointer("/metadata/resourceVersion")
                != current.pointer("/metadata/resourceVersion")
            {
                return conflict(&key);
            }
            if object.pointer("/metadata/name") != current.pointer("/metadata/name") {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "metadata.name cannot change".to_owned(),
                    &key,
                );
            }
            if let Some(refusal) = refusal(&key, &object) {
                return refusal;
            }
            let mut object = store.subresource_rules(&key, status_write, &current, object);
            if object == current {
                return ok(StatusCode::OK, &object);
            }
            let version = store.next_version();
            object["metadata"]["resourceVersion"] = json!(version);
            if let Some((resource, pointer, value)) = &store.admission
                && *resource == key.resource
                && let Some(target) = object.pointer_mut(pointer)
            {
                *target = value.clone();
            }
            if object["spec"] != current["spec"] {
                store.spec_changed(&key, &mut object);
            }
            store.apply_traffic_split(&key, &object);
            store.objects.insert(key.clone(), object.clone());
            store.record("MODIFIED", &key, &object);
            ok(StatusCode::OK, &object)
        }
        "delete" => match store.objects.remove(&key) {
            Some(mut object) => {
                let version = store.next_version();
                object["metadata"]["resourceVersion"] = json!(version);
                store.record("DELETED", &key, &object);
                ok(
                    StatusCode::OK,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                )
            }
            None => not_found(&key),
        },
        _ => unreachable!("every verb is handled"),
    }
}

/// The API server's refusal of a written object it would not store (`None`: stored), for
/// the kinds the fake checks: Leases (`coordination.k8s.io/v1`), as kube-apiserver decodes and validates
/// them — `acquireTime` and `renewTime` are `MicroTime`s (RFC 3339 with exactly six
/// fractional digits: anything else fails to decode, 400), `leaseDurationSeconds` must be
/// greater than 0 and `leaseTransitions` not negative (422).
fn refusal(key: &Key, object: &Value) -> Option<Response> {
    if !(key.group == "coordination.k8s.io" && key.resource == "leases") {
        return None;
    }
    let spec = &object["spec"];
    for field in ["acquireTime", "renewTime"] {
        match &spec[field] {
            Value::Null => {}
            Value::String(text) if is_micro_time(text) => {}
            other => {
                return Some(status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!(
                        "Lease in version \"v1\" cannot be handled as a Lease: parsing time {other} as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse spec.{field}"
                    ),
                    key,
                ));
            }
        }
    }
    let mut problems = Vec::new();
    match &spec["leaseDurationSeconds"] {
        Value::Null => {}
        Value::Number(n)
            if n.as_i64()
                .is_some_and(|n| n > 0 && n <= i64::from(i32::MAX)) => {}
        other => problems.push(format!(
            "spec.leaseDurationSeconds: Invalid value: {other}: must be greater than 0"
        )),
    }
    match &spec["leaseTransitions"] {
        Value::Null => {}
        Value::Number(n)
            if n.as_i64()
                .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n)) => {}
        other => problems.push(format!(
            "spec.leaseTransitions: Invalid value: {other}: must be greater than or equal to 0"
        )),
    }
    if !matches!(&spec["holderIdentity"], Value::Null | Value::String(_)) {
        problems.push("spec.holderIdentity: Invalid value: must be a string".to_owned());
    }
    if problems.is_empty() {
        None
    } else {
        Some(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "Lease.coordination.k8s.io \"{}\" is invalid: {}",
                key.name,
                problems.join(", ")
            ),
            key,
        ))
    }
}

/// Whether `text` is a `MicroTime` as the API server parses it: `YYYY-MM-DDTHH:MM:SS`, a
/// dot and six digits, then `Z` or `±HH:MM`.
fn is_micro_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| bytes.get(i) == Some(&c);
    let date_time = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19)
        && at(19, b'.')
        && digits(20..26);
    let zone: &[u8] = bytes.get(26..).unwrap_or_default();
    let offset = zone.len() == 6
        && matches!(zone[0], b'+' | b'-')
        && zone[1..3].iter().all(u8::is_ascii_digit)
        && zone[3] == b':'
        && zone[4..6].iter().all(u8::is_ascii_digit);
    date_time && (zone == b"Z" || offset)
}
