//! A local stand-in for Bedrock Runtime's `InvokeModel` that serves Amazon Nova Multimodal
//! Embeddings: it checks each request body against the documented synchronous request schema
//! (refusing anything else with a `ValidationException`, as Bedrock does), answers with the
//! documented response shape, and can be told to fail the next calls (throttling, access
//! denied, ...) to exercise retries and error mapping.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A scripted failure: HTTP status and the `x-amzn-ErrorType` code.
#[derive(Clone, Debug)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// Error code, e.g. `ThrottlingException`.
    pub code: &'static str,
}

/// One request the stub received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The model id from the path (percent-decoded).
    pub model_id: String,
    /// The JSON body.
    pub body: Value,
    /// What the stub answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// Embedding per text value.
    texts: HashMap<String, Vec<f32>>,
    /// Embedding per image (by its base64).
    images: HashMap<String, Vec<f32>>,
    failures: VecDeque<Failure>,
    received: Vec<Received>,
    /// Record requests and never answer them.
    hang: bool,
}

/// The stub, listening on 127.0.0.1 until dropped.
pub struct BedrockStub {
    addr: SocketAddr,
    dimension: usize,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for BedrockStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl BedrockStub {
    /// Starts a stub that expects `embeddingDimension` = `dimension`.
    pub async fn start(dimension: usize) -> BedrockStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let served = Arc::clone(&state);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&state), dimension, req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        BedrockStub {
            addr,
            dimension,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:port`, for `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `text` with `vector`.
    pub fn text(&self, text: &str, vector: Vec<f32>) {
        assert_eq!(vector.len(), self.dimension);
        lock(&self.state).texts.insert(text.to_owned(), vector);
    }

    /// Answers the image whose base64 is `base64` with `vector`.
    pub fn image(&self, base64: &str, vector: Vec<f32>) {
        assert_eq!(vector.len(), self.dimension);
        lock(&self.state).images.insert(base64.to_owned(), vector);
    }

    /// Fails the next requests, in order.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        lock(&self.state).failures.extend(failures);
    }

    /// From now on, records each request and never answers it (`false`: answers again).
    pub fn hang(&self, hang: bool) {
        lock(&self.state).hang = hang;
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn answer(status: u16, code: Option<&str>, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(code) = code
        && let Ok(v) = hyper::header::HeaderValue::from_str(code)
    {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

async fn handle(
    state: Arc<Mutex<State>>,
    dimension: usize,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let signed = req.headers().contains_key("authorization");
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let model_id = path
        .strip_prefix("/model/")
        .and_then(|p| p.strip_suffix("/invoke"))
        .map(percent_decode)
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);

    let hung = {
        let mut s = lock(&state);
        if s.hang {
            s.received.push(Received {
                model_id: model_id.clone(),
                body: body.clone(),
                status: 0,
            });
        }
        s.hang
    };
    if hung {
        return std::future::pending().await;
    }
    let response = {
        let mut s = lock(&state);
        let outcome = if model_id.is_empty() {
            (
                404,
                answer(
                    404,
                    Some("UnknownOperationException"),
                    json!({"message": "unknown path"}),
                ),
            )
        } else if !signed {
            (
                403,
                answer(
                    403,
                    Some("AccessDeniedException"),
                    json!({"message": "request is not signed"}),
                ),
            )
        } else if let Some(f) = s.failures.pop_front() {
            (
                f.status,
                answer(
                    f.status,
                    Some(f.code),
                    json!({"message": scripted_message(f.code)}),
                ),
            )
        } else {
            match check(&body, &content_type, dimension).and_then(|input| lookup(&s, &input)) {
                Ok((kind, vector)) => (
                    200,
                    answer(
                        200,
                        None,
                        json!({"embeddings": [{"embeddingType": kind, "embedding": vector}]}),
                    ),
                ),
                Err(message) => (
                    400,
                    answer(
                        400,
                        Some("ValidationException"),
                        json!({"message": message}),
                    ),
                ),
            }
        };
        s.received.push(Received {
            model_id: model_id.clone(),
            body,
            status: outcome.0,
        });
        outcome.1
    };
    Ok(response)
}

enum InputKey {
    Text(String),
    Image(String),
}

fn lookup(s: &State, input: &InputKey) -> Result<(&'static str, Vec<f32>), String> {
    match input {
        InputKey::Text(t) => s
            .texts
            .get(t)
            .map(|v| ("TEXT", v.clone()))
            .ok_or_else(|| format!("stub has no embedding for text '{t}'")),
        InputKey::Image(b) => s
            .images
            .get(b)
            .map(|v| ("IMAGE", v.clone()))
            .ok_or_else(|| "stub has no embedding for this image".to_owned()),
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn only_keys(v: &Value, allowed: &[&str], at: &str) -> Result<(), String> {
    if !v.is_object() {
        return Err(format!("{at} must be an object"));
    }
    match keys(v).into_iter().find(|k| !allowed.contains(k)) {
        Some(k) => Err(format!("{at} has unexpected key '{k}'")),
        None => Ok(()),
    }
}

fn one_of(v: &Value, allowed: &[&str], at: &str) -> Result<(), String> {
    match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        _ => Err(format!("{at} must be one of {allowed:?}, got {v}")),
    }
}

/// Checks the body against the documented synchronous schema.
fn check(body: &Value, content_type: &str, dimension: usize) -> Result<InputKey, String> {
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "content-type '{content_type}' is not application/json"
        ));
    }
    only_keys(
        body,
        &["schemaVersion", "taskType", "singleEmbeddingParams"],
        "body",
    )?;
    if let Some(v) = body.get("schemaVersion") {
        one_of(v, &["nova-multimodal-embed-v1"], "schemaVersion")?;
    }
    one_of(&body["taskType"], &["SINGLE_EMBEDDING"], "taskType")?;
    let params = &body["singleEmbeddingParams"];
    only_keys(
        params,
        &[
            "embeddingPurpose",
            "embeddingDimension",
            "text",
            "image",
            "audio",
            "video",
        ],
        "singleEmbeddingParams",
    )?;
    one_of(
        &params["embeddingPurpose"],
        &[
            "GENERIC_INDEX",
            "GENERIC_RETRIEVAL",
            "TEXT_RETRIEVAL",
            "IMAGE_RETRIEVAL",
            "VIDEO_RETRIEVAL",
            "DOCUMENT_RETRIEVAL",
            "AUDIO_RETRIEVAL",
            "CLASSIFICATION",
            "CLUSTERING",
        ],
        "embeddingPurpose",
    )?;
    match params["embeddingDimension"].as_u64() {
        Some(d) if [256, 384, 1024, 3072].contains(&d) && d as usize == dimension => {}
        _ => {
            return Err(format!(
                "embeddingDimension must be {dimension} (one of 256, 384, 1024, 3072), got {}",
                params["embeddingDimension"]
            ));
        }
    }
    let inputs: Vec<&str> = ["text", "image", "audio", "video"]
        .into_iter()
        .filter(|k| params.get(*k).is_some())
        .collect();
    if inputs.len() != 1 {
        return Err(format!("exactly one input is required, got {inputs:?}"));
    }
    match inputs[0] {
        "text" => {
            let text = &params["text"];
            only_keys(text, &["truncationMode", "value", "source"], "text")?;
            one_of(
                &text["truncationMode"],
                &["START", "END", "NONE"],
                "text.truncationMode",
            )?;
            match text["value"].as_str() {
                Some(v) if !v.is_empty() => Ok(InputKey::Text(v.to_owned())),
                _ => Err("text.value must be a non-empty string".into()),
            }
        }
        "image" => {
            let image = &params["image"];
            only_keys(image, &["detailLevel", "format", "source"], "image")?;
            if let Some(d) = image.get("detailLevel") {
                one_of(
                    d,
                    &["STANDARD_IMAGE", "DOCUMENT_IMAGE"],
                    "image.detailLevel",
                )?;
            }
            one_of(
                &image["format"],
                &["png", "jpeg", "gif", "webp"],
                "image.format",
            )?;
            only_keys(&image["source"], &["bytes", "s3Location"], "image.source")?;
            let b64 = image["source"]["bytes"]
                .as_str()
                .ok_or("image.source.bytes must be a base64 string")?;
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("image.source.bytes is not base64: {e}"))?;
            Ok(InputKey::Image(b64.to_owned()))
        }
        other => Err(format!("the stub does not embed {other}")),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The message a scripted failure carries: for access denied, the shape Bedrock really answers
/// (it names the caller's role, which must never reach the function's caller).
fn scripted_message(code: &str) -> String {
    if code == "AccessDeniedException" {
        format!("User: {ROLE_ARN} is not authorized to perform: bedrock:InvokeModel")
    } else {
        format!("scripted {code}")
    }
}

/// The role ARN a scripted access denial names.
pub const ROLE_ARN: &str = "arn:aws:sts::123456789012:assumed-role/similar-exec/similar";
