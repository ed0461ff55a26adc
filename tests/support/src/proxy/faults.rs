//! What the proxy can do to a request, and the error responses it answers with, in each
//! service's own wire format so the SDK classifies them as it would real ones.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// A fault injected instead of forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Throttling: Lambda `TooManyRequestsException` (429), EC2 `RequestLimitExceeded` (503),
    /// other query services `Throttling` (400).
    Throttle,
    /// HTTP 500: Lambda `ServiceException`, EC2 `InternalError`.
    InternalError,
    /// HTTP 503: `ServiceUnavailable`.
    Unavailable,
    /// The TCP connection is reset (RST) before any response.
    ConnectionReset,
    /// The request is read and never answered, nor forwarded: the connection stays open until
    /// the client gives up (a stalled AWS endpoint).
    Stall,
    /// The caller's credentials expired (HTTP 403): Lambda `ExpiredTokenException`, EC2
    /// `RequestExpired`, other query services `ExpiredToken`.
    ExpiredToken,
    /// The request is forwarded (AWS acts on it) and the connection is reset before the answer
    /// reaches the client: a retry must not do the work twice.
    LostResponse,
}

/// How often each fault hits, with a seed so a run can be repeated. Shares are fractions of
/// the matching requests (their sum at most 1); `latency` is added to every request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    pub throttle: f64,
    pub internal_error: f64,
    pub unavailable: f64,
    pub connection_reset: f64,
    pub latency: Duration,
    /// Operation names (e.g. `CreateCapacityProvider`) the faults are limited to; empty: all.
    pub operations: Vec<String>,
}

impl FaultPlan {
    /// No faults, no latency.
    pub fn none() -> Self {
        FaultPlan::default()
    }

    /// A plan drawing from a generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        FaultPlan {
            seed,
            ..FaultPlan::default()
        }
    }

    pub fn throttle(mut self, share: f64) -> Self {
        self.throttle = share;
        self
    }

    pub fn internal_error(mut self, share: f64) -> Self {
        self.internal_error = share;
        self
    }

    pub fn unavailable(mut self, share: f64) -> Self {
        self.unavailable = share;
        self
    }

    pub fn connection_reset(mut self, share: f64) -> Self {
        self.connection_reset = share;
        self
    }

    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Limits the faults (not the latency) to these operations.
    pub fn only<I, S>(mut self, operations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.operations = operations.into_iter().map(Into::into).collect();
        self
    }

    pub(crate) fn applies_to(&self, operation: &str) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == operation)
    }

    /// The fault for a uniform draw in `[0, 1)`, by cumulative shares.
    pub(crate) fn pick(&self, draw: f64) -> Option<Fault> {
        let shares = [
            (self.throttle, Fault::Throttle),
            (self.internal_error, Fault::InternalError),
            (self.unavailable, Fault::Unavailable),
            (self.connection_reset, Fault::ConnectionReset),
        ];
        let mut bound = 0.0;
        for (share, fault) in shares {
            bound += share;
            if draw < bound {
                return Some(fault);
            }
        }
        None
    }
}

/// The error response for `fault` (not [`Fault::ConnectionReset`], [`Fault::Stall`] nor
/// [`Fault::LostResponse`], which have none) in the format of `service`.
pub(crate) fn error_response(service: &str, fault: Fault) -> Response<Full<Bytes>> {
    match service {
        "lambda" => lambda_error(fault),
        "ec2" => ec2_error(fault),
        _ => query_error(fault),
    }
}

fn lambda_error(fault: Fault) -> Response<Full<Bytes>> {
    let (status, error_type, body) = match fault {
        Fault::Throttle => (
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            r#"{"Type":"User","message":"Rate exceeded","Reason":"CallerRateLimitExceeded"}"#,
        ),
        Fault::InternalError | Fault::ConnectionReset | Fault::Stall | Fault::LostResponse => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            r#"{"Type":"Service","Message":"An internal error occurred (injected)"}"#,
        ),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            r#"{"Type":"Service","message":"Service unavailable (injected)"}"#,
        ),
        Fault::ExpiredToken => (
            StatusCode::FORBIDDEN,
            "ExpiredTokenException",
            r#"{"message":"The security token included in the request is expired (injected)"}"#,
        ),
    };
    respond(
        status,
        "application/json",
        Some(error_type),
        body.to_owned(),
    )
}

fn ec2_error(fault: Fault) -> Response<Full<Bytes>> {
    let (status, code, message) = match fault {
        Fault::Throttle => (
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ),
        Fault::InternalError | Fault::ConnectionReset | Fault::Stall | Fault::LostResponse => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occurred (injected).",
        ),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The server is overloaded and can't handle the request (injected).",
        ),
        Fault::ExpiredToken => (
            StatusCode::FORBIDDEN,
            "RequestExpired",
            "Request has expired (injected).",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>lmi-fault-proxy</RequestID>\
         </Response>"
    );
    respond(status, "text/xml", None, body)
}

fn query_error(fault: Fault) -> Response<Full<Bytes>> {
    let (status, kind, code) = match fault {
        Fault::Throttle => (StatusCode::BAD_REQUEST, "Sender", "Throttling"),
        Fault::InternalError | Fault::ConnectionReset | Fault::Stall | Fault::LostResponse => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            "InternalFailure",
        ),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Receiver",
            "ServiceUnavailable",
        ),
        Fault::ExpiredToken => (StatusCode::FORBIDDEN, "Sender", "ExpiredToken"),
    };
    let body = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>injected by the fault proxy</Message></Error>\
         <RequestId>lmi-fault-proxy</RequestId></ErrorResponse>"
    );
    respond(status, "text/xml", None, body)
}

fn respond(
    status: StatusCode,
    content_type: &str,
    error_type: Option<&str>,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    if let Some(value) = error_type.and_then(|t| http::HeaderValue::from_str(t).ok()) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_pick_faults_by_cumulative_share() {
        let plan = FaultPlan::seeded(1)
            .throttle(0.2)
            .internal_error(0.1)
            .connection_reset(0.1);
        assert_eq!(plan.pick(0.0), Some(Fault::Throttle));
        assert_eq!(plan.pick(0.19), Some(Fault::Throttle));
        assert_eq!(plan.pick(0.25), Some(Fault::InternalError));
        assert_eq!(plan.pick(0.35), Some(Fault::ConnectionReset));
        assert_eq!(plan.pick(0.45), None);
        assert_eq!(FaultPlan::none().pick(0.0), None);
    }

    #[test]
    fn faults_can_be_limited_to_operations() {
        let plan = FaultPlan::none().only(["CreateCapacityProvider"]);
        assert!(plan.applies_to("CreateCapacityProvider"));
        assert!(!plan.applies_to("GetCapacityProvider"));
        assert!(FaultPlan::none().applies_to("anything"));
    }

    #[test]
    fn throttling_speaks_each_services_dialect() {
        let lambda = error_response("lambda", Fault::Throttle);
        assert_eq!(lambda.status(), 429);
        assert_eq!(
            lambda.headers()["x-amzn-errortype"],
            "TooManyRequestsException"
        );
        let ec2 = error_response("ec2", Fault::Throttle);
        assert_eq!(ec2.status(), 503);
        let iam = error_response("iam", Fault::Throttle);
        assert_eq!(iam.status(), 400);
    }
}
