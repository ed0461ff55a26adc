//! Turning a request body into a storable object, as the API server's decode → prune → default →
//! validate chain does: built-ins round-trip through their k8s-openapi types (unknown fields
//! dropped, wrong types refused); custom resources are pruned, defaulted and validated against the
//! CRD schema and its CEL rules.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::cel::{RootContext, Validator, apply_defaults};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceType};
use crate::schema;
use crate::status::{ApiError, ApiResult, FieldError};

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Valid values are Ignore, Warn, Strict"
            ))),
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(rt: &ResourceType, v: &Value) -> ApiResult<Value> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })?;
    serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))
}

/// Paths present in `input` but missing from `output` (fields the typed decode dropped).
fn dropped_paths(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    if let (Value::Object(i), Value::Object(o)) = (input, output) {
        for (k, v) in i {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match o.get(k) {
                None if !v.is_null() => out.push(p),
                Some(ov) => dropped_paths(v, ov, &p, out),
                None => {}
            }
        }
    } else if let (Value::Array(i), Value::Array(o)) = (input, output) {
        for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
            dropped_paths(iv, ov, &format!("{path}[{n}]"), out);
        }
    }
}

/// Applies `fieldValidation` to the unknown fields found while decoding.
fn unknown_fields(
    rt: &ResourceType,
    unknown: Vec<String>,
    fv: FieldValidation,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    if unknown.is_empty() || fv == FieldValidation::Ignore {
        return Ok(());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field \"{p}\""))
        .collect();
    if fv == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            rt.kind,
            rt.version,
            rt.kind,
            msgs.join(", ")
        )));
    }
    warnings.extend(msgs);
    Ok(())
}

/// Decodes `metadata` through `ObjectMeta` (type errors refused, unknown fields dropped).
fn normalize_metadata(
    rt: &ResourceType,
    obj: &mut Value,
    unknown: &mut Vec<String>,
) -> ApiResult<()> {
    let meta_in = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if !meta_in.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
            rt.kind, rt.version, rt.kind
        )));
    }
    let meta = roundtrip::<ObjectMeta>(rt, &meta_in)?;
    dropped_paths(&meta_in, &meta, "metadata", unknown);
    obj["metadata"] = meta;
    Ok(())
}

/// Decodes, prunes and defaults a body into the object to store (no validation yet).
pub fn decode(
    rt: &ResourceType,
    obj: Value,
    fv: FieldValidation,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    decode_with(rt, obj, fv, warnings, true)
}

/// Like [`decode`]; `defaults: false` for server-side apply configurations (defaults belong to
/// no manager).
pub fn decode_with(
    rt: &ResourceType,
    mut obj: Value,
    fv: FieldValidation,
    warnings: &mut Vec<String>,
    defaults: bool,
) -> ApiResult<Value> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let mut unknown = Vec::new();
    normalize_metadata(rt, &mut obj, &mut unknown)?;
    let out = match (rt.builtin(), rt.custom()) {
        (Some(b), _) => {
            let typed = match b {
                Builtin::Namespace => roundtrip::<Namespace>(rt, &obj)?,
                Builtin::Event => roundtrip::<Event>(rt, &obj)?,
                Builtin::EventsV1 => roundtrip::<EventV1>(rt, &obj)?,
                Builtin::Secret => roundtrip::<Secret>(rt, &obj)?,
                Builtin::ConfigMap => roundtrip::<ConfigMap>(rt, &obj)?,
                Builtin::ServiceAccount => roundtrip::<ServiceAccount>(rt, &obj)?,
                Builtin::Lease => roundtrip::<Lease>(rt, &obj)?,
                Builtin::Crd => roundtrip::<CustomResourceDefinition>(rt, &obj)?,
                Builtin::ClusterRole => roundtrip::<ClusterRole>(rt, &obj)?,
                Builtin::ClusterRoleBinding => roundtrip::<ClusterRoleBinding>(rt, &obj)?,
                Builtin::Role => roundtrip::<Role>(rt, &obj)?,
                Builtin::RoleBinding => roundtrip::<RoleBinding>(rt, &obj)?,
            };
            dropped_paths(&obj, &typed, "", &mut unknown);
            typed
        }
        (None, Some(custom)) => {
            let mut pruned = Vec::new();
            schema::prune(&custom.schema, &mut obj, "", true, &mut pruned);
            unknown.extend(pruned);
            if !defaults {
                obj
            } else {
                let meta = obj["metadata"].take();
                let mut defaulted = apply_defaults(&custom.schema, &obj);
                defaulted["metadata"] = meta;
                defaulted
            }
        }
        (None, None) => obj,
    };
    unknown_fields(rt, unknown, fv, warnings)?;
    Ok(out)
}

/// Validates a decoded custom resource (schema and CEL; `old` enables transition rules).
/// Returns the field errors, empty when valid.
pub fn validate_custom(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Some(custom) = rt.custom() else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    schema::validate(&custom.schema, obj, "", &mut errs);
    if !errs.is_empty() {
        // Like the API server, CEL rules only run on objects that pass the OpenAPI checks.
        return errs;
    }
    let root = RootContext {
        api_version: rt.api_version(),
        api_group: rt.group.clone(),
        kind: rt.kind.clone(),
    };
    if let Err(cel) = Validator::new().validate_with_context(&custom.schema, obj, old, Some(&root))
    {
        for e in cel.iter() {
            let path = if e.field_path.is_empty() {
                "<nil>".to_string()
            } else {
                e.field_path.clone()
            };
            let ty = schema::node_at(&custom.schema, &e.field_path)
                .and_then(|n| n["type"].as_str())
                .unwrap_or("object")
                .to_string();
            let fe = match e.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(&path, &e.message),
                Some("FieldValueRequired") => FieldError::required(&path, &e.message),
                Some("FieldValueDuplicate") => FieldError::duplicate(&path, &Value::String(ty)),
                _ => FieldError::invalid(&path, &Value::String(ty), &e.message),
            };
            errs.push(fe);
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CustomVersion, Source};
    use std::sync::Arc;

    fn custom_rt(schema: Value) -> ResourceType {
        ResourceType {
            group: "example.com".into(),
            version: "v1".into(),
            plural: "widgets".into(),
            singular: "widget".into(),
            kind: "Widget".into(),
            list_kind: "WidgetList".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            status_subresource: true,
            source: Source::Custom(Arc::new(CustomVersion {
                schema,
                printer_columns: vec![],
                selectable_fields: vec![],
            })),
        }
    }

    fn widget_schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer", "default": 3},
            "zone": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "zone is immutable"}]}
        }}}})
    }

    #[test]
    fn custom_resources_are_pruned_and_defaulted() {
        let rt = custom_rt(widget_schema());
        let mut warnings = Vec::new();
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "bogus": 1}, "spec": {"zone": "a", "x": 1}});
        let out = decode(&rt, obj.clone(), FieldValidation::Warn, &mut warnings).unwrap();
        assert_eq!(out["spec"], json!({"zone": "a", "size": 3}));
        assert_eq!(
            warnings,
            vec![
                "unknown field \"metadata.bogus\"",
                "unknown field \"spec.x\""
            ]
        );
        let err = decode(&rt, obj, FieldValidation::Strict, &mut Vec::new()).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains(
                "strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.x\""
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn transition_rules_see_the_old_object() {
        let rt = custom_rt(widget_schema());
        let old = json!({"spec": {"zone": "a", "size": 3}});
        let new = json!({"spec": {"zone": "b", "size": 3}});
        assert!(validate_custom(&rt, &new, None).is_empty());
        let errs = validate_custom(&rt, &new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].line(),
            "spec.zone: Invalid value: \"string\": zone is immutable"
        );
    }

    #[test]
    fn builtins_refuse_wrong_types() {
        let rt = crate::registry::builtins()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap();
        let err = decode(
            &rt,
            json!({"metadata": {"name": "c"}, "data": {"a": 1}}),
            FieldValidation::Strict,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap"),
            "{}",
            err.message
        );
    }
}
