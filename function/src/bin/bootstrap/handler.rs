//! One invocation: read the event (direct JSON or an HTTP event), check the request, embed it
//! if it is text or an image, search, and answer with ranked hits, the model and timings.
//!
//! Errors: the caller's mistakes (4xx) are answered as an error object — in the HTTP response
//! with its status for HTTP events, as the invocation's result for direct invocations (so they
//! are not function errors: nothing retries them and they don't count as function failures).
//! Our own or Bedrock's failures (5xx) become function errors for direct invocations (Lambda
//! reports them, async invocations retry) and 5xx responses for HTTP events.

use std::sync::Arc;
use std::time::Instant;

use lambda_runtime::{Diagnostic, LambdaEvent};
use lmi_similarity::{Engine, Hit, Query, QueryError};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::config::Config;
use crate::embed::{self, Input};
use crate::http;
use crate::metrics::{Emf, QueryMetrics};
use crate::request::{self, ApiError, Prepared, Subject};

/// A function error: a 5xx-class failure of a direct invocation, reported to Lambda with its
/// `errorType`.
#[derive(Debug)]
pub struct FunctionError(pub ApiError);

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.0.error_type.to_owned(),
            error_message: e.0.message,
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
    config: Config,
    emf: Emf,
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
                config,
                emf,
            }),
        }
    }

    /// Answers one invocation.
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Value, FunctionError> {
        let (payload, context) = event.into_parts();
        let span = tracing::info_span!(
            "invocation",
            requestId = %context.request_id,
            functionVersion = %self.inner.config.function.version,
        );
        self.inner
            .handle(payload, &context.request_id)
            .instrument(span)
            .await
    }
}

impl Inner {
    async fn handle(&self, payload: Value, request_id: &str) -> Result<Value, FunctionError> {
        let started = Instant::now();
        let catalog = self.engine.catalog();
        let max_top_k = self.config.max_top_k;
        if let Some(req) = http::detect(&payload) {
            let result = if req.method != "POST" {
                Err(ApiError::client(
                    405,
                    "MethodNotAllowed",
                    None,
                    format!(
                        "method {} is not allowed: send the query with POST",
                        req.method
                    ),
                ))
            } else {
                match req.body {
                    Ok(body) if body.trim().is_empty() => Err(ApiError::client(
                        400,
                        "MissingQuery",
                        None,
                        "the request body is empty: send the query as JSON",
                    )),
                    Ok(body) => request::parse_text(&body, catalog, max_top_k),
                    Err(e) => Err(e),
                }
            };
            let answer = match result {
                Ok(prepared) => self.answer(prepared, started, request_id).await,
                Err(e) => Err(e),
            };
            return Ok(match answer {
                Ok(body) => http::response(200, &body),
                Err(e) => {
                    self.record_error(&e, request_id);
                    http::response(e.status, &e.body())
                }
            });
        }

        let answer = match request::parse_value(&payload, catalog, max_top_k) {
            Ok(prepared) => self.answer(prepared, started, request_id).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(body) => Ok(body),
            Err(e) => {
                self.record_error(&e, request_id);
                if e.is_client_error() {
                    Ok(e.body())
                } else {
                    Err(FunctionError(e))
                }
            }
        }
    }

    async fn answer(
        &self,
        prepared: Prepared,
        started: Instant,
        request_id: &str,
    ) -> Result<Value, ApiError> {
        let kind = prepared.subject.kind();
        let dims = self.config.dimensions;
        let (target, model, embed_ms) = match &prepared.subject {
            Subject::Text(text) => {
                let t = Instant::now();
                let model = self.model("text")?;
                let v = self.embed(model, Input::Text(text), dims).await?;
                (Query::by_vector(v), Some(model), Some(ms(t)))
            }
            Subject::Image { base64, format } => {
                let t = Instant::now();
                let input = Input::Image {
                    base64,
                    format: *format,
                };
                let model = self.model("image")?;
                let v = self.embed(model, input, dims).await?;
                (Query::by_vector(v), Some(model), Some(ms(t)))
            }
            Subject::Vector(v) => (Query::by_vector(v.clone()), None, None),
            Subject::Product(id) => (Query::by_id(id.clone()), None, None),
        };
        let searched = Instant::now();
        let (hits, pass) = self
            .engine
            .search_with_pass(prepared.query(target))
            .await
            .map_err(query_error)?;
        let search_ms = ms(searched);
        let scan_rows = prepared.scan_rows(self.engine.catalog());
        let total_ms = ms(started);

        let results: Vec<Value> = hits.iter().map(|h| self.hit(h)).collect();
        let response = json!({
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
        });
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

    async fn embed(
        &self,
        model: &str,
        input: Input<'_>,
        dims: usize,
    ) -> Result<Vec<f32>, ApiError> {
        embed::embed(&self.bedrock, model, dims, input).await
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
                "request refused"
            );
        } else {
            tracing::error!(
                errorType = e.error_type,
                status = e.status,
                message = %e.message,
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
        QueryError::EngineStopped => ApiError::server(503, "EngineStopped", e.to_string()),
        other => ApiError::server(500, "Internal", other.to_string()),
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}
