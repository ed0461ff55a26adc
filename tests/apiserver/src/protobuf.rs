//! The protobuf bodies real clients send here: `kubectl create namespace|configmap|secret` post
//! `application/vnd.kubernetes.protobuf` (`k8s\0` + runtime.Unknown). Decoded into JSON; other
//! kinds are refused with 415.

use serde_json::{Map, Value, json};

use crate::status::{ApiError, ApiResult};

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
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
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let end = self.pos.checked_add(len)?;
                let s = self.buf.get(self.pos..end)?;
                self.pos = end;
                Field::Bytes(s)
            }
            1 => {
                self.pos += 8;
                Field::Varint(0)
            }
            5 => {
                self.pos += 4;
                Field::Varint(0)
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
    bytes_map(entries, false)
}

/// A `map<string, string|bytes>`; bytes values become base64 as in JSON.
fn bytes_map(entries: &[&[u8]], base64_values: bool) -> Option<Value> {
    use base64::Engine;
    let mut m = Map::new();
    for e in entries {
        let (mut k, mut v) = (String::new(), String::new());
        for (n, f) in fields(e)? {
            if let Field::Bytes(b) = f {
                match n {
                    1 => k = text(b)?,
                    2 if base64_values => v = base64::engine::general_purpose::STANDARD.encode(b),
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

/// Decodes a protobuf-encoded Namespace, ConfigMap or Secret into its JSON form.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let bad = || ApiError::bad_request("unable to decode the protobuf body");
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
    let kind = type_meta.1.clone();
    if type_meta.0 != "v1" || !matches!(kind.as_str(), "Namespace" | "ConfigMap" | "Secret") {
        return Err(ApiError::unsupported_media_type(
            "application/vnd.kubernetes.protobuf",
        ));
    }
    let mut obj = json!({"apiVersion": "v1", "kind": kind, "metadata": {}});
    let mut maps: [Vec<&[u8]>; 5] = Default::default();
    for (n, f) in fields(raw).ok_or_else(bad)? {
        match (kind.as_str(), n, f) {
            (_, 1, Field::Bytes(b)) => obj["metadata"] = object_meta(b).ok_or_else(bad)?,
            ("Namespace", 2, Field::Bytes(b)) => {
                let fins: Vec<Value> = fields(b)
                    .ok_or_else(bad)?
                    .into_iter()
                    .filter_map(|(n, f)| match (n, f) {
                        (1, Field::Bytes(s)) => text(s).map(Value::String),
                        _ => None,
                    })
                    .collect();
                if !fins.is_empty() {
                    obj["spec"] = json!({"finalizers": fins});
                }
            }
            ("ConfigMap", 2 | 3, Field::Bytes(b)) | ("Secret", 2 | 4, Field::Bytes(b)) => {
                maps[n as usize].push(b)
            }
            ("Secret", 3, Field::Bytes(b)) => obj["type"] = json!(text(b).ok_or_else(bad)?),
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                obj["immutable"] = json!(v != 0)
            }
            _ => {}
        }
    }
    let named: &[(usize, &str, bool)] = match kind.as_str() {
        "ConfigMap" => &[(2, "data", false), (3, "binaryData", true)],
        "Secret" => &[(2, "data", true), (4, "stringData", false)],
        _ => &[],
    };
    for (n, name, b64) in named {
        if !maps[*n].is_empty() {
            obj[*name] = bytes_map(&maps[*n], *b64).ok_or_else(bad)?;
        }
    }
    Ok(obj)
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
        let ns = decode(&body).unwrap();
        assert_eq!(
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
        );
    }

    #[test]
    fn decodes_a_config_map_with_data() {
        // ConfigMap{metadata{name:"c"}, data{"a":"b"}, immutable:true}
        let cm = [
            vec![0x0a, 0x03, 0x0a, 0x01, b'c'],
            vec![0x12, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b'],
            vec![0x20, 0x01],
        ]
        .concat();
        let tm = [
            vec![0x0a, 0x02],
            b"v1".to_vec(),
            vec![0x12, 0x09],
            b"ConfigMap".to_vec(),
        ]
        .concat();
        let unknown = [
            vec![0x0a, tm.len() as u8],
            tm,
            vec![0x12, cm.len() as u8],
            cm,
        ]
        .concat();
        let body = [b"k8s\0".to_vec(), unknown].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}, "immutable": true})
        );
    }

    #[test]
    fn garbage_is_a_bad_request_not_a_panic() {
        assert_eq!(decode(b"k8s\0\xff\xff\xff").unwrap_err().code, 400);
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
    }
}
