//! Query embeddings from Amazon Bedrock: Amazon Nova Multimodal Embeddings through
//! `InvokeModel`, with the request and response shapes AWS documents for the synchronous API
//! (`schemaVersion` `nova-multimodal-embed-v1`, `taskType` `SINGLE_EMBEDDING`).
//!
//! Timeouts and retries live in the client ([`client`]): a per-attempt timeout, the SDK's
//! standard retry strategy (throttling and 5xx with jittered exponential backoff). What still
//! fails is mapped to an [`ApiError`] the caller can act on.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
use aws_sdk_bedrockruntime::primitives::Blob;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::BedrockSettings;
use crate::request::{ApiError, ImageFormat};

/// Nova's `embeddingPurpose` for queries against a catalog indexed with `GENERIC_INDEX`.
pub const QUERY_PURPOSE: &str = "GENERIC_RETRIEVAL";

/// What to embed.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Text (at most [`crate::request::MAX_TEXT_CHARS`] characters).
    Text(&'a str),
    /// An image as standard base64.
    Image {
        /// The image bytes, base64.
        base64: &'a str,
        /// Its format.
        format: ImageFormat,
    },
}

impl Input<'_> {
    fn field(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Image { .. } => "image",
        }
    }
}

/// The Bedrock runtime client for embeddings: built once per execution environment.
pub fn client(sdk: &SdkConfig, settings: &BedrockSettings) -> aws_sdk_bedrockruntime::Client {
    let config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(settings.attempt_timeout)
                .build(),
        )
        .build();
    aws_sdk_bedrockruntime::Client::from_conf(config)
}

/// The InvokeModel body for one query embedding.
pub fn request_body(input: Input<'_>, dimensions: usize) -> Value {
    let mut params = json!({
        "embeddingPurpose": QUERY_PURPOSE,
        "embeddingDimension": dimensions,
    });
    let (key, value) = match input {
        Input::Text(text) => ("text", json!({ "truncationMode": "END", "value": text })),
        Input::Image { base64, format } => (
            "image",
            json!({
                "detailLevel": "STANDARD_IMAGE",
                "format": format.as_str(),
                "source": { "bytes": base64 },
            }),
        ),
    };
    if let Some(map) = params.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
    json!({
        "schemaVersion": "nova-multimodal-embed-v1",
        "taskType": "SINGLE_EMBEDDING",
        "singleEmbeddingParams": params,
    })
}

#[derive(Deserialize)]
struct Response {
    embeddings: Vec<Embedding>,
}

#[derive(Deserialize)]
struct Embedding {
    embedding: Vec<f32>,
}

/// Reads the embedding out of an InvokeModel response body and checks it.
pub fn parse_response(body: &[u8], dimensions: usize) -> Result<Vec<f32>, ApiError> {
    let invalid = |what: String| {
        ApiError::server(
            502,
            "EmbeddingInvalidResponse",
            "Bedrock returned an unusable embedding response",
        )
        .with_detail(what)
    };
    let response: Response = serde_json::from_slice(body).map_err(|e| invalid(format!("{e}")))?;
    let Some(first) = response.embeddings.into_iter().next() else {
        return Err(invalid("no embeddings".into()));
    };
    let v = first.embedding;
    if v.len() != dimensions {
        return Err(invalid(format!(
            "the embedding has {} values, LMI_EMBEDDING_DIMENSIONS is {dimensions}",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) || v.iter().all(|&x| x == 0.0) {
        return Err(invalid("the embedding is not finite or all zeros".into()));
    }
    Ok(v)
}

/// Embeds one query.
pub async fn embed(
    client: &aws_sdk_bedrockruntime::Client,
    model_id: &str,
    dimensions: usize,
    input: Input<'_>,
) -> Result<Vec<f32>, ApiError> {
    let body = serde_json::to_vec(&request_body(input, dimensions)).map_err(|e| {
        ApiError::server(
            500,
            "Internal",
            "the embedding request could not be encoded",
        )
        .with_detail(e.to_string())
    })?;
    let output = client
        .invoke_model()
        .model_id(model_id)
        .content_type("application/json")
        .accept("application/json")
        .body(Blob::new(body))
        .send()
        .await
        .map_err(|e| map_error(e, input.field(), model_id))?;
    parse_response(output.body().as_ref(), dimensions)
}

/// The caller's error for a failed InvokeModel: the handler's own words and what to do; what
/// Bedrock or the transport said (role ARNs, hosts, addresses) is only the log's detail.
fn map_error<R: std::fmt::Debug>(
    err: SdkError<InvokeModelError, R>,
    field: &'static str,
    model_id: &str,
) -> ApiError {
    let service = match err {
        SdkError::ServiceError(ctx) => ctx.into_err(),
        SdkError::TimeoutError(_) => {
            return ApiError::server(
                504,
                "EmbeddingTimeout",
                "Bedrock did not answer the embedding request in time",
            );
        }
        other => {
            return ApiError::server(
                502,
                "EmbeddingUnavailable",
                "Bedrock could not be reached for the embedding request",
            )
            .with_detail(error_chain(&other));
        }
    };
    let detail = format!(
        "model {model_id}: {}: {}",
        code_of(&service),
        service.meta().message().unwrap_or("no message")
    );
    let error = match service {
        // The model refused the input itself (undecodable image, bad text).
        InvokeModelError::ValidationException(_) => ApiError::client(
            400,
            "EmbeddingInputRejected",
            Some(field.into()),
            format!(
                "the embedding model refused the {field} (for example an image it cannot decode)"
            ),
        ),
        InvokeModelError::ThrottlingException(_)
        | InvokeModelError::ServiceQuotaExceededException(_) => ApiError::server(
            429,
            "EmbeddingThrottled",
            "Bedrock is throttling embedding requests (retries exhausted): retry with backoff",
        ),
        InvokeModelError::AccessDeniedException(_) => ApiError::server(
            502,
            "EmbeddingAccessDenied",
            "the function may not invoke its embedding model (bedrock:InvokeModel on the \
             function's execution role, or model access in the Bedrock console)",
        ),
        InvokeModelError::ResourceNotFoundException(_) => ApiError::server(
            502,
            "EmbeddingModelNotFound",
            "the function's embedding model was not found or is not enabled in this region",
        ),
        InvokeModelError::ModelTimeoutException(_) => {
            ApiError::server(504, "EmbeddingTimeout", "the embedding model timed out")
        }
        InvokeModelError::ModelNotReadyException(_)
        | InvokeModelError::ServiceUnavailableException(_) => ApiError::server(
            503,
            "EmbeddingUnavailable",
            "the embedding model is unavailable: retry with backoff",
        ),
        _ => ApiError::server(
            502,
            "EmbeddingFailed",
            "Bedrock failed the embedding request",
        ),
    };
    error.with_detail(detail)
}

fn code_of(e: &InvokeModelError) -> String {
    use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
    e.code().unwrap_or("unknown error").to_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_requests_follow_the_documented_nova_shape() {
        assert_eq!(
            request_body(Input::Text("red shoes"), 1024),
            json!({
                "schemaVersion": "nova-multimodal-embed-v1",
                "taskType": "SINGLE_EMBEDDING",
                "singleEmbeddingParams": {
                    "embeddingPurpose": "GENERIC_RETRIEVAL",
                    "embeddingDimension": 1024,
                    "text": {"truncationMode": "END", "value": "red shoes"}
                }
            })
        );
    }

    #[test]
    fn image_requests_carry_format_and_inline_bytes() {
        let body = request_body(
            Input::Image {
                base64: "AAAA",
                format: ImageFormat::Jpeg,
            },
            256,
        );
        assert_eq!(
            body["singleEmbeddingParams"]["image"],
            json!({"detailLevel": "STANDARD_IMAGE", "format": "jpeg", "source": {"bytes": "AAAA"}})
        );
        assert_eq!(body["singleEmbeddingParams"]["embeddingDimension"], 256);
    }

    #[test]
    fn responses_are_read_and_checked() {
        let ok = br#"{"embeddings":[{"embeddingType":"TEXT","embedding":[0.5,-0.5,1.0]}]}"#;
        assert_eq!(parse_response(ok, 3).expect("valid"), vec![0.5, -0.5, 1.0]);
        for bad in [
            &br#"{"embeddings":[]}"#[..],
            br#"{"embeddings":[{"embedding":[1.0,2.0]}]}"#,
            br#"{"embeddings":[{"embedding":[0.0,0.0,0.0]}]}"#,
            br#"not json"#,
        ] {
            let e = parse_response(bad, 3).expect_err("unusable");
            assert_eq!((e.status, e.error_type), (502, "EmbeddingInvalidResponse"));
        }
    }
}
