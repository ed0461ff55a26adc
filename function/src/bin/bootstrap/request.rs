//! The request API: the JSON a caller sends, checked field by field into a [`Prepared`] query,
//! and the error object a bad request gets back.
//!
//! Checks that need only the request and the catalog happen here, before any Bedrock call or
//! scan, so a bad request costs nothing and its error names the field at fault.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use lmi_similarity::{Catalog, Query};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Largest event (or HTTP body) read: Lambda's synchronous invocation payload limit, 6 MB
/// (Lambda quotas, "Invocation payload (request and response)"). Lambda refuses larger events
/// before they reach the handler; the handler refuses them too, before reading a byte of them,
/// so no emulator or future limit can make it parse more.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;
/// Longest `text` accepted, in characters (Nova reads up to 8K tokens; longer text would be
/// truncated silently by the model, so it is refused instead).
pub const MAX_TEXT_CHARS: usize = 8192;
/// Largest decoded `image` accepted, in bytes: 4 MiB, whose base64 (5.6 MB) still fits, with
/// the rest of the request, in Lambda's 6 MB invocation payload.
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most `excludeIds` accepted.
pub const MAX_EXCLUDE_IDS: usize = 10_000;
/// Most `categories` accepted.
pub const MAX_CATEGORIES: usize = 1_000;
/// Longest `productId`, `categories[i]` or `excludeIds[i]` accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// A string of the request, borrowed from the event when it has no escapes.
type Str<'de> = Cow<'de, str>;

/// The fields of one JSON object as read: the request's and, for an event, an HTTP event's.
///
/// Read straight from the event's bytes with bounded visitors ([`Parse`]): an array stops at its
/// limit (`vector` at the catalog's dimension), a string at its length limit, and every other
/// key's value is skipped without being kept, so a request costs memory in proportion to what
/// the request API allows, not to what a caller sends.
#[derive(Debug, Default)]
struct Fields<'de> {
    text: Option<Str<'de>>,
    image: Option<Str<'de>>,
    vector: Option<Vec<f32>>,
    product_id: Option<Str<'de>>,
    top_k: Option<i64>,
    categories: Option<Vec<Str<'de>>>,
    min_score: Option<f64>,
    exclude_ids: Option<Vec<Str<'de>>>,
    /// HTTP events only (API Gateway REST payload 1.0, HTTP APIs 2.0, function URLs).
    http: HttpFields<'de>,
    /// The first key that is none of these (an error for a request, ignored in an HTTP event).
    unknown: Option<String>,
}

/// What the handler reads of an HTTP event.
#[derive(Debug, Default)]
pub struct HttpFields<'de> {
    /// `requestContext` was present; its `http.method` (payload 2.0, function URLs).
    context: Option<RequestContext>,
    /// `httpMethod` (payload 1.0).
    http_method: Option<String>,
    /// `body`.
    pub body: Option<Str<'de>>,
    /// `isBase64Encoded`.
    pub base64: bool,
    /// The first of these keys given (an unknown field when the event is no HTTP event).
    seen: Option<&'static str>,
}

impl HttpFields<'_> {
    /// The method, when this is an HTTP event (`requestContext` and a method present).
    pub fn method(&self) -> Option<&str> {
        let context = self.context.as_ref()?;
        self.http_method
            .as_deref()
            .or_else(|| context.http.as_ref()?.method.as_deref())
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct RequestContext {
    http: Option<HttpContext>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct HttpContext {
    method: Option<String>,
}

/// What one event is.
#[derive(Debug)]
pub enum Event<'de> {
    /// A direct invocation: the request itself.
    Direct(Prepared),
    /// An HTTP event (function URL, API Gateway): its method, body and encoding, read later by
    /// [`crate::http::request`].
    Http {
        /// The method, upper case.
        method: String,
        /// The body and its encoding.
        fields: HttpFields<'de>,
    },
}

/// Which keys an object may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An invocation's event: a request, or an HTTP event.
    Event,
    /// An HTTP body: a request only.
    Body,
}

/// One parse: the limits that depend on the catalog, and the refusal a visitor made (serde
/// errors carry only a message; the refusal keeps the status and type the caller gets).
struct Parse {
    dim: usize,
    mode: Mode,
    refusal: RefCell<Option<Refusal>>,
}

/// A refusal made inside the parse; its field is the JSON path where it was made.
type Refusal = Box<dyn FnOnce(&str) -> ApiError>;

impl Parse {
    /// A string of at most `max_bytes` in this parse.
    fn string(&self, max_bytes: usize) -> StrSeed<'_> {
        StrSeed {
            max_bytes,
            parse: self,
        }
    }

    fn refuse<E: de::Error>(&self, refusal: impl FnOnce(&str) -> ApiError + 'static) -> E {
        *self.refusal.borrow_mut() = Some(Box::new(refusal));
        E::custom("refused")
    }
}

/// Parses a direct invocation's event or an HTTP event, from its bytes.
pub fn parse_event<'de>(
    bytes: &'de [u8],
    catalog: &Catalog,
    max_top_k: usize,
) -> Result<Event<'de>, ApiError> {
    let mut fields = read(bytes, catalog.dim(), Mode::Event, "the event")?;
    if let Some(method) = fields.http.method() {
        return Ok(Event::Http {
            method: method.to_ascii_uppercase(),
            fields: fields.http,
        });
    }
    // Not an HTTP event: its HTTP keys are unknown request fields.
    if fields.unknown.is_none() {
        fields.unknown = fields.http.seen.map(str::to_owned);
    }
    check(fields, catalog, max_top_k).map(Event::Direct)
}

/// Parses an HTTP request's body (JSON text): a request only.
pub fn parse_body(body: &[u8], catalog: &Catalog, max_top_k: usize) -> Result<Prepared, ApiError> {
    let fields = read(body, catalog.dim(), Mode::Body, "the request body")?;
    check(fields, catalog, max_top_k)
}

/// Reads one JSON object's fields: size first, then syntax and types, path by path.
fn read<'de>(
    bytes: &'de [u8],
    dim: usize,
    mode: Mode,
    what: &str,
) -> Result<Fields<'de>, ApiError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::client(
            413,
            "PayloadTooLarge",
            None,
            format!(
                "{what} is {} bytes, over Lambda's {MAX_REQUEST_BYTES}-byte (6 MB) invocation \
                 payload limit",
                bytes.len()
            ),
        ));
    }
    let parse = Parse {
        dim,
        mode,
        refusal: RefCell::new(None),
    };
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let result = (&parse)
        .deserialize(serde_path_to_error::Deserializer::new(
            &mut json, &mut track,
        ))
        .and_then(|fields| json.end().map(|()| fields));
    result.map_err(|e| {
        let path = track.path().to_string();
        if let Some(refusal) = parse.refusal.borrow_mut().take() {
            return refusal(&path);
        }
        match e.classify() {
            serde_json::error::Category::Data if path.is_empty() || path == "." => {
                ApiError::client(
                    400,
                    "InvalidRequest",
                    None,
                    format!("{what} must be a JSON object, not {}", kind_at_start(bytes)),
                )
            }
            serde_json::error::Category::Data => type_error(&path),
            // serde_json's syntax messages say where ("expected `,` or `}` at line 1 column
            // 20") and never quote the input.
            _ => ApiError::client(
                400,
                "InvalidJson",
                None,
                format!("{what} is not valid JSON: {e}; send the query as a JSON object"),
            ),
        }
    })
}

/// What kind of JSON value `bytes` starts with (for "must be an object, not ...").
fn kind_at_start(bytes: &[u8]) -> &'static str {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// The error for a value of the wrong type at `path`: what the field takes, never the value.
fn type_error(path: &str) -> ApiError {
    let top = path.split(['[', '.']).next().unwrap_or(path);
    let element = path.contains('[');
    let expected = match top {
        "text" | "image" | "productId" | "httpMethod" | "body" => "a string",
        "vector" if element => "a number",
        "vector" => "an array of numbers",
        "topK" => "an integer",
        "minScore" => "a number",
        "categories" | "excludeIds" if element => "a string",
        "categories" | "excludeIds" => "an array of strings",
        "isBase64Encoded" => "a boolean",
        "requestContext" => "an object",
        _ => "another type",
    };
    ApiError::invalid(path, format!("{path} must be {expected}"))
}

/// A field name fit to show back: the request API's names are; anything else is described.
fn shown_name(name: &str) -> Option<String> {
    (!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then(|| name.to_owned())
}

impl<'de> DeserializeSeed<'de> for &Parse {
    type Value = Fields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &Parse {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut f = Fields::default();
        let names = self.string(MAX_NAME_BYTES);
        let http = self.mode == Mode::Event;
        let ids = |max: usize, what: &'static str| Bounded {
            elem: names,
            max,
            parse: self,
            too_many: move |path: &str| {
                ApiError::invalid(path, format!("{what} has more than {max} entries"))
            },
        };
        while let Some(key) = map.next_key_seed(names)? {
            match &*key {
                "text" => {
                    once(self, &f.text, "text")?;
                    // Bytes, a bound on characters; the exact count is checked after.
                    f.text = Some(map.next_value_seed(self.string(MAX_TEXT_CHARS * 4))?);
                }
                "image" => {
                    once(self, &f.image, "image")?;
                    f.image = Some(map.next_value_seed(self.string(MAX_REQUEST_BYTES))?);
                }
                "vector" => {
                    once(self, &f.vector, "vector")?;
                    let dim = self.dim;
                    f.vector = Some(map.next_value_seed(Bounded {
                        elem: PhantomData::<f32>,
                        max: dim,
                        parse: self,
                        too_many: move |path: &str| {
                            ApiError::invalid(
                                path,
                                format!(
                                    "vector has more than {dim} values, the catalog has \
                                     dimension {dim}"
                                ),
                            )
                        },
                    })?);
                }
                "productId" => {
                    once(self, &f.product_id, "productId")?;
                    f.product_id = Some(map.next_value_seed(names)?);
                }
                "topK" => {
                    once(self, &f.top_k, "topK")?;
                    f.top_k = Some(map.next_value()?);
                }
                "categories" => {
                    once(self, &f.categories, "categories")?;
                    f.categories = Some(map.next_value_seed(ids(MAX_CATEGORIES, "categories"))?);
                }
                "minScore" => {
                    once(self, &f.min_score, "minScore")?;
                    f.min_score = Some(map.next_value()?);
                }
                "excludeIds" => {
                    once(self, &f.exclude_ids, "excludeIds")?;
                    f.exclude_ids = Some(map.next_value_seed(ids(MAX_EXCLUDE_IDS, "excludeIds"))?);
                }
                "requestContext" if http => {
                    f.http.seen.get_or_insert("requestContext");
                    once(self, &f.http.context, "requestContext")?;
                    f.http.context = Some(map.next_value()?);
                }
                "httpMethod" if http => {
                    f.http.seen.get_or_insert("httpMethod");
                    once(self, &f.http.http_method, "httpMethod")?;
                    f.http.http_method = map.next_value()?;
                }
                "body" if http => {
                    f.http.seen.get_or_insert("body");
                    once(self, &f.http.body, "body")?;
                    f.http.body =
                        map.next_value_seed(OptionSeed(self.string(MAX_REQUEST_BYTES)))?;
                }
                "isBase64Encoded" if http => {
                    f.http.seen.get_or_insert("isBase64Encoded");
                    f.http.base64 = map.next_value::<Option<bool>>()?.unwrap_or(false);
                }
                other => {
                    if f.unknown.is_none() {
                        f.unknown = Some(shown_name(other).unwrap_or_default());
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(f)
    }
}

/// Refuses a key given twice (before reading its second value).
fn once<T, E: de::Error>(parse: &Parse, slot: &Option<T>, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(parse.refuse(move |_| {
            ApiError::invalid(name, format!("{name} is given twice: give each field once"))
        }));
    }
    Ok(())
}

/// A string of at most `max_bytes`, borrowed from the input when it has no escapes; a longer
/// one is refused without being copied.
#[derive(Clone, Copy)]
struct StrSeed<'a> {
    max_bytes: usize,
    parse: &'a Parse,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = Str<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Str<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl StrSeed<'_> {
    fn check<E: de::Error>(&self, len: usize) -> Result<(), E> {
        if len <= self.max_bytes {
            return Ok(());
        }
        let max = self.max_bytes;
        Err(self.parse.refuse(move |path: &str| {
            let field = if path.is_empty() || path == "." {
                "a field name".to_owned()
            } else {
                path.to_owned()
            };
            ApiError::client(
                413,
                "PayloadTooLarge",
                Some(field.clone()),
                format!("{field} is {len} bytes long, at most {max}"),
            )
        }))
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
        self.check(v.len())?;
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
        self.check(v.len())?;
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// `null` or the inner seed's value.
struct OptionSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OptionSeed<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OptionSeed<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or a value")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// An array of at most `max` elements; reading stops at the first one over.
struct Bounded<'a, S, F> {
    elem: S,
    max: usize,
    parse: &'a Parse,
    too_many: F,
}

impl<'de, S, F> DeserializeSeed<'de> for Bounded<'_, S, F>
where
    S: DeserializeSeed<'de> + Copy,
    F: FnOnce(&str) -> ApiError + 'static,
{
    type Value = Vec<S::Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S, F> Visitor<'de> for Bounded<'_, S, F>
where
    S: DeserializeSeed<'de> + Copy,
    F: FnOnce(&str) -> ApiError + 'static,
{
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(4096));
        while let Some(v) = seq.next_element_seed(self.elem)? {
            if out.len() == self.max {
                // The path is the array's (its elements are not tracked past the limit).
                let too_many = self.too_many;
                return Err(self
                    .parse
                    .refuse(move |path: &str| too_many(path.split('[').next().unwrap_or(path))));
            }
            out.push(v);
        }
        Ok(out)
    }
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
///
/// The message is the handler's own words: it never quotes what the caller sent, lists the
/// catalog's contents, or passes on a dependency's text (Bedrock's messages name the function's
/// role; transport errors name hosts and addresses). Such detail goes to the function's log
/// ([`ApiError::detail`]), found there by the request id every error body carries.
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
    /// What the log gets besides the message (a dependency's own error text); never answered.
    pub detail: Option<String>,
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
            detail: None,
        }
    }

    /// A 5xx.
    pub fn server(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Self::client(status, error_type, None, message)
    }

    /// The same error with `detail` for the log.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Whether the caller is at fault: a 4xx other than 429 (throttling is a dependency's
    /// state, retried later, not a mistake in the request).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status) && self.status != 429
    }

    /// The message a caller gets: for a failure of ours or a dependency's (5xx, 429), with the
    /// request id under which the log has the detail.
    pub fn message_for(&self, request_id: &str) -> String {
        if self.is_client_error() {
            self.message.clone()
        } else {
            format!(
                "{} (request id {request_id}: the function's log has the detail)",
                self.message
            )
        }
    }

    /// The error object: `{"errorType", "message", "field"?, "statusCode", "requestId"}`.
    pub fn body(&self, request_id: &str) -> Value {
        let mut body = serde_json::json!({
            "errorType": self.error_type,
            "message": self.message_for(request_id),
            "statusCode": self.status,
            "requestId": request_id,
        });
        if let (Some(field), Some(map)) = (&self.field, body.as_object_mut()) {
            map.insert("field".into(), Value::String(field.clone()));
        }
        body
    }
}

/// Checks a request's fields against the request API and the catalog.
fn check(wire: Fields<'_>, catalog: &Catalog, max_top_k: usize) -> Result<Prepared, ApiError> {
    if let Some(name) = wire.unknown {
        let (field, named) = if name.is_empty() {
            ("(unknown)".to_owned(), "a field".to_owned())
        } else {
            (name.clone(), format!("'{name}'"))
        };
        return Err(ApiError::invalid(
            field,
            format!(
                "unknown field: {named} is not a request field (fields: text, image, vector, \
                 productId, topK, categories, minScore, excludeIds)"
            ),
        ));
    }
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
        check_image(&image)?
    } else if let Some(vector) = wire.vector {
        check_vector(vector, catalog.dim())?
    } else if let Some(id) = wire.product_id {
        if catalog.row_of(&id).is_none() {
            return Err(ApiError::client(
                404,
                "UnknownProduct",
                Some("productId".into()),
                "productId is not in the catalog",
            ));
        }
        Subject::Product(id.into_owned())
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

    let categories: Vec<String> = wire
        .categories
        .unwrap_or_default()
        .into_iter()
        .map(Cow::into_owned)
        .collect();
    if let Some(i) = categories
        .iter()
        .position(|c| catalog.category_rows(c).is_none())
    {
        return Err(ApiError::client(
            400,
            "UnknownCategory",
            Some(format!("categories[{i}]")),
            format!(
                "categories[{i}] is not a catalog category (category names are case-sensitive; \
                 the catalog's are in its `category` column)"
            ),
        ));
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

    let exclude_ids = wire
        .exclude_ids
        .unwrap_or_default()
        .into_iter()
        .map(Cow::into_owned)
        .collect();

    Ok(Prepared {
        subject,
        top_k,
        categories,
        min_score,
        exclude_ids,
    })
}

fn check_text(text: Str<'_>) -> Result<String, ApiError> {
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
    Ok(text.into_owned())
}

/// Longest base64 of an image within [`MAX_IMAGE_BYTES`] (4 characters per 3 bytes, padded).
const MAX_IMAGE_BASE64: usize = MAX_IMAGE_BYTES.div_ceil(3) * 4;

fn check_image(image: &str) -> Result<Subject, ApiError> {
    // Accept a data URL as browsers produce it (`data:image/png;base64,...`).
    let b64 = match image.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map_or(rest, |(_, data)| data),
        None => image,
    };
    // Line-wrapped base64 (MIME) is accepted; the whitespace goes before anything else.
    let b64: Cow<'_, str> = if b64.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(b64.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(b64)
    };
    if b64.is_empty() {
        return Err(ApiError::invalid("image", "image is empty"));
    }
    // Refuse oversize input before decoding any of it (4 base64 characters carry 3 bytes).
    if b64.len() > MAX_IMAGE_BASE64 {
        return Err(ApiError::client(
            413,
            "PayloadTooLarge",
            Some("image".into()),
            format!(
                "image is about {} bytes decoded, at most {MAX_IMAGE_BYTES} (4 MiB, so that its \
                 base64 fits Lambda's 6 MB invocation payload)",
                b64.len() / 4 * 3
            ),
        ));
    }
    let invalid = || ApiError::invalid("image", "image is not valid standard base64");
    // Checked in chunks through a small buffer, never holding the decoded image (Bedrock takes
    // the base64 as it is); the format comes from the first chunk, so a payload that is no
    // image is refused after reading 4 KiB of it.
    const CHUNK: usize = 4 * 1024;
    let mut buf = [0u8; CHUNK / 4 * 3];
    let mut format = None;
    for (i, chunk) in b64.as_bytes().chunks(CHUNK).enumerate() {
        let last = (i + 1) * CHUNK >= b64.len();
        if !last && chunk.contains(&b'=') {
            return Err(invalid());
        }
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(chunk, &mut buf)
            .map_err(|_| invalid())?;
        if i == 0 {
            format = Some(ImageFormat::sniff(&buf[..n]).ok_or_else(|| {
                ApiError::client(
                    415,
                    "UnsupportedImage",
                    Some("image".into()),
                    "image is not a PNG, JPEG, GIF or WebP image",
                )
            })?);
        }
    }
    let Some(format) = format else {
        return Err(invalid());
    };
    Ok(Subject::Image {
        base64: b64.into_owned(),
        format,
    })
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
        parse_bytes(&serde_json::to_vec(&v).expect("json"))
    }

    fn parse_bytes(bytes: &[u8]) -> Result<Prepared, ApiError> {
        match parse_event(bytes, &catalog(), 50)? {
            Event::Direct(p) => Ok(p),
            Event::Http { .. } => panic!("not an HTTP event"),
        }
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
            (
                json!({"productId": "a", "categories": "hats"}),
                "categories",
                400,
            ),
            (json!({"productId": "a", "topK": 2.5}), "topK", 400),
            (json!({"productId": 7}), "productId", 400),
            (json!({"vector": [1, 2, 3, 4]}), "vector", 400),
            (
                json!({"productId": "a", "excludeIds": vec!["x"; MAX_EXCLUDE_IDS + 1]}),
                "excludeIds",
                400,
            ),
            (
                json!({"productId": "a", "categories": vec!["hats"; MAX_CATEGORIES + 1]}),
                "categories",
                400,
            ),
            (
                json!({"productId": "x".repeat(MAX_NAME_BYTES + 1)}),
                "productId",
                413,
            ),
            (
                json!({"text": "x".repeat(MAX_TEXT_CHARS * 4 + 1)}),
                "text",
                413,
            ),
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
        let big = "A".repeat(MAX_IMAGE_BASE64 + 4);
        let e = err(json!({ "image": big }));
        assert_eq!((e.status, e.error_type), (413, "PayloadTooLarge"));
        // The largest image fits Lambda's payload as base64 inside a request.
        let request =
            serde_json::to_vec(&json!({ "image": "A".repeat(MAX_IMAGE_BASE64) })).expect("json");
        assert!(request.len() < MAX_REQUEST_BYTES, "{}", request.len());
    }

    #[test]
    fn images_are_checked_to_the_end_and_sniffed_from_the_start() {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(20_000, 7);
        let good = b64(&png);
        assert!(matches!(
            parse(json!({ "image": good })).expect("valid").subject,
            Subject::Image {
                format: ImageFormat::Png,
                ..
            }
        ));
        // Invalid base64 far past the first chunk is still found.
        let mut bad = good.clone();
        bad.replace_range(10_000..10_001, "!");
        assert_eq!(err(json!({ "image": bad })).field.as_deref(), Some("image"));
        // Padding in the middle is not base64 either, even at a chunk boundary.
        let mid = format!("{}=={}", &good[..4094], &good[4096..]);
        assert_eq!(err(json!({ "image": mid })).status, 400);
        // Line-wrapped (MIME) base64 is accepted.
        let wrapped: String = good
            .as_bytes()
            .chunks(76)
            .map(|l| format!("{}\n", std::str::from_utf8(l).expect("ascii")))
            .collect();
        assert!(parse(json!({ "image": wrapped })).is_ok());
    }

    #[test]
    fn non_objects_and_malformed_json_are_refused() {
        let e = err(json!([1, 2]));
        assert!(e.message.contains("an array"), "{e:?}");
        let e = err(json!("text"));
        assert!(e.message.contains("a string"), "{e:?}");
        let e = parse_bytes(b"{\"productId\": ").expect_err("malformed");
        assert_eq!(e.error_type, "InvalidJson");
        let e = parse_bytes(b"{\"productId\": \"a\"} trailing").expect_err("trailing");
        assert_eq!(e.error_type, "InvalidJson");
        assert!(parse_bytes(b"{\"productId\": \"a\"}").is_ok());
        // Deep nesting in a field that is skipped costs no stack (serde_json skips values
        // without recursion): the field is refused as unknown.
        let deep = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            parse_bytes(deep.as_bytes())
                .expect_err("deep")
                .field
                .as_deref(),
            Some("x")
        );
        // In a field that is read, nesting is a type error at the first level.
        let deep = format!(
            "{{\"vector\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse_bytes(deep.as_bytes())
                .expect_err("deep")
                .field
                .as_deref(),
            Some("vector[0]")
        );
    }

    #[test]
    fn keys_given_twice_and_unknown_keys_are_refused() {
        let e = parse_bytes(br#"{"vector": [1, 0, 0], "vector": [0, 1, 0]}"#).expect_err("dup");
        assert_eq!(e.field.as_deref(), Some("vector"), "{e:?}");
        assert!(e.message.contains("twice"), "{e:?}");
        let e = err(json!({"productId": "a", "top_k": 3}));
        assert_eq!(e.field.as_deref(), Some("top_k"));
        // A key that is not a plain name is not shown back.
        let e = err(json!({"productId": "a", "<script>": 1}));
        assert!(
            !e.message.contains("<script>") && e.field.as_deref() != Some("<script>"),
            "{e:?}"
        );
    }

    #[test]
    fn messages_never_quote_the_request_or_list_the_catalog() {
        let secret = "s3cr3t-value";
        let cases = [
            json!({"productId": secret}),
            json!({"productId": "a", "categories": [secret]}),
            json!({"productId": "a", "topK": secret}),
            json!({"vector": [1, secret, 3]}),
            json!({"image": format!("{secret}!!")}),
            json!({"text": 5, "productId": secret}),
            json!(secret),
        ];
        for case in cases {
            let e = err(case.clone());
            let body = e.body("req-1").to_string();
            assert!(!body.contains(secret), "{case}: {body}");
            assert!(
                !body.contains("shoes") && !body.contains("hats"),
                "{case}: {body}"
            );
        }
    }

    #[test]
    fn an_event_over_the_payload_limit_is_refused_unread() {
        let mut big = b"{\"text\": \"".to_vec();
        big.resize(MAX_REQUEST_BYTES + 1, b'x');
        // Not even valid JSON: the size is checked first.
        let e = parse_bytes(&big).expect_err("too large");
        assert_eq!((e.status, e.error_type), (413, "PayloadTooLarge"));
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_event() {
        let bytes = br#"{"productId": "a", "excludeIds": ["b", "c\u0041"]}"#;
        let fields = read(bytes, 3, Mode::Event, "the event").expect("valid");
        assert!(matches!(fields.product_id, Some(Cow::Borrowed("a"))));
        let ids = fields.exclude_ids.expect("ids");
        assert!(matches!(ids[0], Cow::Borrowed("b")));
        assert_eq!(ids[1], "cA");
    }

    #[test]
    fn throttling_is_not_the_callers_fault() {
        assert!(ApiError::invalid("topK", "x").is_client_error());
        assert!(!ApiError::server(429, "EmbeddingThrottled", "x").is_client_error());
        assert!(!ApiError::server(502, "EmbeddingFailed", "x").is_client_error());
    }

    #[test]
    fn error_bodies_carry_type_message_field_status_and_request_id() {
        let body = ApiError::invalid("topK", "topK 0 is out of range").body("req-1");
        assert_eq!(
            body,
            json!({"errorType": "InvalidRequest", "message": "topK 0 is out of range",
                   "field": "topK", "statusCode": 400, "requestId": "req-1"})
        );
        let failed = ApiError::server(502, "EmbeddingAccessDenied", "may not invoke")
            .with_detail("arn:aws:iam::123456789012:role/secret-role is not authorized");
        let body = failed.body("req-2").to_string();
        assert!(!body.contains("arn:aws"), "{body}");
        assert!(
            body.contains("req-2") && body.contains("may not invoke"),
            "{body}"
        );
    }
}
