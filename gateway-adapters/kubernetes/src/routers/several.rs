//! [`SeveralRoutesRouter`]: one rollout, several routing objects (HTTPRoutes of one Service
//! behind two Gateways, an internal and an external VirtualService, two rules of one route):
//! every weight and request route is set on each in turn, and every read-back reads each
//! one, so that a drift in any one of them is a drift of the rollout.
//!
//! The objects are written one after another, not atomically: while a step is being set, some
//! already carry it and some not yet. The read-back that follows every write (and every
//! tick's) says so, and the machine repairs it as any drift.

use std::sync::Mutex;

use async_trait::async_trait;
use canary_core::policy::StepRoute;
use canary_core::ports::{TrafficRouter, check_canary_weight};

/// What one read-back of a router gives: the canary's weight and its request route.
type Reading = (u8, Option<StepRoute>);

/// Sets and reads back several routers as one; see the module docs.
pub struct SeveralRoutesRouter {
    routers: Vec<Box<dyn TrafficRouter>>,
    /// What was last set on all of them, to tell which of disagreeing readings is the drift.
    last_set: Mutex<Option<Reading>>,
}

impl SeveralRoutesRouter {
    /// Sets and reads back `routers`, in this order (at least one).
    pub fn new(routers: Vec<Box<dyn TrafficRouter>>) -> SeveralRoutesRouter {
        SeveralRoutesRouter {
            routers,
            last_set: Mutex::new(None),
        }
    }

    fn remember(&self, reading: Reading) {
        if let Ok(mut last) = self.last_set.lock() {
            *last = Some(reading);
        }
    }
}

/// The one reading of several routers: theirs when they agree. When they do not, the first
/// one that differs from what was last set (the drift the rollout must see); without a
/// last set (a resumed rollout's first read), an error naming every reading, since which of
/// them is the drift cannot be told.
fn agreed(
    readings: &[(String, Reading)],
    last_set: Option<&Reading>,
) -> canary_core::Result<Reading> {
    let Some((_, first)) = readings.first() else {
        return Err(canary_core::Error::Usage(
            "a router over several routes was built with none".to_owned(),
        ));
    };
    if readings.iter().all(|(_, r)| r == first) {
        return Ok(first.clone());
    }
    if let Some(last) = last_set
        && let Some((_, drifted)) = readings.iter().find(|(_, r)| r != last)
    {
        return Ok(drifted.clone());
    }
    let each: Vec<String> = readings
        .iter()
        .map(|(who, (weight, route))| match route {
            Some(route) => format!("{who}: {route}"),
            None => format!("{who}: {weight} %"),
        })
        .collect();
    Err(canary_core::Error::Mismatch {
        component: "gateway",
        message: format!("the routes of this rollout disagree: {}", each.join("; ")),
    })
}

#[async_trait]
impl TrafficRouter for SeveralRoutesRouter {
    async fn set_canary_weight(&self, weight: u8) -> canary_core::Result<()> {
        check_canary_weight(weight)?;
        self.remember((weight, None));
        for router in &self.routers {
            router.set_canary_weight(weight).await?;
        }
        Ok(())
    }

    async fn canary_weight(&self) -> canary_core::Result<u8> {
        Ok(self.read_back().await?.0)
    }

    async fn set_canary_route(&self, route: &StepRoute) -> canary_core::Result<()> {
        self.remember((0, Some(route.clone())));
        for router in &self.routers {
            router.set_canary_route(route).await?;
        }
        Ok(())
    }

    async fn canary_route(&self) -> canary_core::Result<Option<StepRoute>> {
        Ok(self.read_back().await?.1)
    }

    async fn read_back(&self) -> canary_core::Result<Reading> {
        let mut readings = Vec::with_capacity(self.routers.len());
        for router in &self.routers {
            readings.push((router.describe(), router.read_back().await?));
        }
        let last = self.last_set.lock().ok().and_then(|last| last.clone());
        agreed(&readings, last.as_ref())
    }

    /// Each route's own pre-flight, then the routes read together (they must agree).
    async fn preflight(&self) -> canary_core::Result<()> {
        for router in &self.routers {
            router.preflight().await?;
        }
        self.read_back().await.map(drop)
    }

    fn describe(&self) -> String {
        let each: Vec<String> = self.routers.iter().map(|r| r.describe()).collect();
        format!("{} routes: {}", self.routers.len(), each.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(weight: u8) -> (String, Reading) {
        (format!("route-{weight}"), (weight, None))
    }

    #[test]
    fn agreeing_routes_read_as_one_and_a_drifted_one_wins() {
        assert_eq!(
            agreed(&[reading(10), reading(10)], None).unwrap(),
            (10, None)
        );
        // Either of the two drifted: the drifted one is what the rollout sees.
        let last = (10, None);
        assert_eq!(
            agreed(&[reading(10), reading(0)], Some(&last)).unwrap(),
            (0, None)
        );
        assert_eq!(
            agreed(&[reading(0), reading(10)], Some(&last)).unwrap(),
            (0, None)
        );
        // Nothing set yet in this process: which one drifted is unknown, an error says both.
        let message = agreed(&[reading(10), reading(0)], None)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("disagree") && message.contains("route-0: 0 %"),
            "{message}"
        );
    }
}
