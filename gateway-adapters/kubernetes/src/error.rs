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
    #[error("{}", self.detail())]
    Config {
        /// The context asked for, if any.
        context: Option<String>,
        /// What went wrong.
        message: String,
    },

    /// The API server refused a request for lack of permission (403). The message names the
    /// RBAC rule that would grant it.
    #[error("{object}: {}", self.detail())]
    Forbidden {
        /// The object, e.g. `HTTPRoute shop/checkout`.
        object: String,
        /// What the request needed.
        permission: Box<crate::Permission>,
        /// The API server's message.
        message: String,
    },

    /// The object does not exist (404), or its kind is not served (a CRD not installed).
    #[error("{object} {}", self.detail())]
    NotFound {
        /// The object.
        object: String,
        /// The API server's message.
        message: String,
    },

    /// The API server does not serve the API version the object is asked in: its group is
    /// served in other versions, or not at all (its CustomResourceDefinition is not
    /// installed). Found by discovery after a 404.
    #[error("{object}: {}", self.detail())]
    NotServed {
        /// The object.
        object: String,
        /// The API version asked for, e.g. `split.smi-spec.io/v1alpha4`.
        api_version: String,
        /// The versions the cluster serves of that group, oldest name first (empty: none).
        served: Vec<String>,
    },

    /// Any other failed API request: the server could not be reached or answered an error.
    #[error("{object}: {}", self.detail())]
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
    #[error("{object}: {}", self.detail())]
    Conflict {
        /// The object.
        object: String,
        /// How many writes were tried.
        attempts: u32,
    },

    /// The controller lost its leader Lease (another holds it, or it was not renewed before
    /// its deadline): it writes nothing more, and stops so that the leader carries on.
    #[error("{}", self.detail())]
    LeaseLost {
        /// The Lease, e.g. `Lease canary-system/canary-controller`.
        lease: String,
        /// Why, in words.
        why: String,
    },

    /// A write was not sent: the connection's [`WriteGuard`](crate::WriteGuard) refused it
    /// (the controller lost its leader Lease between two writes of one change).
    #[error("{object}: {}", self.detail())]
    WriteRefused {
        /// The object that was about to be written.
        object: String,
        /// The guard's reason, in words.
        why: String,
    },

    /// The object does not hold what canary changes: a backend missing, a rule ambiguous,
    /// an annotation that is not a number, or not the kind's shape at all.
    #[error("{object}: {}", self.detail())]
    Object {
        /// The object.
        object: String,
        /// What is wrong with it.
        message: String,
    },
}

impl KubernetesError {
    /// What happened, in the one wording each failure has: the message of
    /// [`Display`](std::fmt::Display) after the object, and of the core's error, whose
    /// address is the object.
    fn detail(&self) -> String {
        match self {
            KubernetesError::Config { context, message } => format!(
                "Kubernetes configuration{}: {message}",
                context
                    .as_ref()
                    .map(|c| format!(" (context {c})"))
                    .unwrap_or_default()
            ),
            KubernetesError::Forbidden {
                permission,
                message,
                ..
            } => format!(
                "forbidden: the RBAC rule {permission} is missing; grant {} (examples/kubernetes/ has least-privilege Roles). The API server said: {message}",
                permission.rule()
            ),
            KubernetesError::LeaseLost { lease, why } => format!(
                "lost the leader {lease}: {why}; this controller writes nothing more and stops (the leader resumes every rollout at its step)"
            ),
            KubernetesError::WriteRefused { why, .. } => format!("not written: {why}"),
            KubernetesError::NotFound { message, .. } => format!(
                "does not exist (or its CustomResourceDefinition is not installed): {message}"
            ),
            KubernetesError::NotServed {
                api_version,
                served,
                ..
            } => {
                let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                if served.is_empty() {
                    format!(
                        "the cluster serves no {group} API: install its CustomResourceDefinitions, or choose the gateway the cluster runs in the policy"
                    )
                } else {
                    format!(
                        "the cluster serves {group} in {}, not {api_version}: set `api-version` in the policy's gateway to one of them",
                        served.join(", ")
                    )
                }
            }
            KubernetesError::Api { action, .. } => format!("`{action}` failed"),
            KubernetesError::Conflict { attempts, .. } => format!(
                "still conflicting after {attempts} fresh reads: something else keeps changing it"
            ),
            KubernetesError::Object { message, .. } => message.clone(),
        }
    }

    /// Converts into the core's error: a cluster that cannot be reached or refuses a request
    /// is [`canary_core::Error::Unavailable`] (the address is the object, or `kubeconfig`),
    /// an object that does not hold what canary changes is
    /// [`canary_core::Error::Mismatch`]; the underlying error is kept as `source`.
    pub fn into_core(self) -> canary_core::Error {
        let message = self.detail();
        let (address, source): (String, Option<BoxError>) = match self {
            e @ KubernetesError::Object { .. } => {
                return canary_core::Error::Mismatch {
                    component: "kubernetes",
                    message: e.to_string(),
                };
            }
            e @ (KubernetesError::LeaseLost { .. } | KubernetesError::WriteRefused { .. }) => {
                return canary_core::Error::ClaimLost(e.to_string());
            }
            KubernetesError::Config { .. } => ("kubeconfig".to_owned(), None),
            KubernetesError::Api { object, source, .. } => (object, Some(source)),
            KubernetesError::Forbidden { object, .. }
            | KubernetesError::NotFound { object, .. }
            | KubernetesError::NotServed { object, .. }
            | KubernetesError::Conflict { object, .. } => (object, None),
        };
        canary_core::Error::Unavailable {
            component: "kubernetes",
            address,
            message,
            source,
        }
    }
}

impl From<KubernetesError> for canary_core::Error {
    fn from(e: KubernetesError) -> Self {
        e.into_core()
    }
}

#[cfg(test)]
mod tests {
    //! The messages a user sees: every Kubernetes error on its own, and as the core error it
    //! becomes with its whole `source` chain (what `canary` prints).

    use super::*;

    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }

    /// Builds the error afresh: it is shown twice and `into_core` takes it by value.
    type MakeError = fn() -> KubernetesError;

    fn permission() -> crate::Permission {
        crate::Permission {
            verb: "patch",
            api_group: "gateway.networking.k8s.io".to_owned(),
            resource: "httproutes".to_owned(),
            namespace: "shop".to_owned(),
            name: Some("checkout".to_owned()),
        }
    }

    #[test]
    fn each_error_reads_the_same_alone_and_as_the_core_error() {
        let route = || "HTTPRoute shop/checkout".to_owned();
        let forbidden = "forbidden: the RBAC rule `patch` on httproutes in API group \"gateway.networking.k8s.io\" (name \"checkout\") in namespace \"shop\" is missing; grant {apiGroups: [\"gateway.networking.k8s.io\"], resources: [\"httproutes\"], verbs: [\"patch\"], resourceNames: [\"checkout\"]} in a Role of namespace shop (examples/kubernetes/ has least-privilege Roles). The API server said: no";
        let cases: Vec<(MakeError, String, String)> = vec![
            (
                || KubernetesError::Config {
                    context: Some("prod".to_owned()),
                    message: "no such context".to_owned(),
                },
                "Kubernetes configuration (context prod): no such context".to_owned(),
                "kubernetes at kubeconfig: Kubernetes configuration (context prod): no such context"
                    .to_owned(),
            ),
            (
                || KubernetesError::Forbidden {
                    object: "HTTPRoute shop/checkout".to_owned(),
                    permission: Box::new(permission()),
                    message: "no".to_owned(),
                },
                format!("{}: {forbidden}", route()),
                format!("kubernetes at {}: {forbidden}", route()),
            ),
            (
                || KubernetesError::NotFound {
                    object: "HTTPRoute shop/checkout".to_owned(),
                    message: "httproutes \"checkout\" not found".to_owned(),
                },
                format!("{} does not exist (or its CustomResourceDefinition is not installed): httproutes \"checkout\" not found", route()),
                format!("kubernetes at {}: does not exist (or its CustomResourceDefinition is not installed): httproutes \"checkout\" not found", route()),
            ),
            (
                || KubernetesError::NotServed {
                    object: "TrafficSplit shop/checkout".to_owned(),
                    api_version: "split.smi-spec.io/v1alpha4".to_owned(),
                    served: vec!["v1alpha1".to_owned(), "v1alpha2".to_owned()],
                },
                "TrafficSplit shop/checkout: the cluster serves split.smi-spec.io in v1alpha1, v1alpha2, not split.smi-spec.io/v1alpha4: set `api-version` in the policy's gateway to one of them".to_owned(),
                "kubernetes at TrafficSplit shop/checkout: the cluster serves split.smi-spec.io in v1alpha1, v1alpha2, not split.smi-spec.io/v1alpha4: set `api-version` in the policy's gateway to one of them".to_owned(),
            ),
            (
                || KubernetesError::Api {
                    object: "HTTPRoute shop/checkout".to_owned(),
                    action: "patch",
                    source: Box::new(kube::Error::LinesCodecMaxLineLengthExceeded),
                },
                format!("{}: `patch` failed: Error finding newline character", route()),
                format!("kubernetes at {}: `patch` failed: Error finding newline character", route()),
            ),
            (
                || KubernetesError::Conflict {
                    object: "HTTPRoute shop/checkout".to_owned(),
                    attempts: 5,
                },
                format!("{}: still conflicting after 5 fresh reads: something else keeps changing it", route()),
                format!("kubernetes at {}: still conflicting after 5 fresh reads: something else keeps changing it", route()),
            ),
            (
                || KubernetesError::WriteRefused {
                    object: "HTTPRoute shop/checkout".to_owned(),
                    why: "this controller does not hold the Lease".to_owned(),
                },
                format!("{}: not written: this controller does not hold the Lease", route()),
                format!("{}: not written: this controller does not hold the Lease", route()),
            ),
            (
                || KubernetesError::Object {
                    object: "HTTPRoute shop/checkout".to_owned(),
                    message: "no backend named web-canary".to_owned(),
                },
                format!("{}: no backend named web-canary", route()),
                format!("kubernetes: {}: no backend named web-canary", route()),
            ),
        ];
        for (error, alone, core) in cases {
            assert_eq!(chain(&error()), alone);
            assert_eq!(chain(&error().into_core()), core);
        }
    }
}
