//! `as=Table` responses for `kubectl get`: the CRD's printer columns (dates shown as ages, like
//! the API server's table convertor) and a few built-in column sets.

use jsonpath_rust::JsonPath;
use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceType};
use crate::util::age;

fn col(name: &str, ty: &str, priority: i64, format: &str, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        0,
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.",
    )
}

/// Column definitions and, per row, how to fill the cells.
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    let mut cols = vec![name_col()];
    if let Some(c) = rt.custom() {
        if c.printer_columns.is_empty() {
            cols.push(col("Age", "date", 0, "", ""));
        }
        for p in &c.printer_columns {
            cols.push(col(
                p["name"].as_str().unwrap_or_default(),
                p["type"].as_str().unwrap_or("string"),
                p["priority"].as_i64().unwrap_or(0),
                p["format"].as_str().unwrap_or_default(),
                p["description"].as_str().unwrap_or_default(),
            ));
        }
        return cols;
    }
    let extra: &[(&str, &str)] = match rt.builtin() {
        Some(Builtin::Namespace) => &[("Status", "string")],
        Some(Builtin::ConfigMap) => &[("Data", "string")],
        Some(Builtin::Secret) => &[("Type", "string"), ("Data", "string")],
        Some(Builtin::ServiceAccount) => &[("Secrets", "string")],
        Some(Builtin::Lease) => &[("Holder", "string")],
        Some(Builtin::Event | Builtin::EventsV1) => {
            return vec![
                col("Last Seen", "string", 0, "", ""),
                col("Type", "string", 0, "", ""),
                col("Reason", "string", 0, "", ""),
                col("Object", "string", 0, "", ""),
                col("Message", "string", 0, "", ""),
            ];
        }
        Some(Builtin::Crd | Builtin::ClusterRole | Builtin::Role) => {
            return vec![name_col(), col("Created At", "date", 0, "", "")];
        }
        Some(Builtin::ClusterRoleBinding | Builtin::RoleBinding) => &[("Role", "string")],
        None => &[],
    };
    for (n, t) in extra {
        cols.push(col(n, t, 0, "", ""));
    }
    cols.push(col("Age", "string", 0, "", ""));
    cols
}

fn custom_cell(ty: &str, path: &str, obj: &Value) -> Value {
    let query = format!("${path}");
    let found = obj
        .query(&query)
        .ok()
        .and_then(|r| r.first().map(|v| (*v).clone()));
    let Some(v) = found else { return Value::Null };
    match ty {
        "date" => json!(age(&v)),
        "integer" => v.as_i64().map(Value::from).unwrap_or(Value::Null),
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        _ => match v {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

fn count(v: &Value) -> Value {
    json!(
        v.as_object()
            .map(|m| m.len())
            .or_else(|| v.as_array().map(Vec::len))
            .unwrap_or(0)
    )
}

/// The cells of one row.
pub fn cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    let name = obj["metadata"]["name"].clone();
    let created = age(&obj["metadata"]["creationTimestamp"]);
    if let Some(c) = rt.custom() {
        let mut cells = vec![name];
        if c.printer_columns.is_empty() {
            cells.push(json!(created));
        }
        for p in &c.printer_columns {
            cells.push(custom_cell(
                p["type"].as_str().unwrap_or("string"),
                p["jsonPath"].as_str().unwrap_or_default(),
                obj,
            ));
        }
        return cells;
    }
    match rt.builtin() {
        Some(Builtin::Namespace) => vec![name, obj["status"]["phase"].clone(), json!(created)],
        Some(Builtin::ConfigMap) => {
            let n = count(&obj["data"]).as_u64().unwrap_or(0)
                + count(&obj["binaryData"]).as_u64().unwrap_or(0);
            vec![name, json!(n), json!(created)]
        }
        Some(Builtin::Secret) => vec![
            name,
            obj["type"].clone(),
            count(&obj["data"]),
            json!(created),
        ],
        Some(Builtin::ServiceAccount) => vec![name, count(&obj["secrets"]), json!(created)],
        Some(Builtin::Lease) => vec![name, obj["spec"]["holderIdentity"].clone(), json!(created)],
        Some(b @ (Builtin::Event | Builtin::EventsV1)) => {
            let (regarding, note, last) = if b == Builtin::Event {
                ("involvedObject", "message", &obj["lastTimestamp"])
            } else {
                ("regarding", "note", &obj["eventTime"])
            };
            let last = if last.is_null() {
                &obj["metadata"]["creationTimestamp"]
            } else {
                last
            };
            let r = &obj[regarding];
            vec![
                json!(age(last)),
                obj["type"].clone(),
                obj["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or_default().to_lowercase(),
                    r["name"].as_str().unwrap_or_default()
                )),
                obj[note].clone(),
            ]
        }
        Some(Builtin::Crd | Builtin::ClusterRole | Builtin::Role) => {
            vec![name, obj["metadata"]["creationTimestamp"].clone()]
        }
        Some(Builtin::ClusterRoleBinding | Builtin::RoleBinding) => {
            let role = &obj["roleRef"];
            let role = format!(
                "{}/{}",
                role["kind"].as_str().unwrap_or_default(),
                role["name"].as_str().unwrap_or_default()
            );
            vec![name, json!(role), json!(created)]
        }
        None => vec![name, json!(created)],
    }
}

/// `PartialObjectMetadata` for a row's `object`.
fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

pub fn row(rt: &ResourceType, obj: &Value) -> Value {
    json!({"cells": cells(rt, obj), "object": partial(obj)})
}

/// A whole table for a list page (or a single object).
pub fn table(rt: &ResourceType, objects: &[Value], list_meta: Value, with_columns: bool) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if with_columns { columns(rt) } else { vec![] },
        "rows": objects.iter().map(|o| row(rt, o)).collect::<Vec<_>>(),
    })
}

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// The Table media type matching the request (v1 or v1beta1).
pub fn table_content_type(accept: &str) -> &'static str {
    if accept
        .split(',')
        .next()
        .is_some_and(|f| f.contains("v=v1beta1"))
    {
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    } else {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::from_crd;

    #[test]
    fn printer_columns_follow_the_crd() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}});
        let rt = from_crd(&crd).remove(0);
        let five_min_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(300);
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": five_min_ago.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
            "spec": {"size": 3}, "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let cols = columns(&rt);
        let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["Name", "Ready", "Size", "Age"]);
        assert_eq!(
            cells(&rt, &obj),
            vec![json!("w"), json!("True"), json!(3), json!("5m")]
        );
    }
}
