//! Structural-schema handling for custom resources, with the API server's semantics and error
//! strings: pruning of unknown fields and OpenAPI value validation (types, enums, ranges, lengths,
//! patterns, item counts, required, nullable, int-or-string, list-type set/map uniqueness).
//! CEL rules are evaluated elsewhere (kube-cel); defaults come from kube-cel's `apply_defaults`.

use std::collections::HashSet;

use regex::Regex;
use serde_json::{Map, Value};

use crate::status::FieldError;

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}.{seg}")
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

/// Removes fields the schema does not declare; returns the pruned paths (for strict/warn field
/// validation). `apiVersion`, `kind` and `metadata` at the root are never pruned here.
pub fn prune(schema: &Value, value: &mut Value, path: &str, root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties");
            let keep_all = preserves_unknown(schema)
                || schema["x-kubernetes-embedded-resource"] == Value::Bool(true);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if root && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let child_path = if props.is_some() || additional.is_none() {
                    join(path, &k)
                } else {
                    format!("{path}[{k}]")
                };
                let child_schema = props
                    .and_then(|p| p.get(&k))
                    .or_else(|| additional.filter(|a| a.is_object()));
                match child_schema {
                    Some(cs) => {
                        if let Some(v) = map.get_mut(&k) {
                            prune(cs, v, &child_path, false, pruned);
                        }
                    }
                    None if keep_all || additional == Some(&Value::Bool(true)) => {}
                    None => {
                        map.remove(&k);
                        pruned.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    prune(is, it, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// A schema bound as Go's `%v` prints a float64 (`1`, not `1.0`).
fn bound(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => v.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, v: &Value) -> bool {
    match expected {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        _ => true,
    }
}

/// Validates `value` against a structural schema; appends K8s-style field errors.
pub fn validate(schema: &Value, value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let shown = if path.is_empty() { "<nil>" } else { path };
    if value.is_null() {
        if schema["nullable"] == Value::Bool(true) || schema.get("type").is_none() {
            return;
        }
        let ty = schema["type"].as_str().unwrap_or_default();
        errs.push(FieldError::type_invalid(
            shown,
            &Value::String("null".into()),
            &format!("{shown} in body must be of type {ty}: \"null\""),
        ));
        return;
    }
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        if !(value.is_string() || type_ok("integer", value)) {
            let actual = type_name(value);
            errs.push(FieldError::type_invalid(
                shown,
                &Value::String(actual.into()),
                &format!("{shown} in body must be of type integer,string: \"{actual}\""),
            ));
            return;
        }
    } else if let Some(ty) = schema["type"].as_str()
        && !type_ok(ty, value)
    {
        let actual = type_name(value);
        errs.push(FieldError::type_invalid(
            shown,
            &Value::String(actual.into()),
            &format!("{shown} in body must be of type {ty}: \"{actual}\""),
        ));
        return;
    }
    validate_value(schema, value, shown, errs);
    for key in ["allOf", "anyOf", "oneOf"] {
        validate_junctor(schema, key, value, path, shown, errs);
    }
    match value {
        Value::Object(map) => validate_object(schema, map, path, errs),
        Value::Array(items) => validate_array(schema, items, path, shown, errs),
        _ => {}
    }
}

fn validate_junctor(
    schema: &Value,
    key: &str,
    value: &Value,
    path: &str,
    shown: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(branches) = schema[key].as_array() else {
        return;
    };
    let results: Vec<Vec<FieldError>> = branches
        .iter()
        .map(|b| {
            let mut e = Vec::new();
            validate(b, value, path, &mut e);
            e
        })
        .collect();
    let passing = results.iter().filter(|e| e.is_empty()).count();
    match key {
        "allOf" => results.into_iter().for_each(|e| errs.extend(e)),
        "anyOf" if passing == 0 => {
            errs.push(FieldError::invalid(
                shown,
                value,
                &format!("{shown} in body must match at least one schema (anyOf)"),
            ));
            results.into_iter().for_each(|e| errs.extend(e));
        }
        "oneOf" if passing != 1 => {
            errs.push(FieldError::invalid(
                shown,
                value,
                &format!("{shown} in body must match exactly one schema (oneOf)"),
            ));
            if passing == 0 {
                results.into_iter().for_each(|e| errs.extend(e));
            }
        }
        _ => {}
    }
}

fn validate_value(schema: &Value, value: &Value, shown: &str, errs: &mut Vec<FieldError>) {
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| {
                a.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| a.to_string())
            })
            .collect();
        errs.push(FieldError::not_supported(shown, value, &names));
    }
    if let Some(n) = value.as_f64() {
        let excl_min = schema["exclusiveMinimum"] == Value::Bool(true);
        let excl_max = schema["exclusiveMaximum"] == Value::Bool(true);
        if let Some(min) = schema["minimum"].as_f64()
            && (n < min || (excl_min && n == min))
        {
            let rel = if excl_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                shown,
                value,
                &format!(
                    "{shown} in body should be {rel} {}",
                    bound(&schema["minimum"])
                ),
            ));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && (n > max || (excl_max && n == max))
        {
            let rel = if excl_max {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                shown,
                value,
                &format!(
                    "{shown} in body should be {rel} {}",
                    bound(&schema["maximum"])
                ),
            ));
        }
        if let Some(m) = schema["multipleOf"].as_f64()
            && m > 0.0
            && (n / m).fract() != 0.0
        {
            errs.push(FieldError::invalid(
                shown,
                value,
                &format!(
                    "{shown} in body should be a multiple of {}",
                    schema["multipleOf"]
                ),
            ));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            errs.push(FieldError::too_long(shown, max));
        }
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            errs.push(FieldError::invalid(
                shown,
                value,
                &format!("{shown} in body should be at least {min} chars long"),
            ));
        }
        if let Some(p) = schema["pattern"].as_str() {
            match Regex::new(p) {
                Ok(re) if re.is_match(s) => {}
                Ok(_) => errs.push(FieldError::invalid(
                    shown,
                    value,
                    &format!("{shown} in body should match '{p}'"),
                )),
                Err(_) => errs.push(FieldError::invalid(
                    shown,
                    value,
                    &format!("{shown} has a pattern the server cannot compile: '{p}'"),
                )),
            }
        }
    }
}

fn validate_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let shown = if path.is_empty() { "<nil>" } else { path };
    if let Some(required) = schema["required"].as_array() {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errs.push(FieldError::required(&join(path, r), ""));
            }
        }
    }
    if let Some(max) = schema["maxProperties"].as_u64()
        && map.len() as u64 > max
    {
        errs.push(FieldError::too_many(shown, map.len(), max));
    }
    if let Some(min) = schema["minProperties"].as_u64()
        && (map.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            shown,
            &Value::from(map.len()),
            &format!("{shown} in body should have at least {min} properties"),
        ));
    }
    let props = schema["properties"].as_object();
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        if path.is_empty() && (k == "apiVersion" || k == "kind" || k == "metadata") {
            continue;
        }
        if let Some(cs) = props.and_then(|p| p.get(k)) {
            validate(cs, v, &join(path, k), errs);
        } else if let Some(cs) = additional {
            validate(cs, v, &format!("{path}[{k}]"), errs);
        }
    }
}

fn validate_array(
    schema: &Value,
    items: &[Value],
    path: &str,
    shown: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(max) = schema["maxItems"].as_u64()
        && items.len() as u64 > max
    {
        errs.push(FieldError::too_many(shown, items.len(), max));
    }
    if let Some(min) = schema["minItems"].as_u64()
        && (items.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            shown,
            &Value::from(items.len()),
            &format!("{shown} in body should have at least {min} items"),
        ));
    }
    if let Some(is) = schema.get("items") {
        for (i, it) in items.iter().enumerate() {
            validate(is, it, &format!("{path}[{i}]"), errs);
        }
    }
    match schema["x-kubernetes-list-type"].as_str() {
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, it) in items.iter().enumerate() {
                if !seen.insert(it.to_string()) {
                    errs.push(FieldError::duplicate(&format!("{path}[{i}]"), it));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for (i, it) in items.iter().enumerate() {
                let key: Vec<String> = keys.iter().map(|k| it[*k].to_string()).collect();
                if !seen.insert(key) {
                    let dup: Map<String, Value> = keys
                        .iter()
                        .map(|k| (k.to_string(), it[*k].clone()))
                        .collect();
                    errs.push(FieldError::duplicate(
                        &format!("{path}[{i}]"),
                        &Value::Object(dup),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// The schema node at a dotted path like `spec.vpc` or `spec.items[0]` (for CEL error values).
pub fn node_at<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = schema;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !name.is_empty() {
            node = node["properties"]
                .get(name)
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        }
        for _ in rest.matches('[') {
            node = node
                .get("items")
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["region"], "properties": {
            "region": {"type": "string", "minLength": 2, "pattern": "^[a-z0-9-]+$"},
            "mode": {"type": "string", "enum": ["Auto", "Manual"]},
            "max": {"type": "integer", "minimum": 2, "maximum": 15000},
            "subnets": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "port": {"x-kubernetes-int-or-string": true},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "conds": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                      "items": {"type": "object", "properties": {"type": {"type": "string"}}}}
        }}}})
    }

    fn errors(v: Value) -> Vec<String> {
        let mut e = Vec::new();
        validate(&schema(), &v, "", &mut e);
        e.iter().map(FieldError::line).collect()
    }

    #[test]
    fn reports_every_error_in_apiserver_wording() {
        let got = errors(
            json!({"spec": {"region": "E", "mode": "Fast", "max": 1, "subnets": ["a", "b", "a"], "port": true}}),
        );
        assert_eq!(
            got,
            vec![
                "spec.max: Invalid value: 1: spec.max in body should be greater than or equal to 2",
                "spec.mode: Unsupported value: \"Fast\": supported values: \"Auto\", \"Manual\"",
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
                "spec.region: Invalid value: \"E\": spec.region in body should be at least 2 chars long",
                "spec.region: Invalid value: \"E\": spec.region in body should match '^[a-z0-9-]+$'",
                "spec.subnets: Too many: 3: must have at most 2 items",
                "spec.subnets[2]: Duplicate value: \"a\"",
            ]
        );
    }

    #[test]
    fn required_type_and_list_map_duplicates() {
        let got =
            errors(json!({"spec": {"max": "x", "conds": [{"type": "Ready"}, {"type": "Ready"}]}}));
        assert_eq!(
            got,
            vec![
                "spec.region: Required value",
                "spec.conds[1]: Duplicate value: {\"type\":\"Ready\"}",
                "spec.max: Invalid value: \"string\": spec.max in body must be of type integer: \"string\"",
            ]
        );
    }

    #[test]
    fn prune_drops_unknown_fields_but_keeps_preserved_ones() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "extra": 1,
            "spec": {"region": "eu", "bogus": true, "free": {"anything": {"goes": 1}}}});
        let mut pruned = Vec::new();
        prune(&schema(), &mut v, "", true, &mut pruned);
        assert_eq!(pruned, vec!["extra".to_string(), "spec.bogus".to_string()]);
        assert_eq!(v["spec"]["free"]["anything"]["goes"], 1);
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn node_at_walks_properties_and_items() {
        let s = schema();
        assert_eq!(node_at(&s, "spec.conds[0]").unwrap()["type"], "object");
        assert_eq!(node_at(&s, "spec.max").unwrap()["type"], "integer");
    }
}
