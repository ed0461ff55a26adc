//! The operator's HTTP endpoints: `/healthz` (liveness, see [`super::liveness`]), `/readyz`
//! (readiness, see [`super::health`]) and `/metrics` (Prometheus, OpenMetrics text).
//!
//! Probes and metrics may listen on different addresses (the chart puts them on two ports so
//! that a NetworkPolicy can open metrics to Prometheus alone); given one listener, a single
//! server answers all three paths.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::health::{Readiness, Role};
use super::liveness::Liveness;

/// Content type of the OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers read.
#[derive(Clone)]
struct AppState {
    probes: Probes,
    registry: Arc<Registry>,
}

/// What the probes read.
#[derive(Clone, Debug)]
pub struct Probes {
    /// `/readyz`.
    pub readiness: Readiness,
    /// `/healthz`.
    pub liveness: Liveness,
}

/// The router for one listener: probes, metrics, or both.
pub fn router(probes: Probes, registry: Arc<Registry>, serves: Serves) -> Router {
    let state = AppState { probes, registry };
    let probes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let metrics = Router::new().route("/metrics", get(metrics_handler));
    match serves {
        Serves::Probes => probes,
        Serves::Metrics => metrics,
        Serves::Both => probes.merge(metrics),
    }
    .with_state(state)
}

/// Which paths a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serves {
    /// `/healthz` and `/readyz`.
    Probes,
    /// `/metrics`.
    Metrics,
    /// All three.
    Both,
}

/// Liveness: the process answers HTTP and its reconciles make progress. Leadership and cache
/// state are deliberately not part of it — a standby, or a leader waiting for the API server,
/// must not be restarted for that.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.probes.liveness.check() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(stalled) => {
            tracing::error!(%stalled, "liveness probe failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{stalled}\n")).into_response()
        }
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.probes.readiness.check() {
        Ok(Role::Leader) => (StatusCode::OK, "ok: leader, caches synced\n").into_response(),
        Ok(_) => (StatusCode::OK, "ok: standby\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain HTTP/1.0 GET (no client library needed): status line and body.
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("http response");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        (status, head.to_owned(), body.to_owned())
    }

    async fn start(
        readiness: Readiness,
        registry: Registry,
        serves: Serves,
    ) -> std::net::SocketAddr {
        start_with(readiness, Liveness::default(), registry, serves).await
    }

    async fn start_with(
        readiness: Readiness,
        liveness: Liveness,
        registry: Registry,
        serves: Serves,
    ) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let probes = Probes {
            readiness,
            liveness,
        };
        let app = router(probes, Arc::new(registry), serves);
        tokio::spawn(serve(listener, app, std::future::pending()));
        addr
    }

    #[tokio::test]
    async fn readyz_follows_the_role_and_healthz_always_answers() {
        let readiness = Readiness::default();
        let addr = start(readiness.clone(), Registry::default(), Serves::Probes).await;
        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("starting"), "{body}");
        readiness.set_role(Role::Standby);
        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(status, 200);
        assert!(body.contains("standby"), "{body}");
        readiness.set_role(Role::Leader);
        assert_eq!(get(addr, "/readyz").await.0, 503);
        assert_eq!(get(addr, "/metrics").await.0, 404, "probes only");
    }

    #[tokio::test]
    async fn healthz_fails_while_reconciles_hang() {
        let liveness = Liveness::new(std::time::Duration::from_millis(50));
        let addr = start_with(
            Readiness::default(),
            liveness.clone(),
            Registry::default(),
            Serves::Probes,
        )
        .await;
        let hung = liveness.reconciling();
        assert_eq!(get(addr, "/healthz").await.0, 200, "not stalled yet");
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        let (status, _, body) = get(addr, "/healthz").await;
        assert_eq!(status, 503);
        assert!(body.contains("stalled: 1 reconciles in flight"), "{body}");
        drop(hung);
        assert_eq!(get(addr, "/healthz").await.0, 200, "progress again");
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        counter.inc();
        registry.register("things", "Things", counter);
        let addr = start(Readiness::default(), registry, Serves::Metrics).await;
        let (status, head, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.to_lowercase()
                .contains("content-type: application/openmetrics-text"),
            "{head}"
        );
        assert!(body.contains("things_total 1"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get(addr, "/healthz").await.0, 404, "metrics only");
    }

    #[tokio::test]
    async fn one_listener_can_serve_everything() {
        let addr = start(Readiness::default(), Registry::default(), Serves::Both).await;
        assert_eq!(get(addr, "/healthz").await.0, 200);
        assert_eq!(get(addr, "/metrics").await.0, 200);
    }
}
