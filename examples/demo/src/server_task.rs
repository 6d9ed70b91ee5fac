//! A spawned axum server with graceful shutdown, shared by the service and the proxy.

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// How long a shutdown waits for in-flight requests before cutting them off: long enough
/// for any injected latency a test uses, short enough that SIGTERM still means "stop".
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A server running on its own task. Dropping it asks the server to stop (gracefully,
/// in the background); [`ServerTask::shutdown`] does the same and waits for it.
#[derive(Debug)]
pub(crate) struct ServerTask {
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl ServerTask {
    /// Serves `router` on `listener` until told to stop.
    pub(crate) fn spawn(listener: TcpListener, router: Router) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(async move {
            axum::serve(listener, router)
                // A dropped sender also stops the server: the handle is gone, so is the
                // only way to control it.
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            stop: Some(stop),
            join: Some(join),
        }
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a grace
    /// period, after which they are aborted) and waits for the server task to end.
    pub(crate) async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut join) = self.join.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut join).await {
            Ok(Ok(served)) => served.map_err(Error::Serve),
            Ok(Err(join_error)) => Err(Error::Task(join_error)),
            Err(_elapsed) => {
                tracing::warn!(
                    grace = ?SHUTDOWN_GRACE,
                    "in-flight requests did not finish in time; aborting them"
                );
                join.abort();
                Ok(())
            }
        }
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
