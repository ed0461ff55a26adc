//! Kind-specific rules applied on every write (the API server's "strategies"): namespace
//! existence and termination, built-in defaults and conversions, CRD checks, and the validation
//! chain (metadata, finalizers while deleting, schema and CEL).

use serde_json::{Value, json};

use crate::admission;
use crate::meta;
use crate::registry::{Builtin, ResourceType};
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{ObjKey, Store};

pub fn check_namespace(store: &Store, rt: &ResourceType, namespace: &str) -> ApiResult<()> {
    if !rt.namespaced {
        return Ok(());
    }
    match store.get(&ObjKey::new("", "namespaces", "", namespace)) {
        None => Err(ApiError::not_found("", "namespaces", namespace)),
        Some(ns) if ns["metadata"]["deletionTimestamp"].is_string() => Err(ApiError::forbidden(format!(
            "{} {} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            crate::status::qualified(&rt.group, &rt.plural),
            crate::status::go_quote(store_name_hint(rt)),
        ))
        .with_details(json!({"kind": rt.plural, "group": rt.group}))),
        Some(_) => Ok(()),
    }
}

fn store_name_hint(rt: &ResourceType) -> &str {
    &rt.singular
}

/// Kind-specific defaults and conversions done by built-in strategies.
pub fn prepare_builtin(rt: &ResourceType, obj: &mut Value, creating: bool) {
    match rt.builtin() {
        Some(Builtin::Namespace) => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            if creating {
                if obj["spec"]["finalizers"].is_null() {
                    obj["spec"]["finalizers"] = json!(["kubernetes"]);
                }
                obj["status"] = json!({"phase": "Active"});
            }
        }
        Some(Builtin::Secret) => {
            if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
                use base64::Engine;
                for (k, v) in sd {
                    let enc = base64::engine::general_purpose::STANDARD
                        .encode(v.as_str().unwrap_or_default());
                    obj["data"][k] = json!(enc);
                }
                if let Some(m) = obj.as_object_mut() {
                    m.remove("stringData");
                }
            }
            if obj["type"].as_str().is_none_or(str::is_empty) {
                obj["type"] = json!("Opaque");
            }
        }
        Some(Builtin::Crd) if creating => {
            obj["status"] = json!({
                "acceptedNames": obj["spec"]["names"].clone(),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": crate::util::now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": crate::util::now()},
                ],
                "storedVersions": obj["spec"]["versions"].as_array().into_iter().flatten()
                    .filter(|v| v["storage"] == json!(true)).map(|v| v["name"].clone()).collect::<Vec<_>>(),
            });
        }
        _ => {}
    }
}

/// CRD-specific checks (the parts of CRD validation that matter to tests).
fn validate_crd(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural", ""));
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        errs.push(FieldError::required("spec.names.kind", ""));
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
    {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!("array"),
            "must have exactly one version marked as storage version",
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        errs.push(FieldError::not_supported(
            "spec.scope",
            &spec["scope"],
            &["Cluster".into(), "Namespaced".into()],
        ));
    }
    errs
}

pub fn validate_all(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let mut errs = meta::validate(rt, obj);
    if rt.builtin() == Some(Builtin::Crd) {
        errs.extend(validate_crd(obj));
    }
    if let Some(old) = old {
        let old_fin: Vec<&Value> = old["metadata"]["finalizers"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if old["metadata"]["deletionTimestamp"].is_string()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|a| a.iter().any(|f| !old_fin.contains(&f)))
        {
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                "no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    errs.extend(admission::validate_custom(rt, obj, old));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            obj["metadata"]["name"].as_str().unwrap_or_default(),
            &errs,
        ))
    }
}

/// Checks `apiVersion`/`kind` of a body against the URL's resource, and that the body is an
/// object whose `metadata` (if any) is an object.
pub fn check_type(rt: &ResourceType, body: &Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the body must be a JSON object",
            rt.kind, rt.version, rt.kind
        )));
    }
    if body
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
            rt.kind, rt.version, rt.kind
        )));
    }
    let av = body["apiVersion"].as_str().unwrap_or_default();
    let kind = body["kind"].as_str().unwrap_or_default();
    if !av.is_empty() && av != rt.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}
