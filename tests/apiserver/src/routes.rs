//! The HTTP front: path parsing (`/api/v1/...`, `/apis/<group>/<version>/...`, discovery,
//! OpenAPI), fault injection, body decoding, and dispatch to reads, writes and watches.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::admission::FieldValidation;
use crate::authz::{self, AuditEvent};
use crate::deletes::{self, DeleteOpts};
use crate::patch::PatchKind;
use crate::reads;
use crate::registry::ResourceType;
use crate::ssa::Scope;
use crate::state::Shared;
use crate::status::{ApiError, ApiResult};
use crate::util::{flag, query};
use crate::writes::{self, WriteOpts, Written};
use crate::{discovery, openapi, protobuf, table, watch};

/// Largest request body accepted (the API server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn json_response(code: u16, body: &Value, content_type: &str, warnings: &[String]) -> Response {
    let mut resp = Response::builder()
        .status(code)
        .header("content-type", content_type)
        .header("cache-control", "no-cache, private");
    for w in warnings {
        resp = resp.header("warning", format!("299 - {}", crate::status::go_quote(w)));
    }
    resp.body(Body::from(body.to_string()))
        .unwrap_or_else(|e| ApiError::internal(e.to_string()).into_response())
}

/// Entry point for every request: authentication and RBAC, then faults, then the handlers;
/// every request ends up in the audit log with its status code.
pub async fn handle(shared: Arc<Shared>, req: Request<Body>) -> Response {
    let attributes = authz::attributes(req.method().as_str(), req.uri().path(), req.uri().query());
    let identity = {
        let tokens = shared.tokens.read().unwrap_or_else(|p| p.into_inner());
        authz::authenticate(header_opt(req.headers(), "authorization"), &tokens)
    };
    let (user, authorized, response) = match identity {
        Ok(identity) => {
            let allowed = authz::authorize(&shared.lock(), &identity, &attributes);
            match allowed {
                Ok(()) => (identity.user, true, serve(shared.clone(), req).await),
                Err(e) => (identity.user, false, e.into_response()),
            }
        }
        Err(e) => (String::new(), false, e.into_response()),
    };
    shared.record(AuditEvent {
        user,
        attributes,
        authorized,
        code: response.status().as_u16(),
    });
    response
}

fn header_opt<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn serve(shared: Arc<Shared>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let q = query(parts.uri.query());
    let path = parts.uri.path().to_string();
    let (fault, latency) = {
        let mut f = shared.faults();
        (f.take(&parts.method, &path, flag(&q, "watch")), f.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = fault {
        return e.into_response();
    }
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                413,
                "RequestEntityTooLarge",
                "the request body is too large",
            )
            .into_response();
        }
    };
    match dispatch(shared, &parts.method, &path, &parts.headers, &q, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn dispatch(
    shared: Arc<Shared>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &[u8],
) -> ApiResult<Response> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accept = header(headers, "accept");
    let reg = shared.registry();
    let get_only = |r: Response| {
        if method == Method::GET {
            Ok(r)
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    let ok_json = |v: &Value| json_response(200, v, "application/json", &[]);
    match segs.as_slice() {
        ["version"] => get_only(ok_json(&discovery::version())),
        ["healthz"] | ["readyz"] | ["livez"] => get_only(Response::new(Body::from("ok"))),
        ["api"] | ["apis"] => {
            let core = segs[0] == "api";
            match discovery::aggregated_wanted(accept) {
                Some(ct) => get_only(json_response(
                    200,
                    &discovery::aggregated(&reg, core, ct),
                    ct,
                    &[],
                )),
                None if core => {
                    let addr = shared.address.read().map(|a| a.clone()).unwrap_or_default();
                    get_only(ok_json(&discovery::api_versions(&addr)))
                }
                None => get_only(ok_json(&discovery::api_group_list(&reg))),
            }
        }
        ["apis", group] => get_only(ok_json(
            &discovery::api_group(&reg, group).ok_or_else(ApiError::no_route)?,
        )),
        ["api", version] if reg.has_group_version("", version) => {
            get_only(ok_json(&discovery::api_resource_list(&reg, "", version)))
        }
        ["apis", group, version] if reg.has_group_version(group, version) => {
            get_only(ok_json(&discovery::api_resource_list(&reg, group, version)))
        }
        ["openapi", "v3"] => get_only(ok_json(&openapi::index(&reg))),
        ["openapi", "v3", "api", version] => get_only(ok_json(
            &openapi::document(&reg, "", version).ok_or_else(ApiError::no_route)?,
        )),
        ["openapi", "v3", "apis", group, version] => get_only(ok_json(
            &openapi::document(&reg, group, version).ok_or_else(ApiError::no_route)?,
        )),
        ["api", version, rest @ ..] => {
            resource(shared.clone(), method, "", version, rest, headers, q, body)
        }
        ["apis", group, version, rest @ ..] => resource(
            shared.clone(),
            method,
            group,
            version,
            rest,
            headers,
            q,
            body,
        ),
        _ => Err(ApiError::no_route()),
    }
}

/// The parts of a resource URL.
struct Target<'a> {
    namespace: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
    sub: Option<&'a str>,
}

fn parse_target<'a>(group: &str, rest: &[&'a str]) -> ApiResult<Target<'a>> {
    let t = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty()
                && tail.is_empty()
                && matches!(*plural, "status" | "finalize")) =>
        {
            Target {
                namespace: Some(ns),
                plural,
                name: tail.first().copied(),
                sub: tail.get(1).copied(),
            }
        }
        [plural, tail @ ..] => Target {
            namespace: None,
            plural,
            name: tail.first().copied(),
            sub: tail.get(1).copied(),
        },
        [] => return Err(ApiError::no_route()),
    };
    if rest.len() > 5 {
        return Err(ApiError::no_route());
    }
    Ok(t)
}

fn write_opts(
    rt: &ResourceType,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    apply: bool,
) -> ApiResult<WriteOpts> {
    let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) if m.chars().count() > 128 => {
            return Err(ApiError::bad_request(format!(
                "fieldManager: Too long: may not be more than 128 bytes (got {m})"
            )));
        }
        Some(m) => m.clone(),
        None if apply => {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        None => crate::meta::manager_from_user_agent(header(headers, "user-agent")),
    };
    let force = flag(q, "force");
    if force && !apply {
        return Err(ApiError::bad_request(format!(
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch ({})",
            rt.plural
        )));
    }
    Ok(WriteOpts {
        manager,
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        field_validation: FieldValidation::parse(q.get("fieldValidation").map(String::as_str))?,
        force,
    })
}

fn decode_body(rt: &ResourceType, headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = header(headers, "content-type");
    let base = ct.split(';').next().unwrap_or_default().trim();
    match base {
        "application/vnd.kubernetes.protobuf" if rt.builtin().is_some() => protobuf::decode(body),
        "application/vnd.kubernetes.protobuf" => Err(ApiError::unsupported_media_type(ct)),
        "application/yaml" => serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}"))),
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                rt.kind, rt.version, rt.kind
            ))
        }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn written(w: Written, rt: &ResourceType) -> Response {
    let obj = if w.object["kind"] == json!("Status") {
        w.object
    } else {
        reads::present(rt, w.object)
    };
    json_response(w.code, &obj, "application/json", &w.warnings)
}

#[allow(clippy::too_many_arguments)]
fn resource(
    shared: Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &[u8],
) -> ApiResult<Response> {
    let t = parse_target(group, rest)?;
    let reg = shared.registry();
    let rt = reg
        .find(group, version, t.plural)
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    if t.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_route());
    }
    if rt.namespaced && t.namespace.is_none() && (t.name.is_some() || *method != Method::GET) {
        return Err(ApiError::no_route());
    }
    let scope = match t.sub {
        None => Scope::Main {
            status_subresource: rt.status_subresource,
        },
        Some("status") if rt.status_subresource => Scope::Status,
        Some(_) => return Err(ApiError::no_route()),
    };
    let ns = t.namespace.unwrap_or_default();
    let accept = header(headers, "accept");
    let as_table = table::wants_table(accept);
    match (method.clone(), t.name) {
        (Method::GET, Some(name)) => {
            let obj = reads::get(&shared, &rt, ns, name)?;
            if as_table {
                let tbl = table::table(
                    &rt,
                    std::slice::from_ref(&obj),
                    json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                    true,
                );
                return Ok(json_response(
                    200,
                    &tbl,
                    table::table_content_type(accept),
                    &[],
                ));
            }
            Ok(json_response(200, &obj, "application/json", &[]))
        }
        (Method::GET, None) if flag(q, "watch") => {
            let params =
                watch::WatchParams::parse(&rt, t.namespace.map(String::from), q, as_table)?;
            watch::watch(shared.clone(), rt, params)
        }
        (Method::GET, None) => {
            let page = reads::list(&shared, &rt, t.namespace, q)?;
            if as_table {
                let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
                if let Some(c) = &page.continue_token {
                    meta["continue"] = json!(c);
                }
                let tbl = table::table(&rt, &page.items, meta, true);
                return Ok(json_response(
                    200,
                    &tbl,
                    table::table_content_type(accept),
                    &[],
                ));
            }
            Ok(json_response(
                200,
                &reads::list_object(&rt, page),
                "application/json",
                &[],
            ))
        }
        (Method::POST, None) => {
            let obj = decode_body(&rt, headers, body)?;
            let opts = write_opts(&rt, headers, q, false)?;
            Ok(written(writes::create(&shared, &rt, ns, obj, &opts)?, &rt))
        }
        (Method::PUT, Some(name)) => {
            let obj = decode_body(&rt, headers, body)?;
            let opts = write_opts(&rt, headers, q, false)?;
            Ok(written(
                writes::update(&shared, &rt, ns, name, obj, scope, &opts)?,
                &rt,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let ct = header(headers, "content-type");
            let kind = PatchKind::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let opts = write_opts(&rt, headers, q, kind == PatchKind::Apply)?;
            Ok(written(
                writes::patch(&shared, &rt, ns, name, kind, body, scope, &opts)?,
                &rt,
            ))
        }
        (Method::DELETE, Some(name)) if t.sub.is_none() => {
            let opts = DeleteOpts::parse(body, q.get("dryRun").is_some_and(|d| d == "All"))?;
            Ok(written(
                deletes::delete(&shared, &rt, ns, name, &opts)?,
                &rt,
            ))
        }
        (Method::DELETE, None) => {
            let opts = DeleteOpts::parse(body, q.get("dryRun").is_some_and(|d| d == "All"))?;
            let page = reads::list(&shared, &rt, t.namespace, q)?;
            let mut deleted = Vec::new();
            for item in page.items {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let item_ns = item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Ok(w) = deletes::delete(&shared, &rt, &item_ns, &name, &opts) {
                    deleted.push(w.object);
                }
            }
            let list = json!({"apiVersion": rt.api_version(), "kind": rt.list_kind, "metadata": {}, "items": deleted});
            Ok(json_response(200, &list, "application/json", &[]))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
