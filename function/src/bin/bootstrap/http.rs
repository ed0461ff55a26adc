//! HTTP events: API Gateway REST (payload 1.0), HTTP APIs (2.0) and Lambda function URLs
//! carry the request JSON as their body and take an HTTP response object back.
//!
//! The event itself is read by [`crate::request::parse_event`], which keeps of it only the
//! method, the body and its encoding; here the body becomes the request.

use base64::Engine as _;
use lmi_similarity::Catalog;
use serde_json::{Value, json};

use crate::request::{self, ApiError, HttpFields, MAX_REQUEST_BYTES, Prepared};

/// The request an HTTP event carries: `POST` only, its body (base64-decoded when the event
/// says so) read as the request JSON.
pub fn request(
    method: &str,
    fields: &HttpFields<'_>,
    catalog: &Catalog,
    max_top_k: usize,
) -> Result<Prepared, ApiError> {
    if method != "POST" {
        return Err(ApiError::client(
            405,
            "MethodNotAllowed",
            None,
            "only POST is allowed: send the query as the JSON body of a POST",
        ));
    }
    let raw = fields.body.as_deref().unwrap_or("");
    let decoded;
    let body: &[u8] = if fields.base64 {
        // Refused before decoding when even the decoded body would be over the limit.
        if raw.len() / 4 * 3 > MAX_REQUEST_BYTES {
            return Err(ApiError::client(
                413,
                "PayloadTooLarge",
                None,
                format!("the request body is over {MAX_REQUEST_BYTES} bytes (6 MB)"),
            ));
        }
        decoded = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| {
                ApiError::client(
                    400,
                    "InvalidJson",
                    None,
                    "the request body is marked isBase64Encoded but is not valid base64",
                )
            })?;
        &decoded
    } else {
        raw.as_bytes()
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::client(
            400,
            "MissingQuery",
            None,
            "the request body is empty: send the query as JSON",
        ));
    }
    request::parse_body(body, catalog, max_top_k)
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
    use lmi_similarity::Storage;

    use super::*;
    use crate::request::{Event, Subject, parse_event};

    fn catalog() -> Catalog {
        Catalog::from_rows(
            [("a", "shoes", [1.0, 0.0]), ("b", "hats", [0.0, 1.0])],
            Storage::F32,
        )
        .expect("catalog")
    }

    /// The request an event carries: `Ok(None)` for a direct invocation.
    fn http(event: &Value) -> Option<Result<Prepared, ApiError>> {
        let bytes = serde_json::to_vec(event).expect("json");
        let catalog = catalog();
        match parse_event(&bytes, &catalog, 10) {
            Ok(Event::Http { method, fields }) => Some(request(&method, &fields, &catalog, 10)),
            Ok(Event::Direct(_)) | Err(_) => None,
        }
    }

    #[test]
    fn direct_invocations_are_not_http_events() {
        assert!(http(&json!({"productId": "a"})).is_none());
        // A requestContext without a method is not an HTTP event (and not a request field).
        let bytes = br#"{"requestContext": {}, "productId": "a"}"#;
        let e = parse_event(bytes, &catalog(), 10).expect_err("unknown field");
        assert_eq!(e.field.as_deref(), Some("requestContext"), "{e:?}");
    }

    #[test]
    fn rest_api_events_are_read() {
        let e = json!({"httpMethod": "POST", "requestContext": {"stage": "prod"},
                       "headers": {"x": "y"}, "body": "{\"productId\":\"a\"}",
                       "isBase64Encoded": false});
        let p = http(&e).expect("http").expect("valid");
        assert_eq!(p.subject, Subject::Product("a".into()));
    }

    #[test]
    fn function_url_events_with_base64_bodies_are_decoded() {
        // {"productId":"b","topK":1}
        let e = json!({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "post"}},
                       "body": "eyJwcm9kdWN0SWQiOiJiIiwidG9wSyI6MX0=", "isBase64Encoded": true});
        let p = http(&e).expect("http").expect("valid");
        assert_eq!((p.subject, p.top_k), (Subject::Product("b".into()), 1));
        let bad = json!({"requestContext": {"http": {"method": "POST"}}, "body": "%%%", "isBase64Encoded": true});
        let e = http(&bad).expect("http").expect_err("bad");
        assert_eq!(e.error_type, "InvalidJson");
    }

    #[test]
    fn other_methods_and_empty_bodies_are_refused() {
        let get = json!({"requestContext": {"http": {"method": "GET"}}});
        let e = http(&get).expect("http").expect_err("405");
        assert_eq!((e.status, e.error_type), (405, "MethodNotAllowed"));
        let empty = json!({"httpMethod": "POST", "requestContext": {}, "body": "  "});
        assert_eq!(
            http(&empty).expect("http").expect_err("empty").error_type,
            "MissingQuery"
        );
        let none = json!({"httpMethod": "POST", "requestContext": {}, "body": null});
        assert_eq!(
            http(&none).expect("http").expect_err("null").error_type,
            "MissingQuery"
        );
    }

    #[test]
    fn a_body_is_a_request_not_an_event() {
        // HTTP keys inside the body are unknown request fields.
        let e = json!({"httpMethod": "POST", "requestContext": {},
                       "body": "{\"productId\":\"a\",\"httpMethod\":\"GET\"}"});
        let err = http(&e).expect("http").expect_err("unknown field");
        assert_eq!(err.field.as_deref(), Some("httpMethod"), "{err:?}");
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
