//! The one protobuf body real clients send here: `kubectl create namespace` posts a Namespace as
//! `application/vnd.kubernetes.protobuf` (`k8s\0` + runtime.Unknown). Decoded into JSON; other
//! protobuf bodies are refused with 415.

use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// Next (field number, value); skips fixed-width fields.
    fn next(&mut self) -> Option<Option<(u64, Field<'a>)>> {
        if self.pos >= self.buf.len() {
            return Some(None);
        }
        let tag = self.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let f = match wire {
            0 => {
                self.varint()?;
                Field::Varint
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let end = self.pos.checked_add(len)?;
                let s = self.buf.get(self.pos..end)?;
                self.pos = end;
                Field::Bytes(s)
            }
            1 => {
                self.pos += 8;
                Field::Varint
            }
            5 => {
                self.pos += 4;
                Field::Varint
            }
            _ => return None,
        };
        Some(Some((num, f)))
    }
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Some(out)
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

fn string_map(entries: &[&[u8]]) -> Option<Value> {
    let mut m = Map::new();
    for e in entries {
        let (mut k, mut v) = (String::new(), String::new());
        for (n, f) in fields(e)? {
            if let Field::Bytes(b) = f {
                match n {
                    1 => k = text(b)?,
                    2 => v = text(b)?,
                    _ => {}
                }
            }
        }
        m.insert(k, json!(v));
    }
    Some(Value::Object(m))
}

fn object_meta(buf: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Vec::new(), Vec::new(), Vec::new());
    for (n, f) in fields(buf)? {
        match (n, f) {
            (1, Field::Bytes(b)) => drop(meta.insert("name".into(), json!(text(b)?))),
            (2, Field::Bytes(b)) => drop(meta.insert("generateName".into(), json!(text(b)?))),
            (3, Field::Bytes(b)) => drop(meta.insert("namespace".into(), json!(text(b)?))),
            (11, Field::Bytes(b)) => labels.push(b),
            (12, Field::Bytes(b)) => annotations.push(b),
            (14, Field::Bytes(b)) => finalizers.push(json!(text(b)?)),
            _ => {}
        }
    }
    meta.retain(|_, v| v.as_str().is_none_or(|s| !s.is_empty()));
    if !labels.is_empty() {
        meta.insert("labels".into(), string_map(&labels)?);
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), string_map(&annotations)?);
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

/// Decodes a protobuf-encoded Namespace into its JSON form.
pub fn decode_namespace(body: &[u8]) -> ApiResult<Value> {
    let bad = || ApiError::bad_request("unable to decode the protobuf body as a v1 Namespace");
    let payload = body.strip_prefix(b"k8s\0").ok_or_else(bad)?;
    let mut type_meta = (String::new(), String::new());
    let mut raw: &[u8] = &[];
    for (n, f) in fields(payload).ok_or_else(bad)? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                for (tn, tf) in fields(b).ok_or_else(bad)? {
                    if let Field::Bytes(s) = tf {
                        let s = text(s).ok_or_else(bad)?;
                        match tn {
                            1 => type_meta.0 = s,
                            2 => type_meta.1 = s,
                            _ => {}
                        }
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if type_meta != ("v1".to_string(), "Namespace".to_string()) {
        return Err(ApiError::unsupported_media_type(
            "application/vnd.kubernetes.protobuf",
        ));
    }
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}});
    for (n, f) in fields(raw).ok_or_else(bad)? {
        match (n, f) {
            (1, Field::Bytes(b)) => ns["metadata"] = object_meta(b).ok_or_else(bad)?,
            (2, Field::Bytes(b)) => {
                let fins: Vec<Value> = fields(b)
                    .ok_or_else(bad)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => text(s).map(Value::String),
                        _ => None,
                    })
                    .collect();
                if !fins.is_empty() {
                    ns["spec"] = json!({"finalizers": fins});
                }
            }
            _ => {}
        }
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_what_kubectl_create_namespace_sends() {
        // Captured from kubectl v1.35.2 `create namespace x`.
        let body = hex(
            "6b387300 0a0f0a0276311209 4e616d657370616365 12190a110a017812001a0022002a0032003800420012001a020a001a002200",
        );
        let ns = decode_namespace(&body).unwrap();
        assert_eq!(
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        );
    }

    #[test]
    fn garbage_is_a_bad_request_not_a_panic() {
        assert_eq!(
            decode_namespace(b"k8s\0\xff\xff\xff").unwrap_err().code,
            400
        );
        assert_eq!(decode_namespace(b"nope").unwrap_err().code, 400);
    }
}
