//! Non-apply patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and the strategic merge
//! patch kubectl sends for built-in kinds (maps merge; `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList` and `$setElementOrder` directives; lists merged by key where the
//! built-in type says so).

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

pub fn parse_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902, with one Go json-patch leniency clients rely on: a `test` of `null` passes when
/// the path is absent (kube's finalizer helper tests `/metadata/finalizers` against null).
pub fn json_patch(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut work = target.clone();
    for op in p.0 {
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && work.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        apply_one(&mut work, op)?;
    }
    *target = work;
    Ok(())
}

fn apply_one(target: &mut Value, op: json_patch::PatchOperation) -> ApiResult<()> {
    json_patch::patch(target, &[op]).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
        )
    })
}

/// Merge keys of built-in lists (`patchMergeKey`); `""` marks a merged list of primitives.
fn merge_key(path: &str) -> Option<&'static str> {
    match path {
        "metadata.ownerReferences" => Some("uid"),
        "metadata.finalizers" => Some(""),
        "secrets" | "imagePullSecrets" => Some("name"),
        "spec.versions" => Some("name"),
        _ => None,
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

/// Applies a strategic merge patch to a built-in object.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> ApiResult<()> {
    smp_map(target, patch, "")
}

fn smp_map(target: &mut Value, patch: &Value, path: &str) -> ApiResult<()> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys")
        && let Value::Object(t) = target
    {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Value::Array(del)) =
                (target.get_mut(field).and_then(Value::as_array_mut), v)
            {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        let child_path = join(path, k);
        let Value::Object(t) = target else { break };
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                smp_map(existing, v, &child_path)?
            }
            (Some(Value::Array(existing)), Value::Array(items)) => match merge_key(&child_path) {
                Some("") => {
                    for it in items {
                        if !existing.contains(it) {
                            existing.push(it.clone());
                        }
                    }
                }
                Some(key) => smp_list(existing, items, key, &child_path)?,
                None => *existing = items.clone(),
            },
            _ => {
                let mut fresh = Value::Null;
                smp_fresh(&mut fresh, v, &child_path)?;
                t.insert(k.clone(), fresh);
            }
        }
    }
    Ok(())
}

/// A patch value landing where nothing was: directives stripped.
fn smp_fresh(target: &mut Value, patch: &Value, path: &str) -> ApiResult<()> {
    match patch {
        Value::Object(_) => {
            *target = Value::Object(Map::new());
            smp_map(target, patch, path)
        }
        Value::Array(items) => {
            *target = Value::Array(
                items
                    .iter()
                    .filter(|i| i.get("$patch").is_none())
                    .cloned()
                    .collect(),
            );
            Ok(())
        }
        other => {
            *target = other.clone();
            Ok(())
        }
    }
}

fn smp_list(existing: &mut Vec<Value>, items: &[Value], key: &str, path: &str) -> ApiResult<()> {
    for it in items {
        let id = &it[key];
        let pos = existing.iter().position(|e| &e[key] == id);
        match (it.get("$patch").and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                existing.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => smp_map(&mut existing[i], it, path)?,
            (_, None) => {
                let mut fresh = Value::Null;
                smp_fresh(&mut fresh, it, path)?;
                existing.push(fresh);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_handles_kubectl_directives() {
        let mut obj = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "finalizers": ["f1"],
            "annotations": {"k": "v"}}, "data": {"a": "1", "b": "2"}});
        let patch = json!({"metadata": {"labels": {"y": null, "z": "3"}, "finalizers": ["f2"],
            "$setElementOrder/finalizers": ["f1", "f2"]}, "data": {"$patch": "replace", "c": "3"}});
        strategic_merge(&mut obj, &patch).unwrap();
        assert_eq!(obj["metadata"]["labels"], json!({"x": "1", "z": "3"}));
        assert_eq!(obj["metadata"]["finalizers"], json!(["f1", "f2"]));
        assert_eq!(obj["data"], json!({"c": "3"}));
        let del = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}});
        strategic_merge(&mut obj, &del).unwrap();
        assert_eq!(obj["metadata"]["finalizers"], json!(["f2"]));
    }

    #[test]
    fn json_patch_test_failure_is_a_422() {
        let mut obj = json!({"a": 1});
        let err =
            json_patch(&mut obj, &json!([{"op": "test", "path": "/a", "value": 2}])).unwrap_err();
        assert_eq!(err.code, 422);
    }
}
