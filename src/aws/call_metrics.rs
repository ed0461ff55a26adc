//! Counts every AWS request the SDK clients send, by service, operation and outcome
//! (`lmi_aws_calls_total`), through an SDK interceptor — so no call site can forget it.
//!
//! One count per HTTP attempt: a throttled call the SDK retries three times counts three
//! times, which is what an operator watching throttling wants to see. The outcome is
//! `success` or one of the bounded reasons of [`super::error::REASONS`], read from the
//! response's error code (the `x-amzn-errortype` header or `__type` of JSON protocols, the
//! `<Code>` of EC2's XML) and HTTP status.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::error::classify_response;
use crate::metrics::AwsCallLabels;

/// The SDK interceptor feeding `lmi_aws_calls_total`.
#[derive(Clone, Debug)]
pub struct AwsCallCounter {
    calls: Family<AwsCallLabels, Counter>,
}

impl AwsCallCounter {
    /// Counts into `calls` (the `aws_calls` family of [`crate::metrics::Metrics`]).
    pub fn new(calls: Family<AwsCallLabels, Counter>) -> Self {
        Self { calls }
    }
}

impl Intercept for AwsCallCounter {
    fn name(&self) -> &'static str {
        "AwsCallCounter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = match cfg.load::<Metadata>() {
            Some(m) => (m.service().to_ascii_lowercase(), m.name().to_owned()),
            None => ("unknown".to_owned(), "unknown".to_owned()),
        };
        let outcome = match context.response() {
            Some(response) => outcome(response),
            // No response: timeout, connection failure, or the request was never sent.
            None => "AwsUnreachable",
        };
        self.calls
            .get_or_create(&AwsCallLabels {
                service,
                operation,
                outcome: outcome.to_owned(),
            })
            .inc();
        Ok(())
    }
}

fn outcome(response: &HttpResponse) -> &'static str {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return "success";
    }
    let code = error_code(response);
    classify_response(code.as_deref(), status).1
}

/// The AWS error code of a failed response, if it names one.
fn error_code(response: &HttpResponse) -> Option<String> {
    if let Some(header) = response.headers().get("x-amzn-errortype") {
        return Some(clean_code(header));
    }
    let body = response.body().bytes()?;
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        return ["__type", "code", "Code"]
            .iter()
            .find_map(|k| json.get(*k).and_then(|v| v.as_str()))
            .map(clean_code);
    }
    // EC2 and other query protocols: <Response><Errors><Error><Code>…</Code>.
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(clean_code(&text[start..end]))
}

/// `com.amazonaws.lambda#ThrottlingException:http://…` → `ThrottlingException`.
fn clean_code(raw: &str) -> String {
    let after_namespace = raw.rsplit_once('#').map_or(raw, |(_, c)| c);
    after_namespace
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16, header: Option<&str>, body: &str) -> HttpResponse {
        let mut r = HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(body.to_owned()),
        );
        if let Some(h) = header {
            r.headers_mut().insert("x-amzn-errortype", h.to_owned());
        }
        r
    }

    #[test]
    fn success_is_any_2xx() {
        assert_eq!(outcome(&response(200, None, "{}")), "success");
        assert_eq!(outcome(&response(204, None, "")), "success");
    }

    #[test]
    fn lambda_errors_are_read_from_the_error_type_header_or_json_body() {
        let header = response(
            429,
            Some("TooManyRequestsException:http://internal.amazon.com/coral/"),
            "{}",
        );
        assert_eq!(outcome(&header), "Throttled");
        let body = response(
            404,
            None,
            r#"{"__type":"com.amazonaws.lambda#ResourceNotFoundException","message":"no"}"#,
        );
        assert_eq!(outcome(&body), "NotFound");
        let conflict = response(
            409,
            None,
            r#"{"Type":"User","code":"ResourceConflictException"}"#,
        );
        assert_eq!(outcome(&conflict), "Conflict");
    }

    #[test]
    fn ec2_errors_are_read_from_the_xml_code() {
        let xml = |code: &str| {
            format!(
                "<?xml version=\"1.0\"?><Response><Errors><Error><Code>{code}</Code>\
                 <Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>"
            )
        };
        assert_eq!(
            outcome(&response(400, None, &xml("InvalidSubnetID.NotFound"))),
            "NotFound"
        );
        assert_eq!(
            outcome(&response(503, None, &xml("RequestLimitExceeded"))),
            "Throttled"
        );
        assert_eq!(
            outcome(&response(403, None, &xml("UnauthorizedOperation"))),
            "AccessDenied"
        );
        assert_eq!(
            outcome(&response(400, None, &xml("DependencyViolation"))),
            "Conflict"
        );
    }

    #[test]
    fn unknown_codes_and_bare_statuses_stay_in_the_bounded_set() {
        let weird = response(400, None, r#"{"__type":"SomethingNewException"}"#);
        assert_eq!(outcome(&weird), "AwsError");
        assert_eq!(outcome(&response(502, None, "<html>")), "AwsServerError");
        assert_eq!(outcome(&response(403, None, "")), "AccessDenied");
        for status in [400, 401, 403, 404, 409, 429, 500, 502, 503] {
            let o = outcome(&response(status, None, "garbage"));
            assert!(super::super::error::REASONS.contains(&o), "{status}: {o}");
        }
    }
}
