//! A local Lambda Runtime API (the `2018-06-01` interface a custom runtime talks to), enough to
//! run the real `bootstrap` in a test or in the sandbox: it hands out invocations to every `/invocation/next`
//! long-poll at once (several in flight, as Lambda Managed Instances do), collects
//! `/response` and `/error` per request id, and records `/init/error`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// `/invocation/{id}/response` with this JSON body.
    Response(Value),
    /// `/invocation/{id}/error`: the error-type header and the JSON body.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`.
        header: String,
        /// `{"errorType", "errorMessage"}`.
        body: Value,
    },
}

impl Outcome {
    /// The response body, or a panic naming the error.
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error { body, .. } => panic!("function error: {body}"),
        }
    }
}

/// What `/init/error` received.
#[derive(Clone, Debug, PartialEq)]
pub struct InitError {
    /// `errorType` of the body.
    pub error_type: String,
    /// `errorMessage` of the body.
    pub message: String,
}

struct Invocation {
    id: String,
    payload: Bytes,
}

struct State {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<InitError>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    polls: AtomicUsize,
}

/// The emulator: listening on 127.0.0.1 until dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    submit: mpsc::UnboundedSender<Invocation>,
    next_id: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts listening on a free port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (submit, queue) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            queue: tokio::sync::Mutex::new(queue),
            waiting: Mutex::new(HashMap::new()),
            init_error: watch::channel(None).0,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            polls: AtomicUsize::new(0),
        });
        let served = Arc::clone(&state);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(Arc::clone(&state), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            addr,
            state,
            submit,
            next_id: AtomicU64::new(1),
            server,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (`host:port`).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Invokes the function with `payload` and waits (up to 60 s) for its outcome; panics
    /// (failing the test) when it is not answered.
    pub async fn invoke(&self, payload: &Value) -> Outcome {
        match self.try_invoke(payload, Duration::from_secs(60)).await {
            Ok(outcome) => outcome,
            Err(problem) => panic!("{problem}"),
        }
    }

    /// Invokes the function with `payload` and waits up to `wait` for its outcome.
    pub async fn try_invoke(&self, payload: &Value, wait: Duration) -> Result<Outcome, String> {
        let id = format!(
            "req-{:04}-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let payload = serde_json::to_vec(payload)
            .map(Bytes::from)
            .map_err(|e| format!("cannot encode the payload: {e}"))?;
        let (tx, rx) = oneshot::channel();
        lock(&self.state.waiting).insert(id.clone(), tx);
        self.submit
            .send(Invocation {
                id: id.clone(),
                payload,
            })
            .map_err(|_| "the runtime API emulator has stopped".to_owned())?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(format!("invocation {id} dropped")),
            Err(_) => Err(format!(
                "invocation {id} not answered in {:.0} s",
                wait.as_secs_f64()
            )),
        }
    }

    /// Waits up to `wait` for an `/init/error` report.
    pub async fn init_error(&self, wait: Duration) -> Option<InitError> {
        let mut rx = self.state.init_error.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        rx.borrow().clone()
    }

    /// Waits until the function polls `/invocation/next` (init finished) or `wait` passes.
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            if self.state.polls.load(Ordering::SeqCst) > 0 {
                return true;
            }
            if self.state.init_error.borrow().is_some() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Most invocations handed out and not yet answered at one time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn route(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let header = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    if method == hyper::Method::GET && rest == "invocation/next" {
        return Ok(next(&state).await);
    }
    if method != hyper::Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"));
    }
    if rest == "init/error" {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let error = InitError {
            error_type: v["errorType"].as_str().unwrap_or(&header).to_owned(),
            message: v["errorMessage"].as_str().unwrap_or("").to_owned(),
        };
        state.init_error.send_replace(Some(error));
        return Ok(reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}"));
    }
    let Some(rest) = rest.strip_prefix("invocation/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
    let outcome = match what {
        "response" => match serde_json::from_slice(&body) {
            Ok(v) => Outcome::Response(v),
            Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "response is not JSON")),
        },
        "error" => Outcome::Error {
            header,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        },
        _ => return Ok(reply(StatusCode::NOT_FOUND, "unknown path")),
    };
    let Some(waiter) = lock(&state.waiting).remove(id) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            "unknown or already answered request id",
        ));
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let _ = waiter.send(outcome);
    Ok(reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}"))
}

async fn next(state: &State) -> Response<Full<Bytes>> {
    state.polls.fetch_add(1, Ordering::SeqCst);
    // One poller at a time waits on the queue; the others queue for the lock, so each
    // invocation goes to exactly one poller, as soon as any is free.
    let invocation = state.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return reply(StatusCode::GONE, "shut down");
    };
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + 60_000;
    let mut r = Response::new(Full::new(invocation.payload));
    let h = r.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", invocation.id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:similar:3".to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{};Sampled=0", invocation.id),
    );
    set("content-type", "application/json".to_owned());
    r
}
