//! The process around the controllers: flags ([`args`]), leader election ([`leader`]),
//! readiness ([`health`]), liveness ([`liveness`]) and the probe and metrics endpoints
//! ([`http`]).
//!
//! [`operate`] ties them together; `lmi-operator run` calls it with the real clients and tests
//! call it in-process against a real kube-apiserver and the AWS emulator.

pub mod args;
pub mod health;
pub mod http;
pub mod leader;
pub mod liveness;

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::controller::Context;
use health::Role;
use http::Serves;
use leader::{LeaderElection, StopSignal};

/// Where the operator listens and whether it elects a leader.
pub struct Runtime {
    /// `Some` to run the controllers only while holding the lease.
    pub leader_election: Option<LeaderElection>,
    /// Listener for `/healthz` and `/readyz`.
    pub probes: TcpListener,
    /// Listener for `/metrics`; `None` serves it on the probes listener.
    pub metrics: Option<TcpListener>,
}

/// Runs the controllers (under leader election when configured) and the HTTP endpoints until
/// `shutdown` resolves, then stops the controllers gracefully and releases the lease.
///
/// `controllers` is [`crate::run::controllers`] in production; it gets a signal to stop.
pub async fn operate<C, Fut>(
    ctx: Arc<Context>,
    runtime: Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut controllers: C,
) -> anyhow::Result<()>
where
    C: FnMut(Arc<Context>, StopSignal) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut registry = Registry::default();
    ctx.metrics.register(&mut registry);
    let registry = Arc::new(registry);

    // The HTTP servers outlive the controllers: probes keep answering during shutdown.
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let http_stop = move || {
        let mut rx = http_stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut servers = Vec::new();
    let probes_serve = if runtime.metrics.is_some() {
        Serves::Probes
    } else {
        Serves::Both
    };
    servers.push(tokio::spawn(http::serve(
        runtime.probes,
        http::router(ctx.probes(), registry.clone(), probes_serve),
        http_stop(),
    )));
    if let Some(listener) = runtime.metrics {
        servers.push(tokio::spawn(http::serve(
            listener,
            http::router(ctx.probes(), registry.clone(), Serves::Metrics),
            http_stop(),
        )));
    }

    let result = match runtime.leader_election {
        Some(election) => {
            let readiness = ctx.readiness.clone();
            let metrics = ctx.metrics.clone();
            election
                .run(readiness, metrics, shutdown, |stop| {
                    controllers(ctx.clone(), stop)
                })
                .await
        }
        None => {
            tracing::info!("leader election off: starting controllers");
            ctx.metrics.leader.set(1);
            ctx.readiness.set_role(Role::Leader);
            controllers(ctx.clone(), shutdown.boxed()).await;
            ctx.metrics.leader.set(0);
            ctx.readiness.set_role(Role::Starting);
            Ok(())
        }
    };

    let _ = http_stop_tx.send(true);
    for server in servers {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "HTTP server failed"),
            Err(error) => tracing::warn!(%error, "HTTP server task failed"),
        }
    }
    result
}
