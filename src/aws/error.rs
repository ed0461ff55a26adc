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
        let (class, reason) = match code.as_deref() {
            None | Some("") => classify_transport(status, &err),
            Some(code) => classify_code(code, &message, status),
        };
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

    /// Whether AWS refused a new function version: the capacity provider holds as many as AWS
    /// allows.
    pub fn is_version_limit(&self) -> bool {
        self.code.as_deref() == Some("FunctionVersionsPerCapacityProviderLimitExceededException")
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

/// Classifies a failed response by its error code and HTTP status alone, for the AWS call
/// metrics, which see responses, not typed errors (nor the message some codes need: a
/// publish refused for a changed CodeSHA256 counts as `InvalidRequest` there).
pub(crate) fn classify_response(code: Option<&str>, status: u16) -> (ErrorClass, &'static str) {
    match code {
        None | Some("") => {
            classify_status(Some(status)).unwrap_or((ErrorClass::Terminal, "AwsError"))
        }
        Some(code) => classify_code(code, "", Some(status)),
    }
}

/// What an HTTP status alone says of an error without an AWS error code.
fn classify_status(status: Option<u16>) -> Option<(ErrorClass, &'static str)> {
    use ErrorClass::*;
    match status? {
        429 => Some((Retryable, "Throttled")),
        s if s >= 500 => Some((Retryable, "AwsServerError")),
        403 => Some((Terminal, "AccessDenied")),
        404 => Some((NotFound, "NotFound")),
        _ => None,
    }
}

/// An error without an AWS error code: by HTTP status, or what kept the request from AWS.
fn classify_transport<E>(
    status: Option<u16>,
    err: &SdkError<E, Response>,
) -> (ErrorClass, &'static str) {
    use ErrorClass::*;
    if let Some(class) = classify_status(status) {
        return class;
    }
    match err {
        SdkError::ConstructionFailure(_) => (Terminal, "InvalidRequest"),
        _ => (Retryable, "AwsUnreachable"),
    }
}

/// An error by its AWS error code (and, where one code covers different situations, its
/// message).
fn classify_code(code: &str, message: &str, status: Option<u16>) -> (ErrorClass, &'static str) {
    use ErrorClass::*;
    match code {
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
        | "UnrecognizedClientException" => (Terminal, "AccessDenied"),
        // Credentials that expired (a web identity or Pod Identity token refreshed late) or a
        // signature refused for a clock that stepped: the credential chain fetches new ones and
        // the clock settles, so they are retried with backoff, not reported as a denial that
        // needs a human.
        "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException" => (Retryable, CREDENTIALS_EXPIRED),
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
        // PublishVersion's CodeSha256 guard answers with this code, not a precondition failure:
        // the code of `$LATEST` changed since it was read (someone else updated it). Reading
        // again and retrying resolves it; it is no invalid input.
        "InvalidParameterValueException"
            if message.contains("is different from current CodeSHA256") =>
        {
            (Retryable, "Conflict")
        }
        // IAM is eventually consistent: a role created moments ago may not be assumable by
        // Lambda yet ("The role defined for the function cannot be assumed by Lambda"; Terraform
        // retries it for up to two minutes). Retried with backoff a bounded number of times
        // (`IAM_PROPAGATION_ATTEMPTS`), then slowly: by then the role is wrong, not new.
        "InvalidParameterValueException" if message.contains("cannot be assumed") => {
            (Retryable, ROLE_NOT_ASSUMABLE_YET)
        }
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
        _ => match status {
            Some(s) if s >= 500 => (Retryable, "AwsServerError"),
            Some(429) => (Retryable, "Throttled"),
            _ => (Terminal, "AwsError"),
        },
    }
}

/// Reason of an error that says the operator's credentials expired or its signature was refused.
pub const CREDENTIALS_EXPIRED: &str = "CredentialsExpired";

/// Reason of an error that says a role is not assumable, which IAM propagation explains for a
/// while after the role was created.
pub const ROLE_NOT_ASSUMABLE_YET: &str = "RoleNotAssumableYet";

/// Fast retries of [`ROLE_NOT_ASSUMABLE_YET`] before the slow retry: with the default backoff
/// (1 s doubling) about two minutes, the time Terraform allows IAM to propagate.
pub const IAM_PROPAGATION_ATTEMPTS: u32 = 7;

/// Every reason [`AwsError::reason`] can return, for documentation and tests.
pub const REASONS: &[&str] = &[
    ROLE_NOT_ASSUMABLE_YET,
    CREDENTIALS_EXPIRED,
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

/// Errors for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Lambda's answer to a role IAM has not propagated yet.
    pub fn role_not_assumable() -> AwsError {
        let message = "The role defined for the function cannot be assumed by Lambda.";
        let (class, reason) = classify_code("InvalidParameterValueException", message, Some(400));
        AwsError {
            operation: "CreateFunction",
            code: Some("InvalidParameterValueException".into()),
            message: message.into(),
            class,
            reason,
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_whose_code_changed_since_it_was_read_is_a_conflict_to_retry() {
        let message = "CodeSHA256 (AAAA) is different from current CodeSHA256 in $LATEST (BBBB). \
                       Please try again with the CodeSHA256 in $LATEST.";
        assert_eq!(
            classify_code("InvalidParameterValueException", message, Some(400)),
            (ErrorClass::Retryable, "Conflict")
        );
        assert_eq!(
            classify_code("PreconditionFailedException", "stale revision", Some(412)),
            (ErrorClass::Retryable, "Conflict")
        );
        assert_eq!(
            classify_code(
                "InvalidParameterValueException",
                "MemorySize too big",
                Some(400)
            ),
            (ErrorClass::Terminal, "InvalidRequest")
        );
    }

    #[test]
    fn unknown_codes_are_classified_by_status() {
        assert_eq!(
            classify_code("Mystery", "", Some(503)),
            (ErrorClass::Retryable, "AwsServerError")
        );
        assert_eq!(
            classify_code("Mystery", "", Some(400)),
            (ErrorClass::Terminal, "AwsError")
        );
    }
}
