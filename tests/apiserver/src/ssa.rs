//! Managed fields and server-side apply: who owns which field, the merge of an applied
//! configuration into the live object (list-maps by key, sets by value), conflicts between
//! managers (409 unless `force`), and removal of fields an applier stopped setting.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::fieldset::{self, FieldSet, Path, Pe};
use crate::status::{ApiError, ApiResult, go_quote};

#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Option<Self> {
        Some(Self {
            manager: v["manager"].as_str()?.to_string(),
            operation: v["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: v["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: v["time"].as_str().unwrap_or_default().to_string(),
            subresource: v["subresource"].as_str().unwrap_or_default().to_string(),
            fields: FieldSet::from_fields_v1(&v["fieldsV1"]),
        })
    }
    fn to_json(&self) -> Value {
        let mut m = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty() {
            m["subresource"] = json!(self.subresource);
        }
        m
    }
    fn is(&self, manager: &str, operation: &str, sub: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == sub
    }
    /// How the API server names a manager in conflict messages.
    fn describe(&self) -> String {
        let mut s = go_quote(&self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {}", go_quote(&self.subresource));
        }
        if self.operation == "Update" {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }
}

/// What a write may touch: the main resource or the status subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything but `status` when the kind has a status subresource.
    Main {
        status_subresource: bool,
    },
    Status,
}

impl Scope {
    pub fn subresource(self) -> &'static str {
        match self {
            Scope::Main { .. } => "",
            Scope::Status => "status",
        }
    }
}

/// The member paths of `obj` that a write in `scope` can own.
fn scoped_fields(schema: &Value, obj: &Value, scope: Scope) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        let include = match (k.as_str(), scope) {
            ("apiVersion" | "kind", _) => false,
            ("metadata", Scope::Main { .. }) => true,
            ("status", Scope::Status) => true,
            (_, Scope::Status) => false,
            ("status", Scope::Main { status_subresource }) => !status_subresource,
            _ => true,
        };
        if !include {
            continue;
        }
        let mut prefix = vec![Pe::Field(k.clone())];
        if k == "metadata" {
            let hint = fieldset::metadata_hint();
            for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                if let Some(mv) = v.get(mk) {
                    prefix.push(Pe::Field(mk.into()));
                    fieldset::fields_of(&hint["properties"][mk], mv, &mut prefix, &mut out);
                    prefix.pop();
                }
            }
        } else {
            fieldset::fields_of(&schema["properties"][k], v, &mut prefix, &mut out);
        }
    }
    out
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o["metadata"]["managedFields"].as_array())
        .map(|a| a.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records a non-apply write (create, update, patch) by `manager`: it takes the fields whose
/// values it changed, and removed fields leave every manager.
pub fn record_update(
    schema: &Value,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    scope: Scope,
    api_version: &str,
) {
    let mut list = entries(old);
    let new_fields = scoped_fields(schema, new, scope);
    let old_fields = old
        .map(|o| scoped_fields(schema, o, scope))
        .unwrap_or_default();
    let changed: BTreeSet<Path> = new_fields
        .iter()
        .filter(|p| old.and_then(|o| fieldset::get(o, p, schema)) != fieldset::get(new, p, schema))
        .cloned()
        .collect();
    let removed: BTreeSet<Path> = old_fields.difference(&new_fields).cloned().collect();
    let sub = scope.subresource();
    for e in list.iter_mut() {
        let is_updater = e.is(manager, "Update", sub);
        e.fields
            .0
            .retain(|p| !removed.contains(p) && (is_updater || !changed.contains(p)));
    }
    if !changed.is_empty() {
        let now = crate::util::now();
        match list.iter_mut().find(|e| e.is(manager, "Update", sub)) {
            Some(e) => {
                e.fields.0.extend(changed);
                e.time = now;
                e.api_version = api_version.to_string();
            }
            None => list.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now,
                subresource: sub.to_string(),
                fields: FieldSet(changed),
            }),
        }
    }
    store_entries(new, list);
}

/// Merges an applied configuration into `target` (list-maps by key, sets by value).
fn merge(schema: &Value, target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a))
            if schema["x-kubernetes-map-type"] != json!("atomic") =>
        {
            for (k, av) in a {
                let cs = schema["properties"]
                    .get(k)
                    .or_else(|| schema.get("additionalProperties").filter(|x| x.is_object()))
                    .unwrap_or(&Value::Null);
                match t.get_mut(k) {
                    Some(tv) => merge(cs, tv, av),
                    None => {
                        t.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(a)) if schema["x-kubernetes-list-type"] == json!("map") => {
            for it in a {
                let key = fieldset::item_key(schema, it);
                match t.iter_mut().find(|x| fieldset::item_key(schema, x) == key) {
                    Some(existing) => merge(&schema["items"], existing, it),
                    None => t.push(it.clone()),
                }
            }
        }
        (Value::Array(t), Value::Array(a)) if schema["x-kubernetes-list-type"] == json!("set") => {
            for it in a {
                if !t.contains(it) {
                    t.push(it.clone());
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// The parts of an applied configuration a write in `scope` may set.
fn scoped_config(applied: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    if let Some(m) = applied.as_object() {
        for (k, v) in m {
            let keep = match (k.as_str(), scope) {
                ("apiVersion" | "kind", _) => false,
                ("metadata", Scope::Main { .. }) => true,
                ("metadata", Scope::Status) => false,
                ("status", Scope::Status) => true,
                (_, Scope::Status) => false,
                ("status", Scope::Main { status_subresource }) => !status_subresource,
                _ => true,
            };
            if keep {
                let v = if k == "metadata" {
                    let mut meta = Map::new();
                    for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                        if let Some(x) = v.get(mk) {
                            meta.insert(mk.into(), x.clone());
                        }
                    }
                    Value::Object(meta)
                } else {
                    v.clone()
                };
                out.insert(k.clone(), v);
            }
        }
    }
    Value::Object(out)
}

fn full_schema(schema: &Value) -> Value {
    let mut s = schema.clone();
    if !s["properties"].is_object() {
        s["properties"] = json!({});
    }
    s["properties"]["metadata"] = fieldset::metadata_hint();
    s
}

/// Server-side apply of `applied` by `manager` onto `live` (`live` is the object to start from:
/// the stored object, or a skeleton when creating). Returns the merged object with updated
/// managed fields, or a 409 listing the conflicts.
pub fn apply(
    schema: &Value,
    live: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    api_version: &str,
) -> ApiResult<Value> {
    let schema = full_schema(schema);
    let config = scoped_config(applied, scope);
    let applied_fields = scoped_fields(&schema, &config, scope);
    let mut merged = live.clone();
    merge(&schema, &mut merged, &config);

    let sub = scope.subresource();
    let mut list = entries(Some(live));
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in list.iter().filter(|e| !e.is(manager, "Apply", sub)) {
        for p in e.fields.0.intersection(&applied_fields) {
            if fieldset::get(live, p, &schema) != fieldset::get(&merged, p, &schema) {
                conflicts.push((e.describe(), fieldset::render(p)));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&conflicts));
        }
        for e in list.iter_mut().filter(|e| !e.is(manager, "Apply", sub)) {
            let lost: Vec<Path> = e
                .fields
                .0
                .intersection(&applied_fields)
                .filter(|p| fieldset::get(live, p, &schema) != fieldset::get(&merged, p, &schema))
                .cloned()
                .collect();
            for p in lost {
                e.fields.0.remove(&p);
            }
        }
    }

    let previous: BTreeSet<Path> = list
        .iter()
        .find(|e| e.is(manager, "Apply", sub))
        .map(|e| e.fields.0.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied_fields) {
        let owned_elsewhere = list
            .iter()
            .any(|e| !e.is(manager, "Apply", sub) && e.fields.contains(p));
        if !owned_elsewhere {
            fieldset::remove(&mut merged, p, &schema);
        }
    }

    let changed = merged != *live || previous != applied_fields;
    match list.iter_mut().find(|e| e.is(manager, "Apply", sub)) {
        Some(e) => {
            if changed {
                e.time = crate::util::now();
            }
            e.fields = FieldSet(applied_fields);
            e.api_version = api_version.to_string();
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: api_version.to_string(),
            time: crate::util::now(),
            subresource: sub.to_string(),
            fields: FieldSet(applied_fields),
        }),
    }
    store_entries(&mut merged, list);
    Ok(merged)
}

/// The 409 the API server answers for apply conflicts (`NewConflictError`).
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
        .collect();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0, conflicts[0].1
        )
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in conflicts.iter().filter(|(cm, _)| cm == m) {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// Applies `$managedFields` bookkeeping to a client-supplied list: the server recomputes them.
pub fn strip_client_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"properties": {"spec": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}},
            "status": {"type": "object", "properties": {"conditions": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"], "items": {"type": "object"}}}}}})
    }
    const MAIN: Scope = Scope::Main {
        status_subresource: true,
    };

    #[test]
    fn applying_a_field_another_manager_set_differently_conflicts_unless_forced() {
        let live = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
        let first = apply(
            &schema(),
            &live,
            &json!({"spec": {"a": 1}}),
            "alice",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        // Same value: shared ownership, no conflict.
        let shared = apply(
            &schema(),
            &first,
            &json!({"spec": {"a": 1}}),
            "bob",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        let err = apply(
            &schema(),
            &shared,
            &json!({"spec": {"a": 2}}),
            "bob",
            false,
            MAIN,
            "v1",
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.a"
        );
        let forced = apply(
            &schema(),
            &shared,
            &json!({"spec": {"a": 2}}),
            "bob",
            true,
            MAIN,
            "v1",
        )
        .unwrap();
        assert_eq!(forced["spec"]["a"], 2);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, vec!["bob"], "alice lost her only field");
    }

    #[test]
    fn fields_an_applier_drops_are_removed_and_list_map_items_merge_by_key() {
        let live = json!({"metadata": {"name": "x"}});
        let one = apply(
            &schema(),
            &live,
            &json!({"spec": {"a": 1, "b": "x"}}),
            "me",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        let two = apply(
            &schema(),
            &one,
            &json!({"spec": {"a": 1}}),
            "me",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        assert_eq!(two["spec"], json!({"a": 1}));
        let st = Scope::Status;
        let s1 = apply(
            &schema(),
            &two,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            "ctl",
            false,
            st,
            "v1",
        )
        .unwrap();
        let s2 = apply(
            &schema(),
            &s1,
            &json!({"status": {"conditions": [{"type": "Synced", "status": "True"}]}}),
            "other",
            false,
            st,
            "v1",
        )
        .unwrap();
        assert_eq!(s2["status"]["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(
            s2["spec"],
            json!({"a": 1}),
            "status apply leaves spec alone"
        );
    }

    #[test]
    fn updates_take_ownership_of_changed_fields() {
        let live = json!({"metadata": {"name": "x"}});
        let applied = apply(
            &schema(),
            &live,
            &json!({"spec": {"a": 1}}),
            "applier",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        let mut updated = applied.clone();
        updated["spec"]["a"] = json!(5);
        record_update(
            &full_schema(&schema()),
            Some(&applied),
            &mut updated,
            "editor",
            MAIN,
            "v1",
        );
        let err = apply(
            &schema(),
            &updated,
            &json!({"spec": {"a": 1}}),
            "applier",
            false,
            MAIN,
            "v1",
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("conflict with \"editor\" using v1: .spec.a"),
            "{}",
            err.message
        );
    }
}
