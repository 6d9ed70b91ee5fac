//! [`TrafficSplitRouter`]: the weights of two backends of an SMI `TrafficSplit`
//! (`split.smi-spec.io`, as Linkerd's SMI extension serves it), as a dynamic object: no
//! maintained crate types SMI. The shape relied on, from the SMI traffic-split spec and CRD
//! (v1alpha2 to v1alpha4 alike for these fields):
//!
//! ```yaml
//! spec:
//!   service: string            # the root (apex) Service clients call
//!   backends:                  # list
//!   - service: string          # a Service behind the root one
//!     weight: integer          # v1alpha2+: an integer (v1alpha1's quantities are refused)
//! ```
//!
//! With Linkerd (the policy's default for `v1alpha2`), a weight counts only once Linkerd
//! applies it. Linkerd's proxies do not read TrafficSplits: linkerd-smi's adaptor
//! (`linkerd/linkerd-smi`, `pkg/adaptor/controller.go`) copies each TrafficSplit into the
//! ServiceProfile named after the apex Service's FQDN, one `spec.dstOverrides` entry per
//! backend (`authority`: the backend's FQDN, `weight`: its weight as a Kubernetes quantity),
//! and leaves alone a ServiceProfile annotated `smi.linkerd.io/skip`. So after a write the
//! router waits (up to `apply-timeout`) until the ServiceProfile gives the canary the share
//! written, and the share it reads back is the ServiceProfile's: an adaptor that is not
//! running, a profile it skips, or one it has not caught up with is drift or an error, never
//! a confirmed weight.

use std::time::Duration;

use async_trait::async_trait;
use canary_core::policy::{AppliedBy, SmiTrafficSplitSpec};
use canary_core::ports::{TrafficRouter, canary_share};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::routers::weights::{WeightRouter, WeightedKind, Weights, two_entries};
use crate::{KubeConnection, KubernetesError, Permission, api_error};

/// How often the ServiceProfile is read while waiting for linkerd-smi to apply a weight.
const APPLY_POLL: Duration = Duration::from_millis(200);

/// Sets the canary's share as the weights of two `spec.backends` of a TrafficSplit.
pub struct TrafficSplitRouter {
    inner: WeightRouter<TrafficSplitKind>,
    applied_by: AppliedBy,
}

/// The TrafficSplit specifics of [`TrafficSplitRouter`].
#[derive(Clone, Debug)]
pub(crate) struct TrafficSplitKind {
    api_version: String,
    stable: String,
    canary: String,
    total: u32,
}

impl TrafficSplitRouter {
    /// A router for the policy's `gateway.smi-traffic-split`.
    pub fn new(spec: &SmiTrafficSplitSpec, connection: KubeConnection) -> TrafficSplitRouter {
        TrafficSplitRouter {
            inner: WeightRouter::with_kind(
                TrafficSplitKind {
                    api_version: spec.api_version.clone(),
                    stable: spec.stable.clone(),
                    canary: spec.canary.clone(),
                    total: spec.weight_total,
                },
                connection,
                &spec.object.name,
                spec.object.namespace.as_deref(),
            ),
            applied_by: spec.applied_by.clone(),
        }
    }

    /// The canary's share as Linkerd applies it: from the `dstOverrides` of the
    /// ServiceProfile linkerd-smi makes from `split` (the TrafficSplit as read).
    async fn linkerd_share(
        &self,
        split: &Value,
        namespace: &str,
        cluster_domain: &str,
    ) -> Result<u8, KubernetesError> {
        let apex = split
            .pointer("/spec/service")
            .and_then(Value::as_str)
            .ok_or_else(|| KubernetesError::Object {
                object: self.inner.object(namespace),
                message: "spec.service is missing: not a TrafficSplit as SMI defines it".to_owned(),
            })?;
        let fqdn = |service: &str| format!("{service}.{namespace}.svc.{cluster_domain}");
        let name = fqdn(apex);
        let object = format!("ServiceProfile {namespace}/{name}");
        let (client, _) = self.inner.connection.client().await?;
        let profiles: Api<DynamicObject> =
            Api::namespaced_with(client, namespace, &service_profile_resource());
        let profile = profiles.get(&name).await.map_err(|err| {
            match api_error(
                &object,
                Permission {
                    verb: "get",
                    api_group: "linkerd.io".to_owned(),
                    resource: "serviceprofiles".to_owned(),
                    namespace: namespace.to_owned(),
                    name: Some(name.clone()),
                },
                err,
            ) {
                KubernetesError::NotFound { object, message } => KubernetesError::NotFound {
                    object,
                    message: format!(
                        "{message}. linkerd-smi makes it from TrafficSplit {namespace}/{}: is the SMI extension installed (`linkerd smi install`) and its adaptor running? With another SMI implementation set `service-profile: false`",
                        self.inner.name
                    ),
                },
                other => other,
            }
        })?;
        let profile = serde_json::to_value(&profile).unwrap_or_default();
        applied_share(
            &profile,
            &fqdn(&self.inner.kind.stable),
            &fqdn(&self.inner.kind.canary),
        )
        .map_err(|message| KubernetesError::Object { object, message })
    }

    /// Reads the TrafficSplit (checking its weights are where the policy says) and the share
    /// Linkerd applies.
    async fn read_linkerd_share(&self, cluster_domain: &str) -> Result<u8, KubernetesError> {
        let (api, namespace) = self.inner.api().await?;
        let split = self.inner.read(&api, &namespace).await?;
        self.inner
            .kind
            .locate(&split)
            .map_err(|message| KubernetesError::Object {
                object: self.inner.object(&namespace),
                message,
            })?;
        self.linkerd_share(&split, &namespace, cluster_domain).await
    }

    /// Waits until Linkerd applies `percent`, or `timeout` passes.
    async fn wait_applied(
        &self,
        percent: u8,
        cluster_domain: &str,
        timeout: Duration,
    ) -> Result<(), KubernetesError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // The apex Service does not change while canary waits: one read of the split.
        let (api, namespace) = self.inner.api().await?;
        let split = self.inner.read(&api, &namespace).await?;
        loop {
            let last = match self.linkerd_share(&split, &namespace, cluster_domain).await {
                Ok(share) if share == percent => return Ok(()),
                Ok(share) => format!("it still gives the canary {share} %"),
                // The adaptor may not have made the profile yet.
                Err(KubernetesError::NotFound { object, message }) => {
                    format!("{object} {message}")
                }
                Err(other) => return Err(other),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(KubernetesError::Object {
                    object: self.inner.object(&namespace),
                    message: format!(
                        "Linkerd did not apply the canary's {percent} % within {}s (the ServiceProfile's dstOverrides, which linkerd-smi writes from the TrafficSplit, are what Linkerd's proxies follow): {last}",
                        timeout.as_secs_f64()
                    ),
                });
            }
            tokio::time::sleep(APPLY_POLL).await;
        }
    }
}

#[async_trait]
impl TrafficRouter for TrafficSplitRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        canary_core::ports::check_canary_weight(weight)?;
        self.inner.set(weight).await?;
        if let AppliedBy::LinkerdServiceProfile {
            cluster_domain,
            apply_timeout,
            ..
        } = &self.applied_by
        {
            self.wait_applied(weight, cluster_domain, *apply_timeout)
                .await?;
        }
        Ok(())
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        match &self.applied_by {
            AppliedBy::TrafficSplit { .. } => Ok(self.inner.get().await?),
            // What the proxies follow; a TrafficSplit the adaptor has not applied reads as
            // the weight Linkerd serves, so the driver sees drift instead of a confirmation.
            AppliedBy::LinkerdServiceProfile { cluster_domain, .. } => {
                Ok(self.read_linkerd_share(cluster_domain).await?)
            }
        }
    }

    fn describe(&self) -> String {
        match &self.applied_by {
            AppliedBy::TrafficSplit { .. } => self.inner.description(),
            AppliedBy::LinkerdServiceProfile { .. } => format!(
                "{}, as Linkerd applies it (ServiceProfile dstOverrides)",
                self.inner.description()
            ),
        }
    }
}

/// Linkerd's ServiceProfiles (`linkerd.io/v1alpha2`).
fn service_profile_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("linkerd.io", "v1alpha2", "ServiceProfile"),
        "serviceprofiles",
    )
}

/// The canary's share among a ServiceProfile's `dstOverrides`, whose authorities are the
/// backends' FQDNs; or why it has none.
fn applied_share(profile: &Value, stable: &str, canary: &str) -> Result<u8, String> {
    if profile
        .pointer("/metadata/annotations/smi.linkerd.io~1skip")
        .is_some()
    {
        return Err(
            "carries the annotation smi.linkerd.io/skip, so linkerd-smi never applies the TrafficSplit's weights to it: remove the annotation, or set `service-profile: false` if something else routes this traffic"
                .to_owned(),
        );
    }
    let overrides = match profile.pointer("/spec/dstOverrides") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(
                "has no spec.dstOverrides: linkerd-smi has not applied the TrafficSplit to it"
                    .to_owned(),
            );
        }
    };
    let (mut stable_weight, mut canary_weight) = (None, None);
    for (i, entry) in overrides.iter().enumerate() {
        let authority = entry.get("authority").and_then(Value::as_str).unwrap_or("");
        let weight = entry
            .get("weight")
            .map(quantity_millis)
            .unwrap_or(Ok(0))
            .map_err(|why| format!("spec.dstOverrides[{i}].weight {why}"))?;
        // An authority may carry a port (`svc.ns.svc.cluster.local:8080`).
        let host = authority.split(':').next().unwrap_or(authority);
        if host == stable {
            stable_weight = Some(weight);
        } else if host == canary {
            canary_weight = Some(weight);
        } else if weight > 0 {
            return Err(format!(
                "spec.dstOverrides[{i}] sends traffic to {authority}, neither {stable} (stable) nor {canary} (canary): canary would not know what share it sets"
            ));
        }
    }
    let (Some(stable_weight), Some(canary_weight)) = (stable_weight, canary_weight) else {
        return Err(format!(
            "spec.dstOverrides has no entry for {}: linkerd-smi has not applied the TrafficSplit to it",
            if stable_weight.is_none() {
                stable
            } else {
                canary
            }
        ));
    };
    let (Ok(canary_weight), Ok(stable_weight)) =
        (u32::try_from(canary_weight), u32::try_from(stable_weight))
    else {
        return Err("spec.dstOverrides' weights are out of range".to_owned());
    };
    canary_share(canary_weight, stable_weight).ok_or_else(|| {
        "spec.dstOverrides give both the canary and the stable version weight 0".to_owned()
    })
}

/// A weight as a Kubernetes quantity (`90`, `"90"`, `"900m"`, `"0.5"`) in thousandths.
fn quantity_millis(value: &Value) -> Result<u64, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        other => return Err(format!("is {other}, expected a quantity")),
    };
    let (number, scale) = match text.strip_suffix('m') {
        Some(number) => (number, 1),
        None => (text.as_str(), 1000),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) || fraction.len() > 3 {
        return Err(format!(
            "is {text:?}, expected a non-negative quantity such as 90, 900m or 0.5"
        ));
    }
    let mut millis: u64 = whole
        .parse::<u64>()
        .ok()
        .and_then(|w| w.checked_mul(scale))
        .ok_or_else(|| format!("is {text:?}, which is out of range"))?;
    if !fraction.is_empty() {
        if scale == 1 {
            return Err(format!("is {text:?}: a fraction of a thousandth"));
        }
        let padded = format!("{fraction:0<3}");
        millis += padded.parse::<u64>().unwrap_or(0);
    }
    Ok(millis)
}

/// The ApiResource of TrafficSplits at `api_version` (`split.smi-spec.io/v1alpha2`).
pub(crate) fn traffic_split_resource(api_version: &str) -> ApiResource {
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("split.smi-spec.io", "v1alpha2"));
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, "TrafficSplit"),
        "trafficsplits",
    )
}

impl WeightedKind for TrafficSplitKind {
    fn kind(&self) -> &'static str {
        "TrafficSplit"
    }

    fn resource(&self) -> ApiResource {
        traffic_split_resource(&self.api_version)
    }

    fn what(&self) -> String {
        format!(
            "backends {} (stable) / {} (canary)",
            self.stable, self.canary
        )
    }

    fn locate(&self, object: &Value) -> Result<Weights, String> {
        if object
            .pointer("/spec/service")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err("spec.service is missing: not a TrafficSplit as SMI defines it".to_owned());
        }
        let backends = match object.pointer("/spec/backends") {
            Some(Value::Array(backends)) => backends.as_slice(),
            _ => return Err("spec.backends is not a list".to_owned()),
        };
        let service =
            |name: &str, entry: &Value| entry.get("service").and_then(Value::as_str) == Some(name);
        two_entries(
            backends,
            "/spec/backends",
            "spec.backends",
            |e| service(&self.stable, e),
            |e| service(&self.canary, e),
            0,
            self.total,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STABLE: &str = "checkout-stable.shop.svc.cluster.local";
    const CANARY: &str = "checkout-canary.shop.svc.cluster.local";

    fn profile(overrides: Value) -> Value {
        json!({"metadata": {"name": "checkout.shop.svc.cluster.local"}, "spec": {"dstOverrides": overrides}})
    }

    #[test]
    fn quantities_read_as_thousandths() {
        for (value, millis) in [
            (json!(90), 90_000),
            (json!("90"), 90_000),
            (json!("900m"), 900),
            (json!("0.5"), 500),
            (json!("0"), 0),
        ] {
            assert_eq!(quantity_millis(&value), Ok(millis), "{value}");
        }
        for bad in [
            json!("-1"),
            json!("1Ki"),
            json!("1.5m"),
            json!(""),
            json!(true),
        ] {
            assert!(quantity_millis(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_share_is_the_canarys_among_the_two_authorities() {
        let applied = profile(json!([
            {"authority": STABLE, "weight": "900m"},
            {"authority": "checkout-legacy.shop.svc.cluster.local", "weight": "0"},
            {"authority": format!("{CANARY}:8080"), "weight": "100m"},
        ]));
        assert_eq!(applied_share(&applied, STABLE, CANARY), Ok(10));
    }

    #[test]
    fn a_profile_linkerd_smi_has_not_applied_or_skips_has_no_share() {
        let third = profile(json!([
            {"authority": STABLE, "weight": "90"},
            {"authority": CANARY, "weight": "5"},
            {"authority": "other.shop.svc.cluster.local", "weight": "5"},
        ]));
        assert!(
            applied_share(&third, STABLE, CANARY)
                .unwrap_err()
                .contains("neither")
        );
        let missing = profile(json!([{"authority": STABLE, "weight": "100"}]));
        assert!(
            applied_share(&missing, STABLE, CANARY)
                .unwrap_err()
                .contains(CANARY)
        );
        let empty = json!({"spec": {}});
        assert!(
            applied_share(&empty, STABLE, CANARY)
                .unwrap_err()
                .contains("no spec.dstOverrides")
        );
        let mut skipped = profile(json!([
            {"authority": STABLE, "weight": "90"},
            {"authority": CANARY, "weight": "10"},
        ]));
        skipped["metadata"]["annotations"] = json!({"smi.linkerd.io/skip": "true"});
        assert!(
            applied_share(&skipped, STABLE, CANARY)
                .unwrap_err()
                .contains("smi.linkerd.io/skip")
        );
    }
}
