//! ObjectMeta rules the API server enforces for every kind: name formats, label and annotation
//! syntax, and the system fields (uid, creationTimestamp, generation, deletion) clients cannot set.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceType};
use crate::status::FieldError;

static SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .unwrap_or_else(|_| unreachable!())
});
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").unwrap_or_else(|_| unreachable!())
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").unwrap_or_else(|_| unreachable!())
});
static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap_or_else(|_| unreachable!())
});

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn check_key(field: &str, key: &str, errs: &mut Vec<FieldError>) {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.len() > 63 || !QUALIFIED_NAME.is_match(name) {
        errs.push(FieldError::invalid(field, &json!(key), QUALIFIED_MSG));
    }
    if let Some(p) = prefix
        && (p.len() > 253 || !SUBDOMAIN.is_match(p))
    {
        errs.push(FieldError::invalid(
            field,
            &json!(key),
            &format!("prefix part {SUBDOMAIN_MSG}"),
        ));
    }
}

/// Checks name, namespace, labels and annotations.
pub fn validate(rt: &ResourceType, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let dns_label = matches!(rt.builtin(), Some(Builtin::Namespace));
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if dns_label && (name.len() > 63 || !LABEL.is_match(name)) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            LABEL_MSG,
        ));
    } else if !dns_label && (name.len() > 253 || !SUBDOMAIN.is_match(name)) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            SUBDOMAIN_MSG,
        ));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            check_key("metadata.labels", k, &mut errs);
            let v = v.as_str().unwrap_or_default();
            if v.len() > 63 || !LABEL_VALUE.is_match(v) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &json!(v),
                    LABEL_VALUE_MSG,
                ));
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        for k in ann.keys() {
            check_key("metadata.annotations", k, &mut errs);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::too_long("metadata.annotations", 256 * 1024));
        }
    }
    errs
}

/// Keeps the system fields of `old` on an update, whatever the client sent.
pub fn keep_system_fields(new: &mut Value, old: &Value) {
    for f in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "name",
        "namespace",
    ] {
        match old["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
}

/// The content that counts for `metadata.generation`: all but metadata (and status, when the
/// kind has a status subresource).
pub fn spec_part(obj: &Value, status_subresource: bool) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if status_subresource {
            m.remove("status");
        }
    }
    c
}

/// The manager name the API server derives from a User-Agent when `fieldManager` is absent.
pub fn manager_from_user_agent(ua: &str) -> String {
    let prefix = ua.split('/').next().unwrap_or_default();
    let prefix: String = prefix.chars().take(128).collect();
    if prefix.is_empty() {
        "unknown".into()
    } else {
        prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_checked_like_the_apiserver() {
        let rt = crate::registry::builtins()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap();
        let errs = validate(
            &rt,
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "fine", "k": "not ok!"}}}),
        );
        let lines: Vec<String> = errs.iter().map(FieldError::line).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert!(lines[1].starts_with("metadata.labels: Invalid value: \"not ok!\": a valid label"));
        assert!(validate(&rt, &json!({"metadata": {"name": "good.name-1"}})).is_empty());
    }

    #[test]
    fn manager_defaults_to_the_user_agent_prefix() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.35.2 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(manager_from_user_agent(""), "unknown");
    }
}
