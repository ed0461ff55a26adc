//! The request API: the JSON a caller sends, checked field by field into a [`Prepared`] query,
//! and the error object a bad request gets back.
//!
//! Checks that need only the request and the catalog happen here, before any Bedrock call or
//! scan, so a bad request costs nothing and its error names the field at fault.

use base64::Engine as _;
use lmi_similarity::{Catalog, Query};
use serde::Deserialize;
use serde_json::Value;

/// Longest `text` accepted, in characters (Nova reads up to 8K tokens; longer text would be
/// truncated silently by the model, so it is refused instead).
pub const MAX_TEXT_CHARS: usize = 8192;
/// Largest decoded `image` accepted, in bytes.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Most `excludeIds` accepted.
pub const MAX_EXCLUDE_IDS: usize = 10_000;
/// Most `categories` accepted.
pub const MAX_CATEGORIES: usize = 1_000;

/// The request body, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    text: Option<String>,
    image: Option<String>,
    vector: Option<Vec<f32>>,
    product_id: Option<String>,
    top_k: Option<i64>,
    categories: Option<Vec<String>>,
    min_score: Option<f64>,
    exclude_ids: Option<Vec<String>>,
}

/// An image format Nova accepts, found from the image's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// WebP.
    Webp,
}

impl ImageFormat {
    /// The name Nova's `image.format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

/// What the query is compared by.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// Text, embedded by Bedrock.
    Text(String),
    /// An image, embedded by Bedrock; `base64` is the image as the caller sent it (checked).
    Image {
        /// Standard base64 of the image bytes.
        base64: String,
        /// The format found from the image's bytes.
        format: ImageFormat,
    },
    /// A raw embedding.
    Vector(Vec<f32>),
    /// A catalog product.
    Product(String),
}

impl Subject {
    /// A bounded name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Image { .. } => "image",
            Self::Vector(_) => "vector",
            Self::Product(_) => "productId",
        }
    }
}

/// A checked request: the subject plus a query whose target is filled in once the subject's
/// vector is known.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// What to compare by.
    pub subject: Subject,
    /// Hits wanted.
    pub top_k: usize,
    /// Category filter (empty: all), every name known to the catalog.
    pub categories: Vec<String>,
    /// Minimum score.
    pub min_score: Option<f32>,
    /// Products never returned.
    pub exclude_ids: Vec<String>,
}

impl Prepared {
    /// The engine query for `target` with this request's options.
    pub fn query(&self, target: Query) -> Query {
        let mut q = target
            .with_top_k(self.top_k)
            .with_categories(self.categories.iter().cloned())
            .excluding(self.exclude_ids.iter().cloned());
        if let Some(m) = self.min_score {
            q = q.with_min_score(m);
        }
        q
    }

    /// Rows the scan reads for this request (the filtered categories, or the catalog).
    pub fn scan_rows(&self, catalog: &Catalog) -> usize {
        if self.categories.is_empty() {
            catalog.len()
        } else {
            self.categories
                .iter()
                .filter_map(|c| catalog.category_rows(c))
                .map(|r| r.len())
                .sum()
        }
    }
}

/// An error answered to the caller: `errorType`, a message naming the field, and the HTTP
/// status that fits it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status (4xx: the caller's mistake; 5xx: ours or a dependency's).
    pub status: u16,
    /// A bounded, CamelCase name (metric label, `errorType`).
    pub error_type: &'static str,
    /// What is wrong and, for 4xx, what to send instead.
    pub message: String,
    /// The request field at fault, as a JSON path (`topK`, `categories[2]`), when there is one.
    pub field: Option<String>,
}

impl ApiError {
    /// A 400 for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::client(400, "InvalidRequest", Some(field.into()), message)
    }

    /// A 4xx with its own type.
    pub fn client(
        status: u16,
        error_type: &'static str,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            field,
        }
    }

    /// A 5xx.
    pub fn server(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            field: None,
        }
    }

    /// Whether the caller is at fault: a 4xx other than 429 (throttling is a dependency's
    /// state, retried later, not a mistake in the request).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status) && self.status != 429
    }

    /// The error object: `{"errorType", "message", "field"?, "statusCode"}`.
    pub fn body(&self) -> Value {
        let mut body = serde_json::json!({
            "errorType": self.error_type,
            "message": self.message,
            "statusCode": self.status,
        });
        if let (Some(field), Some(map)) = (&self.field, body.as_object_mut()) {
            map.insert("field".into(), Value::String(field.clone()));
        }
        body
    }
}

/// Parses a request body (JSON text, from an HTTP event): syntax first, then the fields.
pub fn parse_text(body: &str, catalog: &Catalog, max_top_k: usize) -> Result<Prepared, ApiError> {
    let value = json(body.as_bytes(), "request body")?;
    parse_value(&value, catalog, max_top_k)
}

/// `bytes` read as JSON, or the `InvalidJson` error saying where the syntax of `what` broke.
pub fn json(bytes: &[u8], what: &str) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::client(
            400,
            "InvalidJson",
            None,
            format!("{what} is not valid JSON: {e}; send the query as a JSON object"),
        )
    })
}

/// Parses a request event (a direct invocation's JSON).
pub fn parse_value(
    event: &Value,
    catalog: &Catalog,
    max_top_k: usize,
) -> Result<Prepared, ApiError> {
    if !event.is_object() {
        return Err(ApiError::client(
            400,
            "InvalidRequest",
            None,
            format!("the request must be a JSON object, not {}", kind_of(event)),
        ));
    }
    let wire: Wire = serde_path_to_error::deserialize(event).map_err(|e| wire_error(&e))?;
    check(wire, catalog, max_top_k)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wire_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> ApiError {
    let inner = e.inner().to_string();
    // serde says "unknown field `top_k`, expected one of ..." at the object's own path.
    if let Some(rest) = inner.strip_prefix("unknown field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return ApiError::invalid(
            name,
            format!(
                "unknown field '{name}' (fields: text, image, vector, productId, topK, \
                 categories, minScore, excludeIds)"
            ),
        );
    }
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        return ApiError::client(400, "InvalidRequest", None, inner);
    }
    ApiError::invalid(path.clone(), format!("{path}: {inner}"))
}

fn check(wire: Wire, catalog: &Catalog, max_top_k: usize) -> Result<Prepared, ApiError> {
    let given: Vec<&str> = [
        ("text", wire.text.is_some()),
        ("image", wire.image.is_some()),
        ("vector", wire.vector.is_some()),
        ("productId", wire.product_id.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match given.as_slice() {
        [] => {
            return Err(ApiError::client(
                400,
                "MissingQuery",
                None,
                "give exactly one of text, image, vector or productId",
            ));
        }
        [_] => {}
        [first, second, ..] => {
            return Err(ApiError::invalid(
                *second,
                format!(
                    "give exactly one of text, image, vector or productId, not both {first} and {second}"
                ),
            ));
        }
    }

    let subject = if let Some(text) = wire.text {
        Subject::Text(check_text(text)?)
    } else if let Some(image) = wire.image {
        check_image(image)?
    } else if let Some(vector) = wire.vector {
        check_vector(vector, catalog.dim())?
    } else if let Some(id) = wire.product_id {
        if catalog.row_of(&id).is_none() {
            return Err(ApiError::client(
                404,
                "UnknownProduct",
                Some("productId".into()),
                format!("productId '{id}' is not in the catalog"),
            ));
        }
        Subject::Product(id)
    } else {
        return Err(ApiError::client(
            400,
            "MissingQuery",
            None,
            "no query given",
        ));
    };

    let top_k = match wire.top_k {
        None => Query::DEFAULT_TOP_K.min(max_top_k),
        Some(k) if k >= 1 && (k as u64) <= max_top_k as u64 => k as usize,
        Some(k) => {
            return Err(ApiError::invalid(
                "topK",
                format!("topK {k} is out of range 1..={max_top_k}"),
            ));
        }
    };

    let categories = wire.categories.unwrap_or_default();
    if categories.len() > MAX_CATEGORIES {
        return Err(ApiError::invalid(
            "categories",
            format!(
                "categories has {} entries, at most {MAX_CATEGORIES}",
                categories.len()
            ),
        ));
    }
    for (i, c) in categories.iter().enumerate() {
        if catalog.category_rows(c).is_none() {
            let known: Vec<&str> = catalog
                .categories()
                .iter()
                .map(|b| &*b.name)
                .take(20)
                .collect();
            let more = if catalog.categories().len() > known.len() {
                ", ..."
            } else {
                ""
            };
            return Err(ApiError::client(
                400,
                "UnknownCategory",
                Some(format!("categories[{i}]")),
                format!(
                    "categories[{i}] '{c}' is not a catalog category (categories: {}{more})",
                    known.join(", ")
                ),
            ));
        }
    }

    let min_score = match wire.min_score {
        None => None,
        Some(m) if (-1.0..=1.0).contains(&m) => Some(m as f32),
        Some(m) => {
            return Err(ApiError::invalid(
                "minScore",
                format!("minScore {m} is out of range -1..=1 (scores are cosine similarities)"),
            ));
        }
    };

    let exclude_ids = wire.exclude_ids.unwrap_or_default();
    if exclude_ids.len() > MAX_EXCLUDE_IDS {
        return Err(ApiError::invalid(
            "excludeIds",
            format!(
                "excludeIds has {} entries, at most {MAX_EXCLUDE_IDS}",
                exclude_ids.len()
            ),
        ));
    }

    Ok(Prepared {
        subject,
        top_k,
        categories,
        min_score,
        exclude_ids,
    })
}

fn check_text(text: String) -> Result<String, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid("text", "text is empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::client(
            413,
            "PayloadTooLarge",
            Some("text".into()),
            format!("text has {chars} characters, at most {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(text)
}

fn check_image(image: String) -> Result<Subject, ApiError> {
    // Accept a data URL as browsers produce it (`data:image/png;base64,...`).
    let b64 = match image.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map_or(rest, |(_, data)| data),
        None => image.as_str(),
    };
    let b64: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if b64.is_empty() {
        return Err(ApiError::invalid("image", "image is empty"));
    }
    // Refuse oversize input before decoding it (4 base64 characters carry 3 bytes).
    if b64.len() / 4 * 3 > MAX_IMAGE_BYTES + 3 {
        return Err(too_large_image(b64.len() / 4 * 3));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .map_err(|e| ApiError::invalid("image", format!("image is not valid base64: {e}")))?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(too_large_image(bytes.len()));
    }
    let format = ImageFormat::sniff(&bytes).ok_or_else(|| {
        ApiError::client(
            415,
            "UnsupportedImage",
            Some("image".into()),
            "image is not a PNG, JPEG, GIF or WebP image",
        )
    })?;
    Ok(Subject::Image {
        base64: b64,
        format,
    })
}

fn too_large_image(bytes: usize) -> ApiError {
    ApiError::client(
        413,
        "PayloadTooLarge",
        Some("image".into()),
        format!("image has {bytes} bytes, at most {MAX_IMAGE_BYTES}"),
    )
}

fn check_vector(vector: Vec<f32>, dim: usize) -> Result<Subject, ApiError> {
    if vector.len() != dim {
        return Err(ApiError::invalid(
            "vector",
            format!(
                "vector has {} values, the catalog has dimension {dim}",
                vector.len()
            ),
        ));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(ApiError::invalid(
            format!("vector[{i}]"),
            format!("vector[{i}] is not a finite float32"),
        ));
    }
    if vector.iter().all(|&x| x == 0.0) {
        return Err(ApiError::invalid(
            "vector",
            "vector is all zeros: it has no direction",
        ));
    }
    Ok(Subject::Vector(vector))
}

#[cfg(test)]
mod tests {
    use lmi_similarity::Storage;
    use serde_json::json;

    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_rows(
            [
                ("a", "shoes", [1.0, 0.0, 0.0]),
                ("b", "shoes", [0.8, 0.6, 0.0]),
                ("c", "hats", [0.0, 1.0, 0.0]),
            ],
            Storage::F32,
        )
        .expect("catalog")
    }

    fn parse(v: Value) -> Result<Prepared, ApiError> {
        parse_value(&v, &catalog(), 50)
    }

    fn err(v: Value) -> ApiError {
        parse(v).expect_err("refused")
    }

    #[test]
    fn a_full_request_is_read() {
        let p = parse(json!({
            "vector": [1, 2, 3], "topK": 5, "categories": ["hats"], "minScore": 0.25,
            "excludeIds": ["zz"]
        }))
        .expect("valid");
        assert_eq!(p.subject, Subject::Vector(vec![1.0, 2.0, 3.0]));
        assert_eq!(
            (
                p.top_k,
                p.categories.clone(),
                p.min_score,
                p.exclude_ids.clone()
            ),
            (
                5,
                vec!["hats".to_owned()],
                Some(0.25),
                vec!["zz".to_owned()]
            )
        );
        assert_eq!(p.scan_rows(&catalog()), 1);
    }

    #[test]
    fn top_k_defaults_to_ten() {
        assert_eq!(parse(json!({"productId": "a"})).expect("valid").top_k, 10);
    }

    #[test]
    fn exactly_one_subject_is_required() {
        assert_eq!(err(json!({"topK": 3})).error_type, "MissingQuery");
        let e = err(json!({"text": "x", "productId": "a"}));
        assert_eq!(e.field.as_deref(), Some("productId"));
        assert!(
            e.message.contains("not both text and productId"),
            "{}",
            e.message
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"vector": [1, 2]}), "vector", 400),
            (json!({"vector": [0, 0, 0]}), "vector", 400),
            (json!({"vector": [1, "x", 3]}), "vector[1]", 400),
            (json!({"vector": [1, 1e39, 3]}), "vector[1]", 400),
            (json!({"productId": "nope"}), "productId", 404),
            (json!({"productId": "a", "topK": 0}), "topK", 400),
            (json!({"productId": "a", "topK": 51}), "topK", 400),
            (json!({"productId": "a", "topK": "ten"}), "topK", 400),
            (
                json!({"productId": "a", "categories": ["hats", "socks"]}),
                "categories[1]",
                400,
            ),
            (json!({"productId": "a", "minScore": 1.5}), "minScore", 400),
            (
                json!({"productId": "a", "excludeIds": [1]}),
                "excludeIds[0]",
                400,
            ),
            (json!({"productId": "a", "top_k": 3}), "top_k", 400),
            (json!({"text": "   "}), "text", 400),
            (json!({"text": "x".repeat(MAX_TEXT_CHARS + 1)}), "text", 413),
            (json!({"image": ""}), "image", 400),
            (json!({"image": "not base64!"}), "image", 400),
            (json!({"image": "aGVsbG8="}), "image", 415),
        ];
        for (request, field, status) in cases {
            let e = err(request.clone());
            assert_eq!(e.field.as_deref(), Some(field), "{request}: {e:?}");
            assert_eq!(e.status, status, "{request}: {e:?}");
            assert!(
                e.message.contains(field.split('[').next().unwrap_or(field)),
                "{e:?}"
            );
        }
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n0000");
        match parse(json!({"image": format!("data:image/png;base64,{png}")}))
            .expect("valid")
            .subject
        {
            Subject::Image { format, base64 } => {
                assert_eq!(format, ImageFormat::Png);
                assert_eq!(base64, png);
            }
            other => panic!("{other:?}"),
        }
        let webp = base64::engine::general_purpose::STANDARD.encode(b"RIFF\0\0\0\0WEBPVP8 ");
        assert!(matches!(
            parse(json!({"image": webp})).expect("valid").subject,
            Subject::Image {
                format: ImageFormat::Webp,
                ..
            }
        ));
    }

    #[test]
    fn oversize_images_are_refused_before_decoding() {
        let big = "A".repeat((MAX_IMAGE_BYTES / 3 + 10) * 4);
        let e = err(json!({ "image": big }));
        assert_eq!((e.status, e.error_type), (413, "PayloadTooLarge"));
    }

    #[test]
    fn non_objects_and_malformed_json_are_refused() {
        let e = err(json!([1, 2]));
        assert!(e.message.contains("an array"), "{e:?}");
        let e = parse_text("{\"productId\": ", &catalog(), 50).expect_err("malformed");
        assert_eq!(e.error_type, "InvalidJson");
        let e =
            parse_text("{\"productId\": \"a\"} trailing", &catalog(), 50).expect_err("trailing");
        assert_eq!(e.error_type, "InvalidJson");
        assert!(parse_text("{\"productId\": \"a\"}", &catalog(), 50).is_ok());
    }

    #[test]
    fn throttling_is_not_the_callers_fault() {
        assert!(ApiError::invalid("topK", "x").is_client_error());
        assert!(!ApiError::server(429, "EmbeddingThrottled", "x").is_client_error());
        assert!(!ApiError::server(502, "EmbeddingFailed", "x").is_client_error());
    }

    #[test]
    fn error_bodies_carry_type_message_field_and_status() {
        let body = ApiError::invalid("topK", "topK 0 is out of range").body();
        assert_eq!(
            body,
            json!({"errorType": "InvalidRequest", "message": "topK 0 is out of range",
                   "field": "topK", "statusCode": 400})
        );
    }
}
