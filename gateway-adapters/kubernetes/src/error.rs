//! The one error type of `canary-kubernetes`, and how it becomes a [`canary_core::Error`] at
//! the ports' boundary.

use canary_core::error::BoxError;

/// `Result` with [`KubernetesError`] as the default error.
pub type Result<T, E = KubernetesError> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to a cluster. Messages name the object and,
/// for a refused request, the RBAC rule that is missing; never a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubernetesError {
    /// The Kubernetes configuration could not be loaded: no kubeconfig and not in a pod, an
    /// unknown context, or a client that could not be built from it.
    #[error("Kubernetes configuration{}: {message}", context.as_ref().map(|c| format!(" (context {c})")).unwrap_or_default())]
    Config {
        /// The context asked for, if any.
        context: Option<String>,
        /// What went wrong.
        message: String,
    },

    /// The API server refused a request for lack of permission (403). The message names the
    /// RBAC rule that would grant it.
    #[error("{object}: forbidden: the RBAC rule {permission} is missing; grant {} (examples/kubernetes/ has least-privilege Roles). The API server said: {message}", permission.rule())]
    Forbidden {
        /// The object, e.g. `HTTPRoute shop/checkout`.
        object: String,
        /// What the request needed.
        permission: Box<crate::Permission>,
        /// The API server's message.
        message: String,
    },

    /// The object does not exist (404), or its kind is not served (a CRD not installed).
    #[error(
        "{object} does not exist (or its CustomResourceDefinition is not installed): {message}"
    )]
    NotFound {
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },

    /// Any other failed API request: the server could not be reached or answered an error.
    #[error("{object}: `{action}` failed")]
    Api {
        /// The object.
        object: String,
        /// The verb of the request.
        action: &'static str,
        /// kube's error (the API server's status, or the connection's failure).
        #[source]
        source: Box<kube::Error>,
    },

    /// Writes kept meeting 409 Conflict: something else changes the object all the time.
    #[error(
        "{object}: still conflicting after {attempts} fresh reads: something else keeps changing it"
    )]
    Conflict {
        /// The object.
        object: String,
        /// How many writes were tried.
        attempts: u32,
    },

    /// The object does not hold what canary changes: a backend missing, a rule ambiguous,
    /// an annotation that is not a number, or not the kind's shape at all.
    #[error("{object}: {message}")]
    Object {
        /// The object.
        object: String,
        /// What is wrong with it.
        message: String,
    },
}

impl KubernetesError {
    /// Converts into the core's error: a cluster that cannot be reached or refuses a request
    /// is [`canary_core::Error::Unavailable`] (the address is the object), an object that
    /// does not hold what canary changes is [`canary_core::Error::Mismatch`]; the underlying
    /// error is kept as `source`.
    pub fn into_core(self) -> canary_core::Error {
        let unavailable = |address: String, message: String, source: Option<BoxError>| {
            canary_core::Error::Unavailable {
                component: "kubernetes",
                address,
                message,
                source,
            }
        };
        match self {
            e @ KubernetesError::Config { .. } => {
                unavailable("kubeconfig".to_owned(), e.to_string(), None)
            }
            KubernetesError::Forbidden {
                object,
                permission,
                message,
            } => unavailable(
                object,
                format!(
                    "forbidden: the RBAC rule {permission} is missing; grant {} (examples/kubernetes/ has least-privilege Roles). The API server said: {message}",
                    permission.rule()
                ),
                None,
            ),
            KubernetesError::NotFound { object, message } => unavailable(
                object,
                format!(
                    "does not exist (or its CustomResourceDefinition is not installed): {message}"
                ),
                None,
            ),
            KubernetesError::Api {
                object,
                action,
                source,
            } => unavailable(object, format!("`{action}` failed"), Some(source)),
            KubernetesError::Conflict { object, attempts } => unavailable(
                object,
                format!(
                    "still conflicting after {attempts} fresh reads: something else keeps changing it"
                ),
                None,
            ),
            e @ KubernetesError::Object { .. } => canary_core::Error::Mismatch {
                component: "kubernetes",
                message: e.to_string(),
            },
        }
    }
}

impl From<KubernetesError> for canary_core::Error {
    fn from(e: KubernetesError) -> Self {
        e.into_core()
    }
}
