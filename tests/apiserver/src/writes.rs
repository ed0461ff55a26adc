//! Create, update and patch: the storage half of every write, shared by the HTTP handlers.
//! Each write runs decode → system metadata → validation → managed fields → generation → store,
//! under the store lock, so writes are serialised like etcd transactions.

use serde_json::{Value, json};

use crate::admission::{self, FieldValidation};
use crate::events::{from_storage, to_storage};
use crate::fieldset;
use crate::meta;
use crate::patch::{self, PatchKind};
use crate::registry::{Builtin, ResourceType};
use crate::ssa::{self, Scope};
use crate::state::Shared;
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{ObjKey, Store};
use crate::strategy::{check_namespace, check_type, prepare_builtin, validate_all};

/// Per-request write options.
#[derive(Clone, Debug)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub force: bool,
}

/// What a write returns: HTTP status, object, warnings for the `Warning` header.
pub struct Written {
    pub code: u16,
    pub object: Value,
    pub warnings: Vec<String>,
}

pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> ObjKey {
    let (group, resource) = rt.storage();
    ObjKey::new(
        group,
        resource,
        if rt.namespaced { namespace } else { "" },
        name,
    )
}

/// The schema that guides managed fields and merges (CRD schema, or list hints for built-ins).
pub fn merge_schema(rt: &ResourceType) -> Value {
    let mut s = match rt.custom() {
        Some(c) => c.schema.clone(),
        None => json!({"type": "object", "properties": {}}),
    };
    if rt.builtin() == Some(Builtin::Crd) {
        s["properties"]["spec"] = json!({"type": "object", "properties": {"versions": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}}}});
    }
    if !s["properties"].is_object() {
        s["properties"] = json!({});
    }
    s["properties"]["metadata"] = fieldset::metadata_hint();
    s
}

/// POST: creates an object in `namespace`.
pub fn create(
    shared: &Shared,
    rt: &ResourceType,
    namespace: &str,
    body: Value,
    opts: &WriteOpts,
) -> ApiResult<Written> {
    check_type(rt, &body)?;
    let mut warnings = Vec::new();
    let mut obj = admission::decode(rt, body, opts.field_validation, &mut warnings)?;
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if rt.namespaced {
        let body_ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        if !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        obj["metadata"]["namespace"] = json!(namespace);
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = match obj["metadata"]["generateName"].as_str() {
        Some(prefix) if name.is_empty() => format!("{prefix}{}", crate::util::name_suffix()),
        _ => name,
    };
    obj["metadata"]["name"] = json!(name);
    let mut store = shared.lock();
    check_namespace(&store, rt, namespace)?;
    create_locked(shared, &mut store, rt, namespace, obj, opts, warnings, None)
}

/// Create with the store locked; `applied` carries a server-side apply that creates.
#[allow(clippy::too_many_arguments)]
fn create_locked(
    shared: &Shared,
    store: &mut Store,
    rt: &ResourceType,
    namespace: &str,
    mut obj: Value,
    opts: &WriteOpts,
    warnings: Vec<String>,
    applied: Option<&Value>,
) -> ApiResult<Written> {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            m.remove(f);
        }
    }
    if rt.status_subresource
        && rt.is_custom()
        && let Some(m) = obj.as_object_mut()
    {
        // A status subresource makes create ignore status, like the API server's strategy.
        m.remove("status");
    }
    prepare_builtin(rt, &mut obj, true);
    validate_all(rt, &obj, None)?;
    let k = key(rt, namespace, &name);
    if store.get(&k).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(crate::util::now());
    if rt.has_generation() {
        obj["metadata"]["generation"] = json!(1);
    }
    let schema = merge_schema(rt);
    let scope = Scope::Main {
        status_subresource: rt.status_subresource,
    };
    match applied {
        Some(config) => {
            obj = ssa::apply(
                &schema,
                &obj,
                config,
                &opts.manager,
                true,
                scope,
                &rt.api_version(),
            )?;
        }
        None => ssa::record_update(
            &schema,
            None,
            &mut obj,
            &opts.manager,
            scope,
            &rt.api_version(),
        ),
    }
    if opts.dry_run {
        return Ok(Written {
            code: 201,
            object: obj,
            warnings,
        });
    }
    let change = shared.put(store, k, to_storage(rt, obj));
    Ok(Written {
        code: 201,
        object: change.object.clone(),
        warnings,
    })
}

/// Finishes an update: system fields, scope, validation, generation, store (or delete when the
/// last finalizer of a deleting object went away). `candidate` is the full desired object.
#[allow(clippy::too_many_arguments)]
fn commit(
    shared: &Shared,
    store: &mut Store,
    rt: &ResourceType,
    k: &ObjKey,
    old: &Value,
    mut candidate: Value,
    scope: Scope,
    opts: &WriteOpts,
    mut warnings: Vec<String>,
    applied_managed: bool,
) -> ApiResult<Written> {
    let managed = candidate["metadata"]["managedFields"].take();
    let mut new = admission::decode(rt, candidate, opts.field_validation, &mut warnings)?;
    if applied_managed && !managed.is_null() {
        new["metadata"]["managedFields"] = managed;
    }
    new["apiVersion"] = json!(rt.api_version());
    new["kind"] = json!(rt.kind);
    meta::keep_system_fields(&mut new, old);
    match scope {
        Scope::Status => {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => out["status"] = s.clone(),
                None => {
                    if let Some(m) = out.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            out["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
            new = out;
        }
        Scope::Main {
            status_subresource: true,
        } => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        Scope::Main {
            status_subresource: false,
        } => {}
    }
    if rt.builtin() == Some(Builtin::Namespace) {
        new["status"] = old["status"].clone();
    }
    prepare_builtin(rt, &mut new, false);
    validate_all(rt, &new, Some(old))?;
    if !applied_managed {
        ssa::record_update(
            &merge_schema(rt),
            Some(old),
            &mut new,
            &opts.manager,
            scope,
            &rt.api_version(),
        );
    }
    if new["metadata"]["managedFields"].is_null()
        && let Some(m) = new["metadata"].as_object_mut()
    {
        m.remove("managedFields");
    }
    if rt.has_generation()
        && meta::spec_part(&new, rt.status_subresource)
            != meta::spec_part(old, rt.status_subresource)
    {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(g + 1);
    }
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    let deleting = new["metadata"]["deletionTimestamp"].is_string();
    let no_finalizers = new["metadata"]["finalizers"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if new == *old {
        return Ok(Written {
            code: 200,
            object: new,
            warnings,
        });
    }
    if opts.dry_run {
        return Ok(Written {
            code: 200,
            object: new,
            warnings,
        });
    }
    if deleting && no_finalizers {
        shared.put(store, k.clone(), to_storage(rt, new));
        let change = shared
            .remove(store, k)
            .ok_or_else(|| ApiError::internal("object vanished during update"))?;
        crate::deletes::reap_namespaces(shared, store);
        return Ok(Written {
            code: 200,
            object: change.object.clone(),
            warnings,
        });
    }
    let change = shared.put(store, k.clone(), to_storage(rt, new));
    Ok(Written {
        code: 200,
        object: change.object.clone(),
        warnings,
    })
}

/// PUT: replaces an object (or its status), with optimistic concurrency.
pub fn update(
    shared: &Shared,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    body: Value,
    scope: Scope,
    opts: &WriteOpts,
) -> ApiResult<Written> {
    check_type(rt, &body)?;
    let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let mut store = shared.lock();
    let k = key(rt, namespace, name);
    let old = store
        .get(&k)
        .cloned()
        .map(|o| from_storage(rt, o))
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
    match body["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty()
                && rv
                    != old["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default() =>
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        None | Some("") if rt.is_custom() => {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                name,
                &[FieldError::invalid(
                    "metadata.resourceVersion",
                    &json!(0),
                    "must be specified for an update",
                )],
            ));
        }
        _ => {}
    }
    let mut candidate = body;
    ssa::strip_client_managed_fields(&mut candidate);
    candidate["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    commit(
        shared,
        &mut store,
        rt,
        &k,
        &old,
        candidate,
        scope,
        opts,
        Vec::new(),
        false,
    )
}

/// PATCH: JSON, merge, strategic or apply patch; apply creates when the object is missing.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    shared: &Shared,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    scope: Scope,
    opts: &WriteOpts,
) -> ApiResult<Written> {
    let mut store = shared.lock();
    let k = key(rt, namespace, name);
    let existing = store.get(&k).cloned().map(|o| from_storage(rt, o));
    if kind == PatchKind::Apply {
        let config: Value = serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request("apply patches must be objects"));
        }
        check_type(rt, &config)?;
        if config["apiVersion"].as_str().unwrap_or_default().is_empty()
            || config["kind"].as_str().unwrap_or_default().is_empty()
        {
            return Err(ApiError::bad_request("invalid object type: /, Kind="));
        }
        let config_name = config["metadata"]["name"].as_str().unwrap_or_default();
        if !config_name.is_empty() && config_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut warnings = Vec::new();
        // Decode the configuration too, so pruning and strict field validation apply to it.
        let mut decoded = admission::decode_with(
            rt,
            config.clone(),
            opts.field_validation,
            &mut warnings,
            false,
        )?;
        ssa::strip_client_managed_fields(&mut decoded);
        if let Some(m) = decoded.as_object_mut() {
            // Defaults belong to no manager: apply the configuration as sent (pruned only).
            for (key, _) in m.clone() {
                if config.get(&key).is_none() {
                    m.remove(&key);
                }
            }
        }
        if let Some(rv) = config["metadata"]["resourceVersion"].as_str()
            && existing
                .as_ref()
                .is_some_and(|e| e["metadata"]["resourceVersion"].as_str() != Some(rv))
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        let Some(old) = existing else {
            if scope == Scope::Status {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
            check_namespace(&store, rt, namespace)?;
            let mut skeleton = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
            if rt.namespaced {
                skeleton["metadata"]["namespace"] = json!(namespace);
            }
            let mut base = skeleton.clone();
            patch::merge_patch(&mut base, &ssa_scoped_for_create(&decoded));
            base["metadata"]["name"] = json!(name);
            return create_locked(
                shared,
                &mut store,
                rt,
                namespace,
                base,
                opts,
                warnings,
                Some(&decoded),
            );
        };
        let merged = ssa::apply(
            &merge_schema(rt),
            &old,
            &decoded,
            &opts.manager,
            opts.force,
            scope,
            &rt.api_version(),
        )?;
        return commit(
            shared, &mut store, rt, &k, &old, merged, scope, opts, warnings, true,
        );
    }
    let old = existing.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
    let patch_doc = patch::parse_json(body)?;
    let mut target = old.clone();
    match kind {
        PatchKind::Merge => patch::merge_patch(&mut target, &patch_doc),
        PatchKind::Json => patch::json_patch(&mut target, &patch_doc)?,
        PatchKind::Strategic if rt.is_custom() => {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
            ));
        }
        PatchKind::Strategic => patch::strategic_merge(&mut target, &patch_doc)?,
        PatchKind::Apply => {}
    }
    check_type(rt, &target)?;
    if let Some(rv) = target["metadata"]["resourceVersion"].as_str()
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::stale(&rt.group, &rt.plural, name));
    }
    target["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    commit(
        shared,
        &mut store,
        rt,
        &k,
        &old,
        target,
        scope,
        opts,
        Vec::new(),
        false,
    )
}

/// For an apply that creates: the configuration's content becomes the object.
fn ssa_scoped_for_create(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(m) = c["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    c
}
