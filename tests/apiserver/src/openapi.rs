//! OpenAPI v3: the index and one document per group-version. kubectl uses them to delegate field
//! validation to the server (a `patch` operation carrying the GVK and a `fieldValidation`
//! parameter) and for `kubectl explain` (schemas carrying `x-kubernetes-group-version-kind`).

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::registry::{Builtin, Registry, ResourceType};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn schema_name(rt: &ResourceType) -> String {
    match rt.builtin() {
        Some(Builtin::Crd) => format!(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.{}",
            rt.kind
        ),
        Some(_) if rt.group.is_empty() => format!("io.k8s.api.core.{}.{}", rt.version, rt.kind),
        Some(_) => format!(
            "io.k8s.api.{}.{}.{}",
            // The Go package: `rbac` for rbac.authorization.k8s.io, `coordination`, `events`.
            rt.group.split('.').next().unwrap_or_default(),
            rt.version,
            rt.kind
        ),
        None => {
            let reversed: Vec<&str> = rt.group.split('.').rev().collect();
            format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
        }
    }
}

fn gvk(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
}

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
    "properties": {
        "name": s("Name must be unique within a namespace."),
        "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
        "namespace": s("Namespace defines the space within which each name must be unique."),
        "uid": s("UID is the unique in time and space value for this object."),
        "resourceVersion": s("An opaque value that represents the internal version of this object."),
        "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
        "creationTimestamp": s("CreationTimestamp is a timestamp representing the server time when this object was created."),
        "deletionTimestamp": s("DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."),
        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize objects."},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
        "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "description": "Must be empty before the object is deleted from the registry."},
        "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "List of objects depended by this object."},
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."}
    }})
}

/// Top-level fields of the built-ins kubectl applies with strategic merge patches (it looks them
/// up in this document and warns when one is missing).
fn builtin_properties(b: Builtin) -> Value {
    let str_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let refs = json!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    match b {
        Builtin::ConfigMap => {
            json!({"data": str_map, "binaryData": str_map, "immutable": {"type": "boolean"}})
        }
        Builtin::Secret => {
            json!({"data": str_map, "stringData": str_map, "type": {"type": "string"},
            "immutable": {"type": "boolean"}})
        }
        Builtin::Namespace => json!({
            "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}}},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}),
        Builtin::ServiceAccount => json!({"secrets": refs, "imagePullSecrets": refs,
            "automountServiceAccountToken": {"type": "boolean"}}),
        Builtin::Lease => json!({"spec": {"type": "object", "properties": {
            "holderIdentity": {"type": "string"}, "leaseDurationSeconds": {"type": "integer"},
            "acquireTime": {"type": "string"}, "renewTime": {"type": "string"},
            "leaseTransitions": {"type": "integer"}}}}),
        Builtin::ClusterRole | Builtin::Role => json!({"rules": refs,
            "aggregationRule": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
        Builtin::ClusterRoleBinding | Builtin::RoleBinding => json!({"subjects": refs,
            "roleRef": {"type": "object", "properties": {"apiGroup": {"type": "string"},
                "kind": {"type": "string"}, "name": {"type": "string"}}}}),
        Builtin::Event | Builtin::EventsV1 | Builtin::Crd => json!({}),
    }
}

fn resource_schema(rt: &ResourceType) -> Value {
    let mut s = match rt.custom() {
        Some(c) if c.schema.is_object() => c.schema.clone(),
        _ => {
            json!({"type": "object", "description": format!("{} (built-in; fields not described by this test server)", rt.kind)})
        }
    };
    if !s["properties"].is_object() {
        s["properties"] = json!({});
    }
    if let Some(b) = rt.builtin()
        && let Some(props) = builtin_properties(b).as_object()
    {
        for (k, v) in props {
            s["properties"][k] = v.clone();
        }
    }
    s["properties"]["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
    s["properties"]["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
    s["properties"]["metadata"] = json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}],
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"});
    s["x-kubernetes-group-version-kind"] = json!([gvk(rt)]);
    s
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn params(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| query_param(n)).collect())
}

fn item_ops(rt: &ResourceType, schema_ref: &Value) -> Value {
    let mut path_params =
        vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})];
    if rt.namespaced {
        path_params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    let mut patch_types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if !rt.is_custom() {
        patch_types.push("application/strategic-merge-patch+json");
    }
    let content: Map<String, Value> = patch_types
        .into_iter()
        .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
        .collect();
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}});
    json!({
        "get": {"operationId": format!("read{}", rt.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk(rt), "responses": ok},
        "put": {"operationId": format!("replace{}", rt.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk(rt),
            "parameters": params(&["dryRun", "fieldManager", "fieldValidation"]),
            "requestBody": {"content": {"application/json": {"schema": schema_ref}}}, "responses": ok},
        "patch": {"operationId": format!("patch{}", rt.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk(rt),
            "parameters": params(&["dryRun", "fieldManager", "fieldValidation", "force"]),
            "requestBody": {"content": content, "required": true}, "responses": ok},
        "delete": {"operationId": format!("delete{}", rt.kind), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk(rt),
            "parameters": params(&["dryRun", "gracePeriodSeconds", "propagationPolicy"]), "responses": ok},
        "parameters": path_params,
    })
}

/// The OpenAPI v3 document of one group-version, or `None` when it is not served.
pub fn document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = reg.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for rt in types {
        let name = schema_name(rt);
        let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        schemas.insert(name.clone(), resource_schema(rt));
        schemas.insert(format!("{name}List"), json!({"type": "object", "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version, "kind": rt.list_kind}],
            "properties": {"items": {"type": "array", "items": schema_ref}}}));
        let base = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        paths.insert(base.clone(), json!({
            "get": {"operationId": format!("list{}", rt.kind), "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk(rt),
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}List")}}}}}},
            "post": {"operationId": format!("create{}", rt.kind), "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk(rt),
                "parameters": params(&["dryRun", "fieldManager", "fieldValidation"]),
                "requestBody": {"content": {"application/json": {"schema": schema_ref}}},
                "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": schema_ref}}}}}
        }));
        paths.insert(format!("{base}/{{name}}"), item_ops(rt, &schema_ref));
        if rt.status_subresource {
            paths.insert(format!("{base}/{{name}}/status"), item_ops(rt, &schema_ref));
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0-lmi-test"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: every served group-version with a content-hash URL.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, versions) in reg.groups() {
        for v in versions {
            let Some(doc) = document(reg, &g, &v) else {
                continue;
            };
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_carry_gvk_and_field_validation() {
        let reg = Registry::new(&[]);
        let doc = document(&reg, "", "v1").unwrap();
        let op = &doc["paths"]["/api/v1/namespaces/{name}"]["patch"];
        assert_eq!(
            op["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Namespace"})
        );
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(
            index(&reg)["paths"]["apis/apiextensions.k8s.io/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .contains("?hash=")
        );
    }
}
