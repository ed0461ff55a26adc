//! A fault-injecting proxy in front of the real API server, as the AWS fault proxy is in front
//! of the emulator: clients talk plain HTTP to it on loopback, it forwards over TLS and streams
//! responses (watches included) back. On demand it delays every request, answers matching
//! requests with an error `Status` (409, 429, 500, 503, ...), ends every open watch (clients
//! re-watch), or goes away for a moment (connections dropped, port closed) and comes back.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::SupportError;

/// An error answer for requests that match: method, path substring, watches or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiFault {
    status: u16,
    times: u32,
    method: Option<Method>,
    path_contains: Option<String>,
}

impl ApiFault {
    /// Answer the next matching request with `status` (once; see [`ApiFault::times`]).
    pub fn status(status: u16) -> Self {
        ApiFault {
            status,
            times: 1,
            method: None,
            path_contains: None,
        }
    }

    /// The next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Only requests with this method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Only requests whose path contains `text`.
    pub fn path_contains(mut self, text: &str) -> Self {
        self.path_contains = Some(text.to_owned());
        self
    }

    fn matches(&self, method: &Method, uri: &Uri, watch: bool) -> bool {
        !watch
            && self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| uri.path().contains(p))
    }
}

#[derive(Default)]
struct State {
    faults: Vec<ApiFault>,
    latency: Duration,
    /// Requests answered with an injected fault so far.
    fired: usize,
}

struct Shared {
    upstream: String,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    state: Mutex<State>,
    /// Bumped by [`KubeProxy::drop_watches`]: every open watch ends.
    watches: watch::Sender<u64>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The proxy, listening on 127.0.0.1 until dropped.
pub struct KubeProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

impl KubeProxy {
    /// Starts a proxy to the API server at `upstream` (`https://…`), whose certificate chains
    /// to `ca_pem`.
    pub async fn start(upstream: &str, ca_pem: &str) -> Result<KubeProxy, SupportError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            SupportError::ControlPlane(format!("API server proxy: {what}: {e}"))
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| fail("CA", &e))?;
            roots.add(cert).map_err(|e| fail("CA", &e))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("TLS", &e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| fail("bind", &e))?;
        let address = listener.local_addr().map_err(|e| fail("bind", &e))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            state: Mutex::new(State::default()),
            watches: watch::channel(0).0,
        });
        let proxy = KubeProxy {
            address,
            shared: shared.clone(),
            server: Mutex::new(Some(tokio::spawn(serve(listener, shared)))),
        };
        Ok(proxy)
    }

    /// `http://127.0.0.1:<port>`: the server of a kubeconfig that goes through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Answers matching requests with an error.
    pub fn inject(&self, fault: ApiFault) {
        self.shared.state().faults.push(fault);
    }

    /// Delays every request by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state().latency = latency;
    }

    /// No more faults and no latency (the count of fired faults is kept).
    pub fn clear_faults(&self) {
        let mut state = self.shared.state();
        state.faults.clear();
        state.latency = Duration::ZERO;
    }

    /// How many requests were answered with an injected fault so far.
    pub fn fired(&self) -> usize {
        self.shared.state().fired
    }

    /// Ends every open watch (as an API server restart or a load balancer would); clients
    /// watch again from their last resource version.
    pub fn drop_watches(&self) {
        self.shared.watches.send_modify(|n| *n += 1);
    }

    /// Goes away for `pause`: open connections are dropped and the port refuses connections,
    /// then it serves again on the same port (the API server behind it kept everything).
    pub async fn restart(&self, pause: Duration) -> Result<(), SupportError> {
        let running = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = running {
            server.abort();
            let _ = server.await;
        }
        tokio::time::sleep(pause).await;
        let listener = TcpListener::bind(self.address).await.map_err(|e| {
            SupportError::ControlPlane(format!("API server proxy: bind again: {e}"))
        })?;
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(tokio::spawn(serve(listener, self.shared.clone())));
        Ok(())
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        if let Some(server) = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            server.abort();
        }
    }
}

/// Accepts connections until aborted; aborting it drops every connection it serves.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn is_watch(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let watch = is_watch(request.uri());
    let (latency, fault) = {
        let mut state = shared.state();
        let latency = state.latency;
        let fault = state
            .faults
            .iter_mut()
            .find(|f| f.times > 0 && f.matches(request.method(), request.uri(), watch))
            .map(|f| {
                f.times -= 1;
                f.status
            });
        state.faults.retain(|f| f.times > 0);
        state.fired += usize::from(fault.is_some());
        (latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = fault {
        return Ok(status_response(status, "injected by the test proxy"));
    }
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let Ok(uri) = format!("{}{path}", shared.upstream).parse::<Uri>() else {
        return Ok(status_response(400, "bad request URI"));
    };
    parts.uri = uri;
    parts.headers.remove(http::header::HOST);
    let cut = shared.watches.subscribe();
    match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = if watch {
                Cut::new(body, cut).boxed()
            } else {
                body.boxed()
            };
            Ok(Response::from_parts(parts, body))
        }
        Err(e) => Ok(status_response(502, &format!("upstream: {e}"))),
    }
}

/// A Kubernetes `Status` error answer, with `Retry-After` for 429 and 503 as the API server
/// sends it.
fn status_response(code: u16, message: &str) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match code {
        409 => "Conflict",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        404 => "NotFound",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    let mut response = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json");
    if code == 429 || code == 503 {
        response = response.header(http::header::RETRY_AFTER, "1");
    }
    response
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(BoxBody::default()))
}

/// A streamed body that ends when [`KubeProxy::drop_watches`] is called.
struct Cut {
    inner: Incoming,
    dropped: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
}

impl Cut {
    fn new(inner: Incoming, mut watches: watch::Receiver<u64>) -> Self {
        Cut {
            inner,
            dropped: Box::pin(async move {
                let _ = watches.changed().await;
            }),
        }
    }
}

impl Body for Cut {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.dropped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}
