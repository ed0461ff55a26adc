//! HTTP events: API Gateway REST (payload 1.0), HTTP APIs (2.0) and Lambda function URLs
//! carry the request JSON as their body and take an HTTP response object back.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::request::ApiError;

/// An HTTP event's method and body.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method (`POST` expected).
    pub method: String,
    /// The decoded body, if any.
    pub body: Result<String, ApiError>,
}

/// The HTTP request carried by `event`, or `None` when it is a direct invocation.
pub fn detect(event: &Value) -> Option<HttpRequest> {
    let obj = event.as_object()?;
    let context = obj.get("requestContext")?;
    // Payload 1.0 names the method at the top; 2.0 and function URLs in requestContext.http.
    let method = obj
        .get("httpMethod")
        .or_else(|| context.get("http").and_then(|h| h.get("method")))?
        .as_str()?
        .to_ascii_uppercase();
    let raw = obj.get("body").and_then(Value::as_str).unwrap_or("");
    let encoded = obj
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = if encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|e| format!("body is not valid base64: {e}"))
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|_| "body is not UTF-8 text".to_owned())
            })
            .map_err(|m| ApiError::client(400, "InvalidJson", None, m))
    } else {
        Ok(raw.to_owned())
    };
    Some(HttpRequest { method, body })
}

/// The HTTP response object for a JSON body and status.
pub fn response(status: u16, body: &Value) -> Value {
    let mut headers = json!({ "content-type": "application/json" });
    if status == 405
        && let Some(map) = headers.as_object_mut()
    {
        map.insert("allow".into(), json!("POST"));
    }
    json!({
        "statusCode": status,
        "headers": headers,
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_invocations_are_not_http_events() {
        assert_eq!(detect(&json!({"text": "shoes"})), None);
        assert_eq!(detect(&json!({"requestContext": {}, "text": "x"})), None);
    }

    #[test]
    fn rest_api_events_are_read() {
        let e = json!({"httpMethod": "POST", "requestContext": {"stage": "prod"},
                       "body": "{\"productId\":\"a\"}", "isBase64Encoded": false});
        let r = detect(&e).expect("http");
        assert_eq!(r.method, "POST");
        assert_eq!(r.body, Ok("{\"productId\":\"a\"}".to_owned()));
    }

    #[test]
    fn function_url_events_with_base64_bodies_are_decoded() {
        let e = json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "post"}},
                       "body": "eyJ0b3BLIjoxfQ==", "isBase64Encoded": true});
        let r = detect(&e).expect("http");
        assert_eq!(r.method, "POST");
        assert_eq!(r.body, Ok("{\"topK\":1}".to_owned()));
        let bad = json!({"requestContext": {"http": {"method": "POST"}}, "body": "%%%", "isBase64Encoded": true});
        assert_eq!(
            detect(&bad)
                .expect("http")
                .body
                .expect_err("bad")
                .error_type,
            "InvalidJson"
        );
    }

    #[test]
    fn responses_carry_status_json_and_headers() {
        let r = response(404, &json!({"errorType": "UnknownProduct"}));
        assert_eq!(r["statusCode"], 404);
        assert_eq!(r["headers"]["content-type"], "application/json");
        assert_eq!(r["body"], "{\"errorType\":\"UnknownProduct\"}");
        assert_eq!(response(405, &json!({}))["headers"]["allow"], "POST");
    }
}
