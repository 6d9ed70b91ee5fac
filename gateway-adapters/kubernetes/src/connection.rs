//! [`KubeConnection`]: how the routers and the state store reach the API server.

use std::sync::Arc;
use std::time::Duration;

use canary_core::secret::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::OnceCell;

use crate::KubernetesError;

/// Timeout of connecting to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of one request's answer (no watches are made, so nothing waits longer).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one cluster, made on first use: from the kubeconfig the usual way
/// (`$KUBECONFIG`, `~/.kube/config`, or the pod's service account in a cluster) with the
/// context and namespace overrides of the policy or the command line; or a client handed
/// in (tests point one at an API fake). Cheap to clone; clones share the client.
#[derive(Clone)]
pub struct KubeConnection {
    inner: Arc<Inner>,
    /// Asked right before every write the routers send (see [`WriteGuard`]).
    guard: Option<WriteGuard>,
}

/// Whether a write may go out now, asked right before each request that changes the
/// cluster: every attempt of a retry and every step of a multi-step change. The controller
/// passes its leader Lease's fence, so that a deposed leader sends nothing more even in the
/// middle of a router's change (a retry after 409 Conflict, or the second Deployment of a
/// replica-count split after waiting minutes for the first one's pods); `canary rollout`
/// passes none. `Err` says why not, in words.
#[derive(Clone)]
pub struct WriteGuard(Arc<dyn Fn() -> Result<(), String> + Send + Sync>);

impl WriteGuard {
    /// A guard asking `check` before each write.
    pub fn new(check: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> WriteGuard {
        WriteGuard(Arc::new(check))
    }

    /// `Ok` while writes may go out.
    pub fn check(&self) -> Result<(), String> {
        (self.0)()
    }
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteGuard")
    }
}

struct Inner {
    context: Option<String>,
    namespace: Option<String>,
    client: OnceCell<(Client, String)>,
}

impl KubeConnection {
    /// A connection configured like `kubectl` would be, with the kubeconfig `context` and
    /// the default `namespace` overridden when given. Nothing is read until first use, so
    /// this needs no async runtime and cannot fail.
    pub fn infer(context: Option<String>, namespace: Option<String>) -> KubeConnection {
        KubeConnection {
            inner: Arc::new(Inner {
                context,
                namespace,
                client: OnceCell::new(),
            }),
            guard: None,
        }
    }

    /// A connection through `client`, whose objects live in `default_namespace` unless an
    /// object names its own.
    pub fn from_client(client: Client, default_namespace: impl Into<String>) -> KubeConnection {
        KubeConnection {
            inner: Arc::new(Inner {
                context: None,
                namespace: None,
                client: OnceCell::new_with(Some((client, default_namespace.into()))),
            }),
            guard: None,
        }
    }

    /// The same connection (sharing its client) whose writes first ask `guard`.
    pub fn with_write_guard(mut self, guard: WriteGuard) -> KubeConnection {
        self.guard = Some(guard);
        self
    }

    /// `Ok` when a write to `object` may be sent now; the guard's refusal otherwise.
    /// Called right before each request that changes the cluster, never earlier.
    pub(crate) fn may_write(&self, object: &str) -> Result<(), KubernetesError> {
        match &self.guard {
            None => Ok(()),
            Some(guard) => guard.check().map_err(|why| KubernetesError::WriteRefused {
                object: object.to_owned(),
                why,
            }),
        }
    }

    /// The client and the default namespace, loading the configuration on first use.
    pub async fn client(&self) -> Result<(Client, String), KubernetesError> {
        let (client, namespace) = self
            .inner
            .client
            .get_or_try_init(|| async {
                let mut config = self.config().await?;
                learn_credentials(&config.auth_info);
                if let Some(namespace) = &self.inner.namespace {
                    config.default_namespace = namespace.clone();
                }
                config.connect_timeout = Some(CONNECT_TIMEOUT);
                config.read_timeout = Some(READ_TIMEOUT);
                config.write_timeout = Some(READ_TIMEOUT);
                let namespace = config.default_namespace.clone();
                let client = Client::try_from(config).map_err(|err| KubernetesError::Config {
                    context: self.inner.context.clone(),
                    message: format!("cannot build the client: {err}"),
                })?;
                Ok::<_, KubernetesError>((client, namespace))
            })
            .await?;
        Ok((client.clone(), namespace.clone()))
    }

    async fn config(&self) -> Result<Config, KubernetesError> {
        let failed = |message: String| KubernetesError::Config {
            context: self.inner.context.clone(),
            message,
        };
        match &self.inner.context {
            None => Config::infer().await.map_err(|err| {
                failed(format!(
                    "no kubeconfig ($KUBECONFIG or ~/.kube/config) and not in a pod: {err}"
                ))
            }),
            Some(context) => {
                let kubeconfig = match Kubeconfig::read() {
                    Ok(kubeconfig) => kubeconfig,
                    // In a pod without a kubeconfig, a context means nothing: the pod's own
                    // service account is the way in (a policy shared by CI and in-cluster
                    // Jobs may name the context CI uses).
                    Err(_) if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                        return Config::incluster().map_err(|err| {
                            failed(format!(
                                "no kubeconfig, and the pod's service account: {err}"
                            ))
                        });
                    }
                    Err(err) => {
                        return Err(failed(format!(
                            "cannot read the kubeconfig ($KUBECONFIG or ~/.kube/config): {err}"
                        )));
                    }
                };
                let options = KubeConfigOptions {
                    context: Some(context.clone()),
                    ..KubeConfigOptions::default()
                };
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| failed(format!("cannot use context {context:?}: {err}")))
            }
        }
    }

    /// Which cluster, for messages: the context if one was named.
    pub fn describe(&self) -> String {
        match &self.inner.context {
            Some(context) => format!("context {context}"),
            None => "the current kubeconfig context".to_owned(),
        }
    }
}

/// The kubeconfig's (or the service account's) credentials are secrets this process holds:
/// each is learnt by the process's redactor, with the `Authorization` header made of it, so
/// that an API server, an admission webhook or an authenticating proxy in front of them
/// that echoes a request's credentials is redacted like any other echo. A token an exec
/// plugin hands out at request time is not known here (see docs/reliability.md).
fn learn_credentials(auth: &kube::config::AuthInfo) {
    use secrecy::ExposeSecret;
    if let Some(token) = &auth.token {
        let _ = Secret::new(token.expose_secret().trim()).header_value("Bearer");
    }
    if let Some(file) = &auth.token_file
        && let Ok(token) = std::fs::read_to_string(file)
        && !token.trim().is_empty()
    {
        let _ = Secret::new(token.trim()).header_value("Bearer");
    }
    if let Some(password) = &auth.password {
        let password = Secret::new(password.expose_secret());
        if let Some(username) = &auth.username {
            let _ = password.basic_auth(username);
        }
    }
}

impl std::fmt::Debug for KubeConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConnection")
            .field("context", &self.inner.context)
            .field("namespace", &self.inner.namespace)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}
