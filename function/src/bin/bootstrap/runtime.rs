//! The Lambda Runtime API loop: one long-poll worker per invocation slot
//! (`AWS_LAMBDA_MAX_CONCURRENCY`, as Lambda Managed Instances run several invocations in one
//! process), each taking an event from `/next`, answering it with the handler and posting the
//! answer or the function error.
//!
//! Why not `lambda_runtime::Runtime::run_concurrent`: it reads every event whole before the
//! handler is called, so a burst of maximum-size (6 MB) events holds one in memory per slot —
//! 64 slots hold 384 MB, whatever the handler then does with them (`scripts/bench-handler
//! --hostile` measured 80% of a 400 MB catalog matrix). Here an event whose `Content-Length` is
//! over [`LARGE_EVENT_BYTES`] (or unknown) waits for one of `LMI_LARGE_EVENT_SLOTS` before its body
//! is read, and gives it back once the request is parsed; small events (every vector or product
//! query) never wait. Everything else is `lambda_runtime`'s: the HTTP client and request builder
//! (`lambda_runtime_api_client`), the invocation [`Context`] parsed from the `/next` headers, the
//! runtime [`Config`] from the environment, and the [`Diagnostic`] of a function error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use lambda_runtime::{Config, Context, Diagnostic};
use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{Client, build_request};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::handler::{App, FunctionError};
use crate::request::{ApiError, MAX_REQUEST_BYTES};

/// Events larger than this (by `Content-Length`) are read only in one of the large-event slots.
/// Queries by vector (a 3072-value vector is about 40 KB of JSON) and by product id are far
/// below it.
pub const LARGE_EVENT_BYTES: u64 = 128 * 1024;

/// The most a Runtime API connection reads ahead of the handler (hyper's read buffer;
/// lambda_runtime_api_client sets 1 MiB). A worker waiting for a large-event slot leaves its
/// event's body on the socket; with 1 MiB, 63 waiting slots buffered up to 63 MiB of events
/// nobody was reading yet. `/next`'s headers are a few hundred bytes.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// How long a worker waits before polling `/next` again after the Runtime API failed it.
const RETRY_NEXT: Duration = Duration::from_millis(100);

/// Consecutive failed polls after which a worker stops (about 5 s of an unreachable Runtime API:
/// the environment is gone, and a runtime polling it forever would be an orphan).
const MAX_FAILED_POLLS: u32 = 50;

/// Runs one worker per invocation slot, `large_event_slots` of which may read a large event at
/// once ([`Config`](crate::config::Config)), until every one has stopped (which only an unusable
/// Runtime API does).
pub async fn run(app: App) -> Result<(), lambda_runtime::Error> {
    let (slots, large_slots) = {
        let config = app.config();
        (config.invocation_slots, config.large_event_slots)
    };
    let mut client = Client::builder().build()?;
    client.client = {
        let mut builder =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
        builder.http1_max_buf_size(READ_BUFFER_BYTES);
        builder.build(hyper_util::client::legacy::connect::HttpConnector::new())
    };
    let client = Arc::new(client);
    let config = Arc::new(Config::from_env());
    let large = Arc::new(Semaphore::new(large_slots));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..slots {
        workers.spawn(worker(
            app.clone(),
            Arc::clone(&client),
            Arc::clone(&config),
            Arc::clone(&large),
        ));
    }
    while let Some(ended) = workers.join_next().await {
        match ended {
            Ok(()) => tracing::error!("a runtime worker stopped"),
            Err(e) => tracing::error!(error = %e, "a runtime worker failed"),
        }
    }
    Err("every runtime worker stopped".into())
}

/// One invocation slot: `/next`, answer, post, forever.
async fn worker(app: App, client: Arc<Client>, config: Arc<Config>, large: Arc<Semaphore>) {
    let mut failed_polls = 0;
    loop {
        let next = build_request()
            .method("GET")
            .uri("/2018-06-01/runtime/invocation/next")
            .body(Body::empty());
        let response = match next {
            Ok(request) => client.call(request).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the /next request");
                return;
            }
        };
        failed_polls = if response.is_ok() {
            0
        } else {
            failed_polls + 1
        };
        if failed_polls >= MAX_FAILED_POLLS {
            tracing::error!(
                failed_polls,
                "the Runtime API has been unreachable for {MAX_FAILED_POLLS} polls; stopping"
            );
            return;
        }
        let response = match response {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                tracing::warn!(status = %response.status(), "the Runtime API refused /next; retrying");
                tokio::time::sleep(RETRY_NEXT).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "polling /next failed; retrying");
                tokio::time::sleep(RETRY_NEXT).await;
                continue;
            }
        };
        let (parts, body) = response.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let Some(request_id) = header("lambda-runtime-aws-request-id") else {
            tracing::error!("an event came without a request id; skipped");
            continue;
        };
        let invocation_id = header("lambda-runtime-invocation-id");
        let reply = Reply {
            client: &client,
            request_id: &request_id,
            invocation_id: invocation_id.as_deref(),
        };
        let context = match Context::new(&request_id, Arc::clone(&config), &parts.headers) {
            Ok(context) => context,
            Err(e) => {
                let error = ApiError::server(
                    500,
                    "InvalidInvocation",
                    "the invocation's headers could not be read",
                )
                .with_detail(e.to_string());
                reply.error(&error).await;
                continue;
            }
        };
        let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
        // A large (or unsized) event waits for a large-event slot before its body is read.
        let permit: Option<OwnedSemaphorePermit> = if length.is_none_or(|n| n > LARGE_EVENT_BYTES) {
            Arc::clone(&large).acquire_owned().await.ok()
        } else {
            None
        };
        let body = match read_body(body, length).await {
            Ok(body) => body,
            Err(error) => {
                reply.error(&error).await;
                continue;
            }
        };
        // The handler runs in its own task: a panic there fails this invocation, not the slot.
        let app = app.clone();
        let answer = tokio::spawn(async move { app.invoke(body, context, permit).await }).await;
        match answer {
            Ok(Ok(value)) => reply.response(&value).await,
            Ok(Err(FunctionError { error, request_id })) => {
                reply
                    .diagnostic(FunctionError { error, request_id }.into())
                    .await;
            }
            Err(e) => {
                let error =
                    ApiError::server(500, "HandlerPanicked", "the handler failed on this request")
                        .with_detail(e.to_string());
                tracing::error!(error = %e, "the handler panicked");
                reply.error(&error).await;
            }
        }
    }
}

/// An event's body, read frame by frame into one buffer sized from `Content-Length` (no second
/// copy), and never more than the payload limit.
async fn read_body(
    mut body: hyper::body::Incoming,
    length: Option<u64>,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::client(
            413,
            "PayloadTooLarge",
            None,
            format!(
                "the event is over Lambda's {MAX_REQUEST_BYTES}-byte (6 MB) invocation payload \
                 limit"
            ),
        )
    };
    let expected = length.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if expected > MAX_REQUEST_BYTES {
        return Err(too_large());
    }
    let mut buffer = Vec::with_capacity(expected);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::server(502, "InvalidInvocation", "the event could not be read")
                .with_detail(e.to_string())
        })?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > MAX_REQUEST_BYTES {
                return Err(too_large());
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buffer))
}

/// Posts one invocation's answer.
struct Reply<'a> {
    client: &'a Client,
    request_id: &'a str,
    invocation_id: Option<&'a str>,
}

impl Reply<'_> {
    async fn response(&self, value: &serde_json::Value) {
        match serde_json::to_vec(value) {
            Ok(body) => self.post("response", None, body).await,
            Err(e) => {
                let error = ApiError::server(500, "Internal", "the answer could not be encoded")
                    .with_detail(e.to_string());
                self.error(&error).await;
            }
        }
    }

    async fn error(&self, error: &ApiError) {
        self.diagnostic(
            FunctionError {
                error: error.clone(),
                request_id: self.request_id.to_owned(),
            }
            .into(),
        )
        .await;
    }

    async fn diagnostic(&self, diagnostic: Diagnostic) {
        match serde_json::to_vec(&diagnostic) {
            // The type Lambda records for a function error (what lambda_runtime sends too).
            Ok(body) => self.post("error", Some("unhandled"), body).await,
            Err(e) => tracing::error!(error = %e, "cannot encode a function error"),
        }
    }

    async fn post(&self, what: &str, error_type: Option<&str>, body: Vec<u8>) {
        let mut request = build_request()
            .method("POST")
            .uri(format!(
                "/2018-06-01/runtime/invocation/{}/{what}",
                self.request_id
            ))
            .header("content-type", "application/json");
        if let Some(error_type) = error_type {
            request = request.header("lambda-runtime-function-error-type", error_type);
        }
        if let Some(id) = self.invocation_id {
            request = request.header("lambda-runtime-invocation-id", id);
        }
        let sent = match request.body(Body::from(body)) {
            Ok(request) => self.client.call(request).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the {what} request");
                return;
            }
        };
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::error!(
                status = %response.status(),
                requestId = self.request_id,
                "the Runtime API refused the {what}"
            ),
            Err(e) => tracing::error!(
                error = %e,
                requestId = self.request_id,
                "cannot post the {what}"
            ),
        }
    }
}
