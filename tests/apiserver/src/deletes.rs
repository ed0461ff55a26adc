//! Deletion: finalizers hold an object with a `deletionTimestamp` until the last one is removed;
//! preconditions; namespaces terminate by deleting their content and go once it is gone.

use serde_json::{Value, json};

use crate::registry::{Builtin, ResourceType};
use crate::state::Shared;
use crate::status::{ApiError, ApiResult};
use crate::store::{ObjKey, Store};
use crate::writes::{Written, key};

/// The parts of `DeleteOptions` the server honours.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOpts {
    /// Reads a `DeleteOptions` body (may be empty) and the `dryRun` flag.
    pub fn parse(body: &[u8], dry_run: bool) -> ApiResult<Self> {
        let mut o = Self {
            dry_run,
            ..Self::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(o);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        if let Some(p) = v["propagationPolicy"].as_str()
            && !matches!(p, "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                &[crate::status::FieldError::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Background".into(), "Foreground".into(), "Orphan".into()],
                )],
            ));
        }
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            o.dry_run = true;
        }
        o.precondition_uid = v["preconditions"]["uid"].as_str().map(String::from);
        o.precondition_rv = v["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from);
        Ok(o)
    }
}

fn success_status(rt: &ResourceType, name: &str, uid: &Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": uid}})
}

/// Deletes one object with the store locked.
pub fn delete_locked(
    shared: &Shared,
    store: &mut Store,
    rt: &ResourceType,
    k: &ObjKey,
    opts: &DeleteOpts,
) -> ApiResult<Written> {
    let old = store
        .get(k)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &k.name))?;
    if let Some(uid) = &opts.precondition_uid
        && old["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &k.name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                old["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && old["metadata"]["resourceVersion"].as_str() != Some(rv)
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &k.name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            ),
        ));
    }
    let is_namespace = rt.builtin() == Some(Builtin::Namespace);
    let has_finalizers = old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if has_finalizers || is_namespace {
        if old["metadata"]["deletionTimestamp"].is_string() {
            return Ok(Written {
                code: 200,
                object: old,
                warnings: vec![],
            });
        }
        let mut marked = old.clone();
        marked["metadata"]["deletionTimestamp"] = json!(crate::util::now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        // Like markAsDeleting: controllers see the deletion as a new generation.
        if let Some(g) = marked["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
            marked["metadata"]["generation"] = json!(g + 1);
        }
        if is_namespace {
            marked["status"]["phase"] = json!("Terminating");
        }
        if opts.dry_run {
            return Ok(Written {
                code: 200,
                object: marked,
                warnings: vec![],
            });
        }
        let change = shared.put(store, k.clone(), marked);
        let object = change.object.clone();
        if is_namespace {
            for child in store.keys_in_namespace(&k.name) {
                let reg = shared.registry();
                if let Some(crt) = reg
                    .types
                    .iter()
                    .find(|t| t.group == child.group && t.plural == child.resource)
                {
                    let crt = crt.clone();
                    let _ = delete_locked(shared, store, &crt, &child, &DeleteOpts::default());
                }
            }
            reap_namespaces(shared, store);
        }
        return Ok(Written {
            code: 200,
            object,
            warnings: vec![],
        });
    }
    if opts.dry_run {
        return Ok(Written {
            code: 200,
            object: old,
            warnings: vec![],
        });
    }
    let change = shared
        .remove(store, k)
        .ok_or_else(|| ApiError::internal("object vanished during delete"))?;
    reap_namespaces(shared, store);
    let object = if rt.is_custom() {
        change.object.clone()
    } else {
        success_status(rt, &k.name, &change.object["metadata"]["uid"])
    };
    Ok(Written {
        code: 200,
        object,
        warnings: vec![],
    })
}

/// DELETE on one object.
pub fn delete(
    shared: &Shared,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    opts: &DeleteOpts,
) -> ApiResult<Written> {
    let mut store = shared.lock();
    delete_locked(shared, &mut store, rt, &key(rt, namespace, name), opts)
}

/// Removes terminating namespaces that no longer hold anything (the namespace controller's job).
pub fn reap_namespaces(shared: &Shared, store: &mut Store) {
    let terminating: Vec<ObjKey> = store
        .list("", "namespaces", None)
        .into_iter()
        .filter(|(_, v)| v["metadata"]["deletionTimestamp"].is_string())
        .map(|(k, _)| k.clone())
        .collect();
    for ns in terminating {
        if store.keys_in_namespace(&ns.name).is_empty() {
            shared.remove(store, &ns);
        }
    }
}
