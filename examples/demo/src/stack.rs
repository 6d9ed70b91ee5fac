//! The whole demo traffic path in one call: two versions, the proxy, the load.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::{
    DemoService, DemoServiceConfig, LoadConfig, LoadGenerator, LoadSnapshot, ProxyConfig, Result,
    RunningLoad, RunningProxy, RunningService, WeightedProxy,
};

/// What [`DemoStack::start`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoStackConfig {
    /// The stable version.
    pub stable: DemoServiceConfig,
    /// The canary version (give it faults to show a rollback).
    pub canary: DemoServiceConfig,
    /// Requests per second the load generator sends through the proxy.
    pub rps: f64,
    /// Path and query the load generator requests, e.g. `/api/checkout`.
    pub load_path: String,
    /// Address every part listens on, each on a free port.
    pub listen_ip: IpAddr,
}

impl Default for DemoStackConfig {
    /// Healthy `stable` and `canary`, 100 requests per second to `/api/checkout`, on
    /// 127.0.0.1.
    fn default() -> Self {
        Self {
            stable: DemoServiceConfig::stable(),
            canary: DemoServiceConfig::canary(),
            rps: 100.0,
            load_path: "/api/checkout".to_owned(),
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// Starts the traffic path `canary demo` rolls out on. Start one with
/// [`DemoStack::start`].
#[derive(Debug)]
pub struct DemoStack {
    _private: (),
}

impl DemoStack {
    /// Starts the stable and canary services, the weighted proxy in front of them at
    /// canary weight 0, and the load generator sending through the proxy until
    /// [`RunningStack::shutdown`]. If a part fails to start, the parts already started
    /// are stopped.
    pub async fn start(config: DemoStackConfig) -> Result<RunningStack> {
        let any_port = SocketAddr::new(config.listen_ip, 0);
        let stable = DemoService::spawn(config.stable, any_port).await?;
        let canary = DemoService::spawn(config.canary, any_port).await?;
        let proxy = WeightedProxy::spawn(
            ProxyConfig::new(stable.base_url(), canary.base_url()),
            any_port,
        )
        .await?;
        let path = if config.load_path.starts_with('/') {
            config.load_path
        } else {
            format!("/{}", config.load_path)
        };
        let load = LoadGenerator::start(LoadConfig::new(
            format!("{}{path}", proxy.base_url()),
            config.rps,
        ))?;
        Ok(RunningStack {
            stable,
            canary,
            proxy,
            load,
        })
    }
}

/// The running demo traffic path. Dropping it stops every part.
#[derive(Debug)]
pub struct RunningStack {
    stable: RunningService,
    canary: RunningService,
    proxy: RunningProxy,
    load: RunningLoad,
}

impl RunningStack {
    /// The stable version (scrape its [`RunningService::metrics_url`]).
    pub fn stable(&self) -> &RunningService {
        &self.stable
    }

    /// The canary version (change its faults with [`RunningService::set_faults`]).
    pub fn canary(&self) -> &RunningService {
        &self.canary
    }

    /// The proxy (shift traffic with [`RunningProxy::set_canary_weight`]).
    pub fn proxy(&self) -> &RunningProxy {
        &self.proxy
    }

    /// The load generator (read its [`RunningLoad::snapshot`]).
    pub fn load(&self) -> &RunningLoad {
        &self.load
    }

    /// Stops the load first (so no request meets a closed port), then the proxy, then
    /// both services, and gives the load generator's final counts.
    pub async fn shutdown(self) -> Result<LoadSnapshot> {
        let summary = self.load.stop().await?;
        self.proxy.shutdown().await?;
        self.canary.shutdown().await?;
        self.stable.shutdown().await?;
        Ok(summary)
    }
}
