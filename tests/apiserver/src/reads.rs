//! get and list: selectors, `resourceVersion` semantics, `limit`/`continue` paging.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::Shared;
use crate::status::{ApiError, ApiResult};
use crate::writes::key;

/// The object as the requested version presents it.
pub fn present(rt: &ResourceType, obj: Value) -> Value {
    let mut obj = crate::events::from_storage(rt, obj);
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

/// Field selectors a resource accepts.
pub fn selectable_fields(rt: &ResourceType) -> Vec<String> {
    let mut f = vec!["metadata.name".to_string()];
    if rt.namespaced {
        f.push("metadata.namespace".into());
    }
    match rt.builtin() {
        Some(Builtin::Event) => {
            for x in [
                "apiVersion",
                "kind",
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "fieldPath",
            ] {
                f.push(format!("involvedObject.{x}"));
            }
            f.extend(["reason", "reportingComponent", "source", "type"].map(String::from));
        }
        Some(Builtin::EventsV1) => {
            for x in [
                "apiVersion",
                "kind",
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "fieldPath",
            ] {
                f.push(format!("regarding.{x}"));
            }
            f.extend(["reason", "reportingController", "type"].map(String::from));
        }
        Some(Builtin::Namespace) => f.push("status.phase".into()),
        Some(Builtin::Secret) => f.push("type".into()),
        _ => {}
    }
    if let Some(c) = rt.custom() {
        f.extend(
            c.selectable_fields
                .iter()
                .map(|p| p.trim_start_matches('.').to_string()),
        );
    }
    f
}

/// Parsed selectors shared by list and watch.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn parse(rt: &ResourceType, q: &HashMap<String, String>) -> ApiResult<Self> {
        Ok(Self {
            labels: LabelSelector::parse(
                q.get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )?,
            fields: FieldSelector::parse(
                q.get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
                &selectable_fields(rt),
                &rt.kind,
                &rt.api_version(),
            )?,
        })
    }
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// GET of one object.
pub fn get(shared: &Shared, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<Value> {
    let store = shared.lock();
    store
        .get(&key(rt, namespace, name))
        .cloned()
        .map(|o| present(rt, o))
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

fn encode_continue(rv: u64, after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "start": after}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        v["rv"].as_u64().ok_or_else(bad)?,
        v["start"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// LIST, optionally in one namespace.
pub fn list(
    shared: &Shared,
    rt: &ResourceType,
    namespace: Option<&str>,
    q: &HashMap<String, String>,
) -> ApiResult<Page> {
    let filter = Filter::parse(rt, q)?;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        ),
    }
    .filter(|l| *l > 0)
    .map(|l| l as usize);
    let store = shared.lock();
    let current = store.current_rv();
    let rv = q
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    if !rv.is_empty() && rv != "0" {
        let n: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        let exact = q.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
        if n > current {
            return Err(ApiError::new(504, "Timeout", format!("Too large resource version: {n}, current: {current}"))
                .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})));
        }
        if exact && n != current {
            return Err(ApiError::gone(format!(
                "The resourceVersion for the provided list is too old: {n} (the server keeps only the latest state)"
            )));
        }
    }
    let start_after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (token_rv, start) = decode_continue(token)?;
            if token_rv < store.oldest_resumable() {
                return Err(ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            Some(start)
        }
        None => None,
    };
    let mut matched = store
        .list(
            rt.storage().0,
            rt.storage().1,
            namespace.filter(|_| rt.namespaced),
        )
        .into_iter()
        .filter(|(k, _)| {
            start_after
                .as_ref()
                .is_none_or(|s| format!("{}/{}", k.namespace, k.name) > *s)
        })
        .map(|(k, v)| {
            (
                format!("{}/{}", k.namespace, k.name),
                present(rt, v.clone()),
            )
        })
        .filter(|(_, v)| filter.matches(v));
    let mut items = Vec::new();
    let mut last = String::new();
    for (pos, obj) in matched.by_ref() {
        items.push(obj);
        last = pos;
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    let remaining = matched.count();
    let (continue_token, remaining) = if remaining > 0 {
        (Some(encode_continue(current, &last)), Some(remaining))
    } else {
        (None, None)
    };
    if !rt.is_custom() {
        for it in items.iter_mut() {
            if let Some(m) = it.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
        }
    }
    Ok(Page {
        items,
        resource_version: current,
        continue_token,
        remaining,
    })
}

/// The `…List` object for a page.
pub fn list_object(rt: &ResourceType, page: Page) -> Value {
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({"apiVersion": rt.api_version(), "kind": rt.list_kind, "metadata": meta, "items": page.items})
}
