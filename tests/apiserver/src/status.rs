//! `metav1.Status` errors, worded like the real API server's, so clients (kube's `ErrorResponse`,
//! kubectl's "Error from server (Reason): …" and "The X "n" is invalid" printers) see what they
//! would see against a cluster.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One field error (`field.Error` in apimachinery): type, path and the rendered body.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// StatusCause reason, e.g. `FieldValueTooMany`.
    pub reason: &'static str,
    /// Dotted field path, e.g. `spec.vpc.subnetIds[0]`.
    pub field: String,
    /// `ErrorBody()`: e.g. `Too many: 17: must have at most 16 items`.
    pub body: String,
}

/// Renders a bad value the way `field.Error.ErrorBody` does (`%q` for strings, `%v` for numbers).
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "\"null\"".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Go's `%q` for the common cases (printable text with escapes for quotes and backslashes).
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

impl FieldError {
    fn new(reason: &'static str, field: &str, body: String) -> Self {
        Self {
            reason,
            field: field.to_string(),
            body,
        }
    }
    pub fn required(field: &str, detail: &str) -> Self {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self::new("FieldValueRequired", field, body)
    }
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let mut body = format!("Invalid value: {}", render_value(value));
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        Self::new("FieldValueInvalid", field, body)
    }
    pub fn type_invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self::new(
            "FieldValueTypeInvalid",
            field,
            format!("Invalid value: {}: {detail}", render_value(value)),
        )
    }
    pub fn not_supported(field: &str, value: &Value, allowed: &[String]) -> Self {
        let quoted: Vec<String> = allowed.iter().map(|a| go_quote(a)).collect();
        Self::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                quoted.join(", ")
            ),
        )
    }
    pub fn too_many(field: &str, actual: usize, max: u64) -> Self {
        Self::new(
            "FieldValueTooMany",
            field,
            format!("Too many: {actual}: must have at most {max} items"),
        )
    }
    pub fn too_long(field: &str, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} {unit}"),
        )
    }
    pub fn duplicate(field: &str, value: &Value) -> Self {
        Self::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", render_value(value)),
        )
    }
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }
    /// `field: body`, as `field.Error.Error()` prints it.
    pub fn line(&self) -> String {
        if self.field.is_empty() {
            self.body.clone()
        } else {
            format!("{}: {}", self.field, self.body)
        }
    }
}

/// An API error answered as a `Status` object.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    /// `the server could not find the requested resource`, for unknown paths.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }
    /// `capacityproviders.lmi.dev "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!(
                "{} {} not found",
                qualified(group, resource),
                go_quote(name)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!(
                "{} {} already exists",
                qualified(group, resource),
                go_quote(name)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// Optimistic-concurrency failure.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {}: {why}",
                qualified(group, resource),
                go_quote(name)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    /// 422 with every field error, as `errors.NewInvalid` builds it.
    pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let lines: Vec<String> = errs.iter().map(FieldError::line).collect();
        let joined = if lines.len() == 1 {
            lines[0].clone()
        } else {
            format!("[{}]", lines.join(", "))
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
            .collect();
        Self::new(
            422,
            "Invalid",
            format!(
                "{} {} is invalid: {joined}",
                qualified(group, kind),
                go_quote(name)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type})"))
            .with_details(json!({}))
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(r) = self.retry_after {
            s["details"]["retryAfterSeconds"] = json!(r);
        }
        s
    }
}

/// `resource.group`, or `resource` for the core group.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_status().to_string();
        let mut resp = (code, [("content-type", "application/json")], body).into_response();
        if let Some(r) = self.retry_after
            && let Ok(v) = r.to_string().parse()
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_lists_every_error_like_the_apiserver() {
        let errs = vec![
            FieldError::too_many("spec.vpc.subnetIds", 17, 16),
            FieldError::required("spec.operatorRoleArn", ""),
        ];
        let e = ApiError::invalid("lmi.dev", "CapacityProvider", "x", &errs);
        assert_eq!(
            e.message,
            "CapacityProvider.lmi.dev \"x\" is invalid: [spec.vpc.subnetIds: Too many: 17: must have at most 16 items, spec.operatorRoleArn: Required value]"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["reason"],
            "FieldValueTooMany"
        );
    }

    #[test]
    fn single_error_has_no_brackets() {
        let errs = vec![FieldError::not_supported(
            "spec.mode",
            &json!("X"),
            &["Auto".into(), "Manual".into()],
        )];
        let e = ApiError::invalid("lmi.dev", "CapacityProvider", "x", &errs);
        assert_eq!(
            e.message,
            "CapacityProvider.lmi.dev \"x\" is invalid: spec.mode: Unsupported value: \"X\": supported values: \"Auto\", \"Manual\""
        );
    }
}
