//! Field sets as server-side apply tracks them (structured-merge-diff): paths made of field names,
//! list-map keys (`k:{"type":"Ready"}`) and set values (`v:"x"`), their `FieldsV1` JSON form, and
//! the walk from an object (guided by its schema's list and map types) to the fields it sets.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pe {
    /// `f:name`
    Field(String),
    /// `k:{...}`: canonical JSON of the list-map key fields.
    Key(String),
    /// `v:...`: canonical JSON of a set member.
    Val(String),
}

pub type Path = Vec<Pe>;

impl Pe {
    fn encode(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Val(v) => format!("v:{v}"),
        }
    }
    fn decode(s: &str) -> Option<Self> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(Pe::Field(rest.into())),
            "k:" => Some(Pe::Key(canonical(&serde_json::from_str(rest).ok()?))),
            "v:" => Some(Pe::Val(canonical(&serde_json::from_str(rest).ok()?))),
            _ => None,
        }
    }
}

/// JSON with object keys sorted (serde_json's default map is ordered by key).
pub fn canonical(v: &Value) -> String {
    let sorted: Value = serde_json::from_str(&v.to_string()).unwrap_or(Value::Null);
    sorted.to_string()
}

/// `.spec.capacity`, `.status.conditions[type="Ready"].status`, `.metadata.finalizers[="f"]`.
pub fn render(path: &Path) -> String {
    let mut s = String::new();
    for pe in path {
        match pe {
            Pe::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Pe::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Pe::Val(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// A set of member paths (leaves and list items).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSet(pub BTreeSet<Path>);

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Node::default();
        for p in &self.0 {
            let mut n = &mut root;
            for pe in p {
                n = n.children.entry(pe.encode()).or_default();
            }
            n.member = true;
        }
        root.to_json()
    }
    pub fn from_fields_v1(v: &Value) -> Self {
        let mut out = BTreeSet::new();
        fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
            let Some(m) = v.as_object() else { return };
            for (k, child) in m {
                if k == "." {
                    out.insert(prefix.clone());
                    continue;
                }
                let Some(pe) = Pe::decode(k) else { continue };
                prefix.push(pe);
                if child.as_object().is_some_and(Map::is_empty) {
                    out.insert(prefix.clone());
                } else {
                    walk(child, prefix, out);
                }
                prefix.pop();
            }
        }
        walk(v, &mut Vec::new(), &mut out);
        Self(out)
    }
}

/// List-type hints for metadata, shared by every kind.
pub fn metadata_hint() -> Value {
    json!({"type": "object", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "x-kubernetes-list-type": "set"},
        "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]}
    }})
}

fn child_schema<'a>(schema: &'a Value, k: &str) -> &'a Value {
    schema["properties"]
        .get(k)
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
        .unwrap_or(&Value::Null)
}

/// The list-map key of `item`, canonical JSON.
pub fn item_key(schema: &Value, item: &Value) -> String {
    let mut m = Map::new();
    if let Some(keys) = schema["x-kubernetes-list-map-keys"].as_array() {
        for k in keys.iter().filter_map(Value::as_str) {
            if let Some(v) = item.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
    }
    canonical(&Value::Object(m))
}

/// Every member path `value` sets, below `prefix`.
pub fn fields_of(schema: &Value, value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(m) if !m.is_empty() && schema["x-kubernetes-map-type"] != json!("atomic") => {
            for (k, v) in m {
                prefix.push(Pe::Field(k.clone()));
                fields_of(child_schema(schema, k), v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) if schema["x-kubernetes-list-type"] == json!("map") => {
            for it in items {
                prefix.push(Pe::Key(item_key(schema, it)));
                out.insert(prefix.clone());
                if let Value::Object(m) = it {
                    for (k, v) in m {
                        prefix.push(Pe::Field(k.clone()));
                        fields_of(child_schema(&schema["items"], k), v, prefix, out);
                        prefix.pop();
                    }
                }
                prefix.pop();
            }
        }
        Value::Array(items) if schema["x-kubernetes-list-type"] == json!("set") => {
            for it in items {
                prefix.push(Pe::Val(canonical(it)));
                out.insert(prefix.clone());
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The value at a member path.
pub fn get<'a>(obj: &'a Value, path: &[Pe], schema: &Value) -> Option<&'a Value> {
    let mut v = obj;
    let mut s = schema;
    for pe in path {
        match pe {
            Pe::Field(f) => {
                v = v.get(f)?;
                s = child_schema(s, f);
            }
            Pe::Key(k) => {
                v = v.as_array()?.iter().find(|it| item_key(s, it) == *k)?;
                s = &s["items"];
            }
            Pe::Val(val) => {
                v = v.as_array()?.iter().find(|it| canonical(it) == *val)?;
            }
        }
    }
    Some(v)
}

/// Removes the field, list item or set member at `path` (no-op when absent).
pub fn remove(obj: &mut Value, path: &[Pe], schema: &Value) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    let mut s = schema;
    for pe in parent_path {
        let next = match pe {
            Pe::Field(f) => {
                s = child_schema(s, f);
                v.get_mut(f)
            }
            Pe::Key(k) => {
                let found = v
                    .as_array_mut()
                    .and_then(|a| a.iter_mut().find(|it| item_key(s, it) == *k));
                s = &s["items"];
                found
            }
            Pe::Val(_) => None,
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    match last {
        Pe::Field(f) => {
            if let Some(m) = v.as_object_mut() {
                m.remove(f);
            }
        }
        Pe::Key(k) => {
            if let Some(a) = v.as_array_mut() {
                a.retain(|it| item_key(s, it) != *k);
            }
        }
        Pe::Val(val) => {
            if let Some(a) = v.as_array_mut() {
                a.retain(|it| canonical(it) != *val);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"properties": {
            "metadata": metadata_hint(),
            "status": {"properties": {"conditions": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"], "items": {"type": "object"}}}}}})
    }

    #[test]
    fn fields_round_trip_through_fields_v1() {
        let obj = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["f"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "state": "Active"}});
        let mut set = BTreeSet::new();
        fields_of(&schema(), &obj, &mut Vec::new(), &mut set);
        let fs = FieldSet(set);
        let v1 = fs.to_fields_v1();
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:finalizers": {"v:\"f\"": {}}, "f:labels": {"f:a": {}}},
                "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:state": {}}})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), fs);
        let cond_status = fs.0.iter().find(|p| p.len() == 4).unwrap();
        assert_eq!(
            render(cond_status),
            ".status.conditions[type=\"Ready\"].status"
        );
        assert_eq!(get(&obj, cond_status, &schema()), Some(&json!("True")));
    }

    #[test]
    fn remove_drops_list_items_by_key() {
        let mut obj = json!({"status": {"conditions": [{"type": "A"}, {"type": "B"}]}});
        let p = vec![
            Pe::Field("status".into()),
            Pe::Field("conditions".into()),
            Pe::Key("{\"type\":\"A\"}".into()),
        ];
        remove(&mut obj, &p, &schema());
        assert_eq!(obj["status"]["conditions"], json!([{"type": "B"}]));
    }
}
