//! One invocation: read the event (direct JSON or an HTTP event), check the request, embed it
//! if it is text or an image, search, and answer with ranked hits, the model and timings.
//!
//! Errors: a direct invocation's every failure, the caller's mistakes included, is a function
//! error with its own `errorType` and an `errorMessage` naming the problem (what Lambda, the
//! SDKs and AWS's runtime emulator show a caller). HTTP events (function URLs, API Gateway) get
//! an HTTP response with the status that fits instead: 4xx for the caller's mistakes, 5xx for
//! ours or a dependency's.
//!
//! Time: an invocation never outlives its deadline. Embedding calls get the time left before
//! it, less a margin for the search ([`DEADLINE_MARGIN`]), and at most
//! `LMI_EMBEDDING_CONCURRENCY` of them wait on Bedrock at once, so a Bedrock that stops
//! answering cannot hold every invocation slot: vector and productId queries are still served.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use lambda_runtime::{Context, Diagnostic};
use lmi_similarity::{Engine, Hit, Query, QueryError};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::config::Config;
use crate::embed::{self, Input};
use crate::http;
use crate::metrics::{Emf, QueryMetrics};
use crate::request::{self, ApiError, Event, Prepared, Subject};

/// Lambda's limit on a synchronous invocation's response: 6 MB (Lambda quotas, "Invocation
/// payload (request and response)"); AWS's runtime emulator refuses larger answers with
/// `Function.ResponseSizeTooLarge`.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// Time kept back from an embedding call for the search and the answer: the call gets the time
/// left before the invocation's deadline less this.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Time kept back from the whole invocation for sending its answer: a query still queued for a
/// scan this close to the deadline is dropped (504), and an invocation still running then is
/// answered with `DeadlineExceeded` (LMI does not stop timed-out invocations: one that ran on
/// would hold its slot for nothing).
pub const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// A function error: how a direct invocation fails, reported to Lambda with its `errorType`.
#[derive(Debug)]
pub struct FunctionError {
    /// What failed.
    pub error: ApiError,
    /// The invocation's request id (named in the message of a 5xx).
    pub request_id: String,
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        let message = e.error.message_for(&e.request_id);
        let ApiError {
            error_type, field, ..
        } = e.error;
        // The message names the field; say it when the wording does not.
        let error_message = match field {
            Some(field) if !message.contains(field.split('[').next().unwrap_or(&field)) => {
                format!("{field}: {message}")
            }
            _ => message,
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message,
        }
    }
}

/// Everything built once at init and shared by all invocations (cheap to clone).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    bedrock: aws_sdk_bedrockruntime::Client,
    /// Slots for embedding calls waiting on Bedrock (`LMI_EMBEDDING_CONCURRENCY`).
    embedding_slots: Semaphore,
    config: Config,
    emf: Emf,
    /// Notified when the engine has failed (a panic in a pass): the process must exit so that
    /// Lambda replaces the execution environment (LMI does not recycle it on its own).
    fatal: Arc<Notify>,
}

impl App {
    /// The shared state.
    pub fn new(engine: Engine, bedrock: aws_sdk_bedrockruntime::Client, config: Config) -> Self {
        let emf = Emf::new(
            &config.metrics_namespace,
            &config.function.name,
            &config.function.version,
        );
        Self {
            inner: Arc::new(Inner {
                engine,
                bedrock,
                embedding_slots: Semaphore::new(config.bedrock.concurrency),
                config,
                emf,
                fatal: Arc::new(Notify::new()),
            }),
        }
    }

    /// The configuration read at init.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Completes once the engine has failed and this execution environment must be replaced.
    pub async fn failed(&self) {
        self.inner.fatal.notified().await;
    }

    /// Answers one invocation whose event is `body`; `slot` (a large event's read slot, see
    /// [`crate::runtime`]) is given back with the event once the request is parsed.
    pub async fn invoke(
        &self,
        body: Bytes,
        context: Context,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<Value, FunctionError> {
        let span = tracing::info_span!(
            "invocation",
            requestId = %context.request_id,
            functionVersion = %self.inner.config.function.version,
        );
        let deadline = deadline(&context);
        self.inner
            .handle(body, slot, &context.request_id, deadline)
            .instrument(span)
            .await
    }
}

/// The invocation's deadline as an instant (none when the runtime gave none).
fn deadline(context: &Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(Instant::now() + left)
}

/// What an event asks, once parsed.
enum Parsed {
    /// A direct invocation's request.
    Direct(Prepared),
    /// An HTTP event's request (or the HTTP error it gets).
    Http(Result<Prepared, ApiError>),
}

impl Inner {
    async fn handle(
        &self,
        body: Bytes,
        slot: Option<OwnedSemaphorePermit>,
        request_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Value, FunctionError> {
        let started = Instant::now();
        let catalog = self.engine.catalog();
        let max_top_k = self.config.max_top_k;
        let fail = |e: ApiError| {
            self.record_error(&e, request_id);
            FunctionError {
                error: e,
                request_id: request_id.to_owned(),
            }
        };
        let parsed = request::parse_event(&body, catalog, max_top_k).map(|event| match event {
            Event::Direct(prepared) => Parsed::Direct(prepared),
            Event::Http { method, fields } => {
                Parsed::Http(http::request(&method, &fields, catalog, max_top_k))
            }
        });
        // The event (and its large-event slot) is given back before any Bedrock call or scan:
        // the request owns what it needs.
        drop(body);
        drop(slot);
        match parsed.map_err(&fail)? {
            Parsed::Direct(prepared) => self
                .bounded(prepared, started, request_id, deadline)
                .await
                .map_err(&fail),
            Parsed::Http(request) => {
                let answer = match request {
                    Ok(prepared) => self.bounded(prepared, started, request_id, deadline).await,
                    Err(e) => Err(e),
                };
                let response = answer.map(|body| http::response(200, &body)).and_then(fits);
                Ok(response.unwrap_or_else(|e| {
                    self.record_error(&e, request_id);
                    http::response(e.status, &e.body(request_id))
                }))
            }
        }
    }

    /// [`Inner::answer`] within the invocation's deadline less [`ANSWER_MARGIN`].
    async fn bounded(
        &self,
        prepared: Prepared,
        started: Instant,
        request_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Value, ApiError> {
        let answer = self.answer(prepared, started, request_id, deadline);
        let Some(deadline) = deadline else {
            return answer.await;
        };
        let until = tokio::time::Instant::from_std(answer_by(deadline));
        tokio::time::timeout_at(until, answer)
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded()))
    }

    async fn answer(
        &self,
        prepared: Prepared,
        started: Instant,
        request_id: &str,
        deadline: Option<Instant>,
    ) -> Result<Value, ApiError> {
        let kind = prepared.subject.kind();
        let dims = self.config.dimensions;
        let (target, model, embed_ms) = match &prepared.subject {
            Subject::Text(text) => {
                let t = Instant::now();
                let model = self.model("text")?;
                let v = self.embed(model, Input::Text(text), dims, deadline).await?;
                (Query::by_vector(v), Some(model), Some(ms(t)))
            }
            Subject::Image { base64, format } => {
                let t = Instant::now();
                let input = Input::Image {
                    base64,
                    format: *format,
                };
                let model = self.model("image")?;
                let v = self.embed(model, input, dims, deadline).await?;
                (Query::by_vector(v), Some(model), Some(ms(t)))
            }
            Subject::Vector(v) => (Query::by_vector(v.clone()), None, None),
            Subject::Product(id) => (Query::by_id(id.clone()), None, None),
        };
        let searched = Instant::now();
        let search_deadline = deadline.map(answer_by);
        let (hits, pass) = self
            .engine
            .search_before(prepared.query(target), search_deadline)
            .await
            .map_err(|e| {
                if matches!(e, QueryError::SearchFailed | QueryError::EngineStopped) {
                    self.fatal.notify_one();
                }
                query_error(e)
            })?;
        let search_ms = ms(searched);
        let scan_rows = prepared.scan_rows(self.engine.catalog());
        let total_ms = ms(started);

        let results: Vec<Value> = hits.iter().map(|h| self.hit(h)).collect();
        let response = fits(json!({
            "results": results,
            "model": model,
            "queryKind": kind,
            "timings": {
                "embedMs": embed_ms.map(round),
                "queueMs": round(pass.queued.as_secs_f64() * 1000.0),
                "searchMs": round(search_ms),
                "totalMs": round(total_ms),
            },
            "batchSize": pass.batch_size,
            "scannedRows": scan_rows,
        }))?;
        let emf = &self.emf;
        emf.emit(&emf.query_line(
            request_id,
            kind,
            &QueryMetrics {
                latency_ms: total_ms,
                embed_ms,
                search_ms,
                scan_rows,
                batch_size: pass.batch_size,
            },
        ));
        tracing::info!(
            queryKind = kind,
            hits = hits.len(),
            topK = prepared.top_k,
            batchSize = pass.batch_size,
            totalMs = round(total_ms),
            "query answered"
        );
        Ok(response)
    }

    /// The embedding model a `text` or `image` query needs, or a 400 naming `field` when the
    /// function has none.
    fn model(&self, field: &str) -> Result<&str, ApiError> {
        self.config.model_id.as_deref().ok_or_else(|| {
            ApiError::client(
                400,
                "EmbeddingNotConfigured",
                Some(field.to_owned()),
                format!(
                    "this function has no embedding model (spec.embedding is not set), so a \
                     query by {field} cannot be embedded; query by vector or productId, or set \
                     spec.embedding on the SimilarityFunction"
                ),
            )
        })
    }

    /// Embeds `input` in one of the embedding slots, within the time left before `deadline`
    /// less [`DEADLINE_MARGIN`]; busy slots or no time left fail at once.
    async fn embed(
        &self,
        model: &str,
        input: Input<'_>,
        dims: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<f32>, ApiError> {
        let Ok(_slot) = self.embedding_slots.try_acquire() else {
            let slots = self.config.bedrock.concurrency;
            return Err(ApiError::server(
                503,
                "EmbeddingBusy",
                format!(
                    "all {slots} embedding slots of this execution environment are waiting on \
                     Bedrock (LMI_EMBEDDING_CONCURRENCY); retry with backoff — vector and \
                     productId queries are still answered"
                ),
            ));
        };
        let call = embed::embed(&self.bedrock, model, dims, input);
        let Some(deadline) = deadline else {
            return call.await;
        };
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(DEADLINE_MARGIN);
        if budget.is_zero() {
            return Err(ApiError::server(
                504,
                "DeadlineExceeded",
                "the invocation reached its deadline before the embedding call could start: \
                 raise the function's timeout",
            ));
        }
        tokio::time::timeout(budget, call)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::server(
                    504,
                    "EmbeddingTimeout",
                    format!(
                        "Bedrock did not answer the embedding request within {} ms, the time this \
                     invocation had left before its deadline less {} ms for the search; the \
                     call was abandoned (vector and productId queries are unaffected)",
                        budget.as_millis(),
                        DEADLINE_MARGIN.as_millis()
                    ),
                ))
            })
    }

    fn hit(&self, h: &Hit) -> Value {
        let payload: Map<String, Value> = self
            .engine
            .catalog()
            .payload(h.row)
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_owned(),
                    serde_json::to_value(value).unwrap_or(Value::Null),
                )
            })
            .collect();
        json!({
            "id": &*h.id,
            "category": &*h.category,
            "score": h.score,
            "payload": payload,
        })
    }

    fn record_error(&self, e: &ApiError, request_id: &str) {
        if e.is_client_error() {
            tracing::info!(
                errorType = e.error_type,
                status = e.status,
                field = e.field.as_deref(),
                message = %e.message,
                detail = e.detail.as_deref(),
                "request refused"
            );
        } else {
            tracing::error!(
                errorType = e.error_type,
                status = e.status,
                message = %e.message,
                detail = e.detail.as_deref(),
                "request failed"
            );
        }
        self.emf
            .emit(&self.emf.error_line(request_id, e.error_type, e.status));
    }
}

/// Maps the engine's refusals (most are caught earlier by the request checks) to API errors.
fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Dimension { .. } | QueryError::ZeroVector => {
            ApiError::invalid("vector", e.to_string())
        }
        QueryError::NonFinite { index } => {
            ApiError::invalid(format!("vector[{index}]"), e.to_string())
        }
        QueryError::UnknownId(_) => ApiError::client(
            404,
            "UnknownProduct",
            Some("productId".into()),
            e.to_string(),
        ),
        QueryError::TopK { .. } => ApiError::invalid("topK", e.to_string()),
        QueryError::MinScore => ApiError::invalid("minScore", e.to_string()),
        QueryError::EngineStopped => ApiError::server(
            503,
            "EngineStopped",
            "the search engine of this execution environment has stopped; it is being \
             replaced: retry",
        ),
        QueryError::SearchFailed => ApiError::server(
            500,
            "SearchFailed",
            "the search failed; this execution environment is being replaced: retry",
        ),
        QueryError::DeadlineExceeded => deadline_exceeded(),
        other => {
            ApiError::server(500, "Internal", "the search failed").with_detail(other.to_string())
        }
    }
}

/// When an answer must be ready: `deadline` less [`ANSWER_MARGIN`].
fn answer_by(deadline: Instant) -> Instant {
    deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline)
}

/// The invocation ran out of time (its deadline less [`ANSWER_MARGIN`]).
fn deadline_exceeded() -> ApiError {
    ApiError::server(
        504,
        "DeadlineExceeded",
        "the invocation reached its deadline before the answer was ready: raise the \
         function's timeout, or retry",
    )
}

/// `value` when its JSON fits in a Lambda response, else the error that says how to ask for
/// less.
fn fits(value: Value) -> Result<Value, ApiError> {
    let size = encoded_len(&value);
    if size <= MAX_RESPONSE_BYTES {
        return Ok(value);
    }
    Err(ApiError::client(
        413,
        "ResponseTooLarge",
        Some("topK".into()),
        format!(
            "the answer would be {size} bytes, over Lambda's {MAX_RESPONSE_BYTES}-byte (6 MB) \
             response limit: ask for fewer results (a smaller topK) or keep large payload \
             columns out of the catalog"
        ),
    ))
}

/// The length of `value`'s JSON, without building it.
fn encoded_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a writer that cannot fail does not fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}
