//! One error type for every AWS call, classified so the controllers know whether to back off
//! and retry, or to report a terminal problem and wait for the spec to change.

use std::error::Error as StdError;
use std::fmt::Debug;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;

/// What a controller should do about an AWS error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (throttling, 5xx, network, conflicting update in progress): back off with
    /// jitter and retry.
    Retryable,
    /// The request can never succeed as it is (invalid input, access denied, limit): report it
    /// in a condition and retry slowly or on the next spec change.
    Terminal,
    /// The resource does not exist (callers usually handle this as "absent").
    NotFound,
}

/// An AWS call failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct AwsError {
    /// The AWS operation, e.g. `CreateCapacityProvider`.
    pub operation: &'static str,
    /// The AWS error code, e.g. `ResourceConflictException`.
    pub code: Option<String>,
    /// The message AWS returned (or a description of the transport failure).
    pub message: String,
    /// How to handle it.
    pub class: ErrorClass,
    reason: &'static str,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl AwsError {
    /// Classifies an SDK error.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (code, message) = match &err {
            SdkError::ServiceError(service) => (
                service.err().code().map(str::to_owned),
                service
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| service.err().to_string()),
            ),
            other => (None, describe_transport(other)),
        };
        let (class, reason) = classify(code.as_deref(), status, &err);
        Self {
            operation,
            code,
            message,
            class,
            reason,
            source: Some(Box::new(err)),
        }
    }

    /// An error the operator raises itself about an AWS response (for example a required field
    /// missing from it).
    pub fn unexpected(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            code: None,
            message: message.into(),
            class: ErrorClass::Retryable,
            reason: "AwsUnexpectedResponse",
            source: None,
        }
    }

    /// A bounded reason for events and metric labels.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.class == ErrorClass::NotFound
    }

    /// Whether AWS reported a conflict with the resource's current state.
    pub fn is_conflict(&self) -> bool {
        self.reason == "Conflict"
    }
}

fn describe_transport<E: Debug>(err: &SdkError<E, Response>) -> String {
    match err {
        SdkError::TimeoutError(_) => "request timed out".to_owned(),
        SdkError::DispatchFailure(f) => format!("could not reach AWS: {f:?}"),
        SdkError::ResponseError(_) => "AWS sent a response the SDK could not read".to_owned(),
        SdkError::ConstructionFailure(_) => "the SDK could not build the request".to_owned(),
        other => format!("{other:?}"),
    }
}

fn classify<E>(
    code: Option<&str>,
    status: Option<u16>,
    err: &SdkError<E, Response>,
) -> (ErrorClass, &'static str) {
    if code.unwrap_or_default().is_empty()
        && status.is_none()
        && matches!(err, SdkError::ConstructionFailure(_))
    {
        return (ErrorClass::Terminal, "InvalidRequest");
    }
    classify_response(code, status)
}

/// Classifies an AWS error by its error code and HTTP status alone (`None` when no response
/// came back). Shared with the AWS call metrics, which see responses, not typed errors.
pub(crate) fn classify_response(
    code: Option<&str>,
    status: Option<u16>,
) -> (ErrorClass, &'static str) {
    use ErrorClass::*;
    match code.unwrap_or_default() {
        "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "Throttling"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "EC2ThrottledException" => (Retryable, "Throttled"),
        "ServiceException"
        | "InternalError"
        | "InternalFailure"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "Unavailable" => (Retryable, "AwsServerError"),
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "AuthFailure"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch" => (Terminal, "AccessDenied"),
        "ResourceNotFoundException" | "NotFound" => (NotFound, "NotFound"),
        c if c.ends_with(".NotFound") || c.ends_with(".Malformed") && c.contains("Id") => {
            (NotFound, "NotFound")
        }
        "ResourceConflictException"
        // PublishVersion's CodeSha256 / RevisionId guard: `$LATEST` changed since it was read.
        | "PreconditionFailedException"
        | "ResourceInUseException"
        | "DependencyViolation"
        | "IncorrectState"
        | "IncorrectInstanceState" => (Retryable, "Conflict"),
        "InvalidParameterValueException"
        | "ValidationException"
        | "InvalidParameterValue"
        | "InvalidParameter"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidRequestContentException"
        | "InvalidRequest" => (Terminal, "InvalidRequest"),
        c if c.ends_with("LimitExceeded") || c.ends_with("LimitExceededException") => {
            (Terminal, "LimitExceeded")
        }
        "" => match status {
            Some(429) => (Retryable, "Throttled"),
            Some(s) if s >= 500 => (Retryable, "AwsServerError"),
            Some(403) => (Terminal, "AccessDenied"),
            Some(404) => (NotFound, "NotFound"),
            _ => (Retryable, "AwsUnreachable"),
        },
        _ => match status {
            Some(s) if s >= 500 => (Retryable, "AwsServerError"),
            Some(429) => (Retryable, "Throttled"),
            _ => (Terminal, "AwsError"),
        },
    }
}

/// Every reason [`AwsError::reason`] can return, for documentation and tests.
pub const REASONS: &[&str] = &[
    "Throttled",
    "AwsServerError",
    "AwsUnreachable",
    "AccessDenied",
    "NotFound",
    "Conflict",
    "InvalidRequest",
    "LimitExceeded",
    "AwsError",
    "AwsUnexpectedResponse",
];
