//! The checks an API server applies to a custom resource before storing it, run offline on the
//! generated CRDs in `crds/`: unknown-field detection (kubectl's `fieldValidation=Strict`),
//! defaulting, the OpenAPI schema (through a JSON-schema validator) and the CEL rules including
//! transition rules (through kube's CEL evaluator).

use std::collections::BTreeMap;
use std::path::Path;

use jsonschema::Validator;
use kube::core::cel;
use serde_json::{Map, Value};

/// One kind's checks, built from its CRD.
struct KindChecks {
    /// The CRD's `openAPIV3Schema` as the API server reads it.
    schema: Value,
    /// The same schema with `nullable` turned into JSON-schema types.
    json_schema: Validator,
}

/// The admission checks for every CRD in a directory, keyed by kind.
pub struct Admission {
    kinds: BTreeMap<String, KindChecks>,
}

impl Admission {
    /// Loads every CRD YAML file in `dir`.
    pub fn from_crd_dir(dir: &Path) -> Self {
        let mut kinds = BTreeMap::new();
        for entry in std::fs::read_dir(dir).expect("read crds dir") {
            let path = entry.expect("dir entry").path();
            let text = std::fs::read_to_string(&path).expect("read crd");
            let crd: Value = serde_saphyr::from_str(&text).expect("crd parses as YAML");
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .expect("kind")
                .to_owned();
            let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
            let json_schema =
                jsonschema::validator_for(&to_json_schema(&schema)).unwrap_or_else(|e| {
                    panic!("{}: schema is not valid JSON schema: {e}", path.display())
                });
            kinds.insert(
                kind,
                KindChecks {
                    schema,
                    json_schema,
                },
            );
        }
        Self { kinds }
    }

    /// The `openAPIV3Schema` of a kind.
    pub fn schema(&self, kind: &str) -> &Value {
        &self.kinds[kind].schema
    }

    /// Errors a create of `object` would get, as `path: message` lines.
    pub fn create(&self, object: &Value) -> Vec<String> {
        self.check(object, None)
    }

    /// Errors an update from `old` to `new` would get, as `path: message` lines.
    pub fn update(&self, old: &Value, new: &Value) -> Vec<String> {
        self.check(new, Some(old))
    }

    fn check(&self, object: &Value, old: Option<&Value>) -> Vec<String> {
        let kind = object["kind"].as_str().expect("object has a kind");
        let checks = self
            .kinds
            .get(kind)
            .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
        let mut errors = Vec::new();
        unknown_fields(&checks.schema, object, "", &mut errors);

        let defaulted = cel::apply_defaults(&checks.schema, object);
        for error in checks.json_schema.iter_errors(&defaulted) {
            let path = pointer_to_dotted(&error.instance_path().to_string());
            errors.push(format!("{path}: {error}"));
        }
        if let Err(cel_errors) = cel::Validator::new().validate(&checks.schema, object, old) {
            for error in cel_errors.iter() {
                errors.push(format!("{}: {}", error.field_path, error.message));
            }
        }
        errors
    }
}

/// Reports fields the schema does not know, like `kubectl apply` with strict field validation.
/// `metadata`, `apiVersion` and `kind` belong to the API machinery, not the CRD schema.
fn unknown_fields(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (name, child) in fields {
                let child_path = join(path, name);
                if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match (properties.and_then(|p| p.get(name)), additional) {
                    (Some(child_schema), _) => {
                        unknown_fields(child_schema, child, &child_path, errors);
                    }
                    (None, Some(value_schema)) if value_schema.is_object() => {
                        unknown_fields(value_schema, child, &child_path, errors);
                    }
                    _ => errors.push(format!("{child_path}: unknown field \"{name}\"")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `/spec/vpc/subnetIds/3` → `spec.vpc.subnetIds[3]`.
fn pointer_to_dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        if segment.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    out
}

/// Rewrites an OpenAPI v3.0 structural schema as JSON schema: `nullable: true` becomes a type
/// that also admits `null`; Kubernetes extensions are dropped (the validator would ignore them).
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if key.starts_with("x-kubernetes-") || key == "nullable" {
                    continue;
                }
                let value = match key.as_str() {
                    "additionalProperties" | "items" => to_json_schema(value),
                    "properties" => Value::Object(
                        value
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(name, child)| (name.clone(), to_json_schema(child)))
                            .collect(),
                    ),
                    _ => value.clone(),
                };
                out.insert(key.clone(), value);
            }
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(ty)) = map.get("type")
            {
                out.insert("type".into(), serde_json::json!([ty, "null"]));
                if let Some(Value::Array(values)) = map.get("enum") {
                    let mut values = values.clone();
                    values.push(Value::Null);
                    out.insert("enum".into(), Value::Array(values));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}
