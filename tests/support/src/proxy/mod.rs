//! A reverse proxy in front of the emulator that makes AWS misbehave on purpose — throttling,
//! 500/503, latency, connection resets — and logs every call (service, operation, SDK attempt,
//! outcome) so tests can count AWS calls and watch the SDK retry.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lmi_test_support::SupportError> {
//! use lmi_test_support::{AwsEmulator, Fault, FaultPlan, FaultProxy};
//! let aws = AwsEmulator::start().await?;
//! let proxy = FaultProxy::start(aws.endpoint()).await?;
//! proxy.set_plan(FaultPlan::seeded(7).throttle(0.3));
//! proxy.fail_next(Some("CreateCapacityProvider"), [Fault::Throttle, Fault::ConnectionReset]);
//! let lambda = aws_sdk_lambda::Client::new(&proxy.sdk_config());
//! // ... then: proxy.calls("lambda", "CreateCapacityProvider"), proxy.log()
//! # Ok(()) }
//! ```

mod faults;
mod lambda_operations;
mod operations;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use aws_config::SdkConfig;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub use faults::{Fault, FaultPlan};

use crate::error::SupportError;

/// What became of a logged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to the emulator, which answered with this status.
    Forwarded(u16),
    /// Answered (or cut off) by the proxy with this fault.
    Injected(Fault),
    /// Forwarding failed (the emulator did not answer); the client got a 502.
    UpstreamFailed,
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    /// The SigV4 signing name: `lambda`, `ec2`, `iam`, ... (`unknown` when unsigned).
    pub service: String,
    /// The model's operation name, e.g. `CreateCapacityProvider`, `DescribeSubnets`.
    pub operation: String,
    /// The SDK's attempt number for this call (from its `amz-sdk-request` header), when sent.
    pub attempt: Option<u32>,
    pub outcome: Outcome,
}

impl OperationRecord {
    /// Whether the operation only reads (`Get*`, `List*`, `Describe*`): a resync that finds
    /// nothing to do should make no other call.
    pub fn is_read_only(&self) -> bool {
        ["Get", "List", "Describe"]
            .iter()
            .any(|prefix| self.operation.starts_with(prefix))
    }
}

struct Inner {
    plan: FaultPlan,
    rng: StdRng,
    /// Scripted answers ahead of the plan: a fault, or `None` to forward the request as is.
    queued: VecDeque<(Option<String>, Option<Fault>)>,
    log: Vec<OperationRecord>,
}

struct Shared {
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The proxy: listening on 127.0.0.1 until dropped.
pub struct FaultProxy {
    address: SocketAddr,
    endpoint: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (e.g. [`crate::AwsEmulator::endpoint`]), with no
    /// faults until a plan is set. Runs on the current tokio runtime.
    pub async fn start(upstream: &str) -> Result<FaultProxy, SupportError> {
        let upstream: Uri = upstream.parse().map_err(|e: http::uri::InvalidUri| {
            SupportError::BindProxy(io::Error::new(io::ErrorKind::InvalidInput, e))
        })?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(SupportError::BindProxy)?;
        let address = listener.local_addr().map_err(SupportError::BindProxy)?;
        let shared = Arc::new(Shared {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            inner: Mutex::new(Inner {
                plan: FaultPlan::none(),
                rng: StdRng::seed_from_u64(0),
                queued: VecDeque::new(),
                log: Vec::new(),
            }),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(FaultProxy {
            address,
            endpoint: format!("http://{address}"),
            shared,
            server,
        })
    }

    /// The proxy's URL, e.g. `http://127.0.0.1:40321`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The socket address the proxy listens on, for tests that connect without the SDK.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// SDK configuration whose calls go through the proxy.
    pub fn sdk_config(&self) -> SdkConfig {
        crate::sdk::sdk_config(&self.endpoint)
    }

    /// Replaces the fault plan and reseeds the generator with its seed.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut inner = self.shared.inner();
        inner.rng = StdRng::seed_from_u64(plan.seed);
        inner.plan = plan;
    }

    /// The plan in force.
    pub fn plan(&self) -> FaultPlan {
        self.shared.inner().plan.clone()
    }

    /// Injects `faults`, in order, into the next requests to `operation` (any operation when
    /// `None`), ahead of the plan. Deterministic, for tests that want an exact sequence.
    pub fn fail_next(&self, operation: Option<&str>, faults: impl IntoIterator<Item = Fault>) {
        let mut inner = self.shared.inner();
        for fault in faults {
            inner
                .queued
                .push_back((operation.map(str::to_owned), Some(fault)));
        }
    }

    /// Forwards the next `count` requests to `operation` as they are, ahead of the plan and of
    /// faults queued after this call: with [`FaultProxy::fail_next`], "the first succeeds, the
    /// rest fail".
    pub fn let_through(&self, operation: Option<&str>, count: usize) {
        let mut inner = self.shared.inner();
        for _ in 0..count {
            inner.queued.push_back((operation.map(str::to_owned), None));
        }
    }

    /// Drops queued faults and the plan: from now on every request is forwarded as is.
    pub fn clear_faults(&self) {
        let mut inner = self.shared.inner();
        inner.queued.clear();
        inner.plan = FaultPlan::none();
    }

    /// Every request seen since the start or the last [`FaultProxy::clear_log`], in order.
    pub fn log(&self) -> Vec<OperationRecord> {
        self.shared.inner().log.clone()
    }

    pub fn clear_log(&self) {
        self.shared.inner().log.clear();
    }

    /// How many requests (attempts included) called `service`'s `operation`.
    pub fn calls(&self, service: &str, operation: &str) -> usize {
        self.shared
            .inner()
            .log
            .iter()
            .filter(|r| r.service == service && r.operation == operation)
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.server.abort();
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("endpoint", &self.endpoint)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let reset = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(ResettableStream {
            inner: stream,
            reset: Arc::clone(&reset),
        });
        let shared = Arc::clone(&shared);
        let service =
            service_fn(move |request| handle(Arc::clone(&shared), Arc::clone(&reset), request));
        connections.spawn(async move {
            // A connection error (including our own resets) ends only this connection.
            let _ = http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

/// Returned by the service to make hyper drop the connection (which then resets it).
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset injected by the fault proxy")
    }
}

impl std::error::Error for ResetConnection {}

async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ResetConnection> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(ResetConnection),
    };
    let (service, operation) = operations::identify(&parts, &body);
    let attempt = sdk_attempt(&parts.headers);

    let (fault, latency) = {
        let mut inner = shared.inner();
        let queued = inner.queued.iter().position(|(only, _)| {
            only.as_deref()
                .is_none_or(|only_operation| only_operation == operation)
        });
        let fault = match queued.and_then(|index| inner.queued.remove(index)) {
            Some((_, scripted)) => scripted,
            None if inner.plan.applies_to(&operation) => {
                let draw = inner.rng.random::<f64>();
                inner.plan.pick(draw)
            }
            None => None,
        };
        (fault, inner.plan.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let record = |outcome| OperationRecord {
        service: service.clone(),
        operation: operation.clone(),
        attempt,
        outcome,
    };
    let (outcome, response) = match fault {
        Some(Fault::ConnectionReset) => {
            shared
                .inner()
                .log
                .push(record(Outcome::Injected(Fault::ConnectionReset)));
            reset.store(true, Ordering::SeqCst);
            return Err(ResetConnection);
        }
        Some(Fault::LostResponse) => {
            let (forwarded, _) = forward(&shared, parts, body).await;
            shared.inner().log.push(record(forwarded));
            shared
                .inner()
                .log
                .push(record(Outcome::Injected(Fault::LostResponse)));
            reset.store(true, Ordering::SeqCst);
            return Err(ResetConnection);
        }
        Some(Fault::Stall) => {
            shared
                .inner()
                .log
                .push(record(Outcome::Injected(Fault::Stall)));
            // Dropped with the connection when the client gives up.
            return std::future::pending().await;
        }
        Some(fault) => (
            Outcome::Injected(fault),
            faults::error_response(&service, fault),
        ),
        None => forward(&shared, parts, body).await,
    };
    shared.inner().log.push(record(outcome));
    Ok(response)
}

async fn forward(
    shared: &Shared,
    mut parts: http::request::Parts,
    body: Bytes,
) -> (Outcome, Response<Full<Bytes>>) {
    let bad_gateway = || {
        let mut response = Response::new(Full::new(Bytes::from_static(b"upstream failed")));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        (Outcome::UpstreamFailed, response)
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let Ok(uri) = format!(
        "{}{}",
        shared.upstream.to_string().trim_end_matches('/'),
        path
    )
    .parse::<Uri>() else {
        return bad_gateway();
    };
    parts.uri = uri;
    if let Some(authority) = shared.upstream.authority()
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(http::header::HOST, host);
    }
    let Ok(response) = shared
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    else {
        return bad_gateway();
    };
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await else {
        return bad_gateway();
    };
    // The body is re-sent whole: framing headers of the upstream no longer apply.
    for name in [
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
        http::header::CONTENT_LENGTH,
    ] {
        parts.headers.remove(name);
    }
    let status = parts.status.as_u16();
    (
        Outcome::Forwarded(status),
        Response::from_parts(parts, Full::new(collected.to_bytes())),
    )
}

/// `amz-sdk-request: attempt=2; max=3` → 2.
fn sdk_attempt(headers: &http::HeaderMap) -> Option<u32> {
    let value = headers.get("amz-sdk-request")?.to_str().ok()?;
    value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("attempt="))
        .and_then(|n| n.parse().ok())
}

/// A TCP stream that, when asked to, closes with a reset (RST) instead of an orderly FIN.
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0: closing the socket now sends RST.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_attempt_is_read_from_its_request_header() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "amz-sdk-request",
            http::HeaderValue::from_static("attempt=2; max=3"),
        );
        assert_eq!(sdk_attempt(&headers), Some(2));
        assert_eq!(sdk_attempt(&http::HeaderMap::new()), None);
    }

    #[test]
    fn read_only_operations_are_gets_lists_and_describes() {
        let record = |operation: &str| OperationRecord {
            service: "lambda".to_owned(),
            operation: operation.to_owned(),
            attempt: None,
            outcome: Outcome::Forwarded(200),
        };
        assert!(record("GetCapacityProvider").is_read_only());
        assert!(record("DescribeSubnets").is_read_only());
        assert!(!record("UpdateCapacityProvider").is_read_only());
    }
}
