//! Who is asking and may they: bearer-token authentication, request attributes as the API
//! server's `RequestInfo` derives them, and RBAC authorization from the stored ClusterRoles,
//! Roles and their bindings. Every request is also written to an audit log.
//!
//! A request without an `Authorization` header acts as `system:admin` in `system:masters` and
//! is never refused, so kubectl and tests that do not care about RBAC work as before. A request
//! with a token the server issued acts as that token's user and is authorized by RBAC; an
//! unknown token is a 401.

use std::collections::HashMap;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use serde_json::json;

use crate::status::{ApiError, go_quote, qualified};
use crate::store::{ObjKey, Store};
use crate::util::query;

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The user of requests that carry no token.
pub const ADMIN: &str = "system:admin";
const MASTERS: &str = "system:masters";
const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    fn admin() -> Self {
        Self {
            user: ADMIN.into(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// The identity of a service account's token, with the groups the API server gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }
}

/// The identity behind a request's `Authorization` header (`tokens` maps issued tokens).
pub fn authenticate(
    header: Option<&str>,
    tokens: &HashMap<String, Identity>,
) -> Result<Identity, ApiError> {
    let Some(header) = header else {
        return Ok(Identity::admin());
    };
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match token.and_then(|t| tokens.get(t)) {
        Some(identity) => Ok(identity.clone()),
        None => Err(ApiError::new(401, "Unauthorized", "Unauthorized")),
    }
}

/// What a request asks to do, in RBAC's terms (the API server's `RequestInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestAttributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; for
    /// non-resource requests the lowercase HTTP method.
    pub verb: String,
    /// Whether the path names an API resource (`/api/v1/...`, `/apis/<g>/<v>/...`); discovery,
    /// OpenAPI and `/version` are non-resource requests.
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    /// Plural resource name, e.g. `capacityproviders`.
    pub resource: String,
    /// e.g. `status`; empty for the main resource.
    pub subresource: String,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    /// The object's name; for list and watch, the name a `metadata.name=` field selector pins.
    pub name: String,
    /// The request path.
    pub path: String,
}

impl RequestAttributes {
    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The attributes of a request, following `k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory`.
pub fn attributes(method: &str, path: &str, raw_query: Option<&str>) -> RequestAttributes {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut info = RequestAttributes {
        verb: method.to_ascii_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let rest: &[&str] = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            info.api_version = (*version).into();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            info.api_group = (*group).into();
            info.api_version = (*version).into();
            rest
        }
        _ => return info,
    };
    info.resource_request = true;
    info.verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .into();
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].into();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    info.resource = rest[0].into();
    if let Some(name) = rest.get(1) {
        info.name = (*name).into();
    }
    if let Some(sub) = rest.get(2) {
        info.subresource = (*sub).into();
    }
    let q = query(raw_query);
    if info.name.is_empty() && info.verb == "get" {
        let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
        info.verb = if watch { "watch" } else { "list" }.into();
        if let Some(selector) = q.get("fieldSelector") {
            let exact: Vec<&str> = selector
                .split(',')
                .filter_map(|term| {
                    term.strip_prefix("metadata.name==")
                        .or_else(|| term.strip_prefix("metadata.name="))
                })
                .collect();
            if let [name] = exact.as_slice() {
                info.name = (*name).into();
            }
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

/// Non-resource paths every authenticated user may read (the default `system:discovery`,
/// `system:basic-user` and `system:public-info-viewer` bindings).
const PUBLIC_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/version/",
    "/openapi",
    "/openapi/*",
];

/// Whether `identity` may do what `attrs` asks, by the RBAC objects in `store`.
pub fn authorize(
    store: &Store,
    identity: &Identity,
    attrs: &RequestAttributes,
) -> Result<(), ApiError> {
    if identity.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    if !attrs.resource_request
        && attrs.verb == "get"
        && PUBLIC_PATHS.iter().any(|p| url_matches(p, &attrs.path))
    {
        return Ok(());
    }
    let allowed = rules_for(store, identity, &attrs.namespace)
        .iter()
        .any(|rule| rule_allows(rule, attrs));
    if allowed {
        Ok(())
    } else {
        Err(forbidden(identity, attrs))
    }
}

/// Every rule granted to `identity` that applies in `namespace` (cluster-wide rules included;
/// `namespace` empty for cluster-scoped requests).
fn rules_for(store: &Store, identity: &Identity, namespace: &str) -> Vec<PolicyRule> {
    let mut rules = Vec::new();
    for (_, value) in store.list(RBAC_GROUP, "clusterrolebindings", None) {
        let Ok(binding) = serde_json::from_value::<ClusterRoleBinding>(value.clone()) else {
            continue;
        };
        let subjects = binding.subjects.as_deref().unwrap_or_default();
        if binding.role_ref.kind == "ClusterRole"
            && subjects.iter().any(|s| subject_matches(s, identity, ""))
        {
            rules.extend(cluster_role_rules(store, &binding.role_ref.name));
        }
    }
    if namespace.is_empty() {
        return rules;
    }
    for (_, value) in store.list(RBAC_GROUP, "rolebindings", Some(namespace)) {
        let Ok(binding) = serde_json::from_value::<RoleBinding>(value.clone()) else {
            continue;
        };
        let subjects = binding.subjects.as_deref().unwrap_or_default();
        if !subjects
            .iter()
            .any(|s| subject_matches(s, identity, namespace))
        {
            continue;
        }
        match binding.role_ref.kind.as_str() {
            "ClusterRole" => rules.extend(cluster_role_rules(store, &binding.role_ref.name)),
            "Role" => {
                let key = ObjKey::new(RBAC_GROUP, "roles", namespace, &binding.role_ref.name);
                if let Some(role) = store
                    .get(&key)
                    .and_then(|v| serde_json::from_value::<Role>(v.clone()).ok())
                {
                    rules.extend(role.rules.unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    rules
}

fn cluster_role_rules(store: &Store, name: &str) -> Vec<PolicyRule> {
    store
        .get(&ObjKey::new(RBAC_GROUP, "clusterroles", "", name))
        .and_then(|v| serde_json::from_value::<ClusterRole>(v.clone()).ok())
        .and_then(|r| r.rules)
        .unwrap_or_default()
}

/// `binding_namespace` stands in for a ServiceAccount subject's missing namespace (RoleBindings).
fn subject_matches(subject: &Subject, identity: &Identity, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == identity.user,
        "Group" => identity.groups.contains(&subject.name),
        "ServiceAccount" => {
            let namespace = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            !namespace.is_empty()
                && identity.user == format!("system:serviceaccount:{namespace}:{}", subject.name)
        }
        _ => false,
    }
}

/// One rule against one request, as `rbac/v1` evaluates it (`RuleAllows`).
pub fn rule_allows(rule: &PolicyRule, attrs: &RequestAttributes) -> bool {
    let verb = rule.verbs.iter().any(|v| v == "*" || *v == attrs.verb);
    if !verb {
        return false;
    }
    if !attrs.resource_request {
        return rule
            .non_resource_urls
            .iter()
            .flatten()
            .any(|u| url_matches(u, &attrs.path));
    }
    let group = rule
        .api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || *g == attrs.api_group);
    let combined = attrs.combined_resource();
    let resource = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!attrs.subresource.is_empty() && *r == format!("*/{}", attrs.subresource))
    });
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let name = names.is_empty() || (!attrs.name.is_empty() && names.contains(&attrs.name));
    group && resource && name
}

/// `nonResourceURLs` matching: exact, `*`, or a prefix ending in `*`.
fn url_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// The API server's 403, e.g. `leases.coordination.k8s.io "l" is forbidden: User "u" cannot
/// get resource "leases" in API group "coordination.k8s.io" in the namespace "ns"`.
fn forbidden(identity: &Identity, attrs: &RequestAttributes) -> ApiError {
    let user = go_quote(&identity.user);
    if !attrs.resource_request {
        return ApiError::forbidden(format!(
            "forbidden: User {user} cannot {} path {}",
            attrs.verb,
            go_quote(&attrs.path)
        ))
        .with_details(json!({}));
    }
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {}", go_quote(&attrs.namespace))
    };
    let why = format!(
        "User {user} cannot {} resource {} in API group {} {scope}",
        attrs.verb,
        go_quote(&attrs.combined_resource()),
        go_quote(&attrs.api_group),
    );
    let what = qualified(&attrs.api_group, &attrs.resource);
    let message = if attrs.name.is_empty() {
        format!("{what} is forbidden: {why}")
    } else {
        format!("{what} {} is forbidden: {why}", go_quote(&attrs.name))
    };
    ApiError::forbidden(message)
        .with_details(json!({"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource}))
}

/// One request as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// The user the request acted as (`system:admin` without a token).
    pub user: String,
    pub attributes: RequestAttributes,
    /// Whether authentication and RBAC let the request through (a later 403 can still come
    /// from an injected fault or a terminating namespace).
    pub authorized: bool,
    /// The response's status code.
    pub code: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: &str, path: &str, q: &str) -> RequestAttributes {
        attributes(method, path, Some(q))
    }

    #[test]
    fn request_attributes_follow_the_api_servers_request_info() {
        let a = attrs(
            "PATCH",
            "/apis/lmi.dev/v1alpha1/capacityproviders/x/status",
            "",
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.api_group.as_str(),
                a.combined_resource(),
                a.name.as_str()
            ),
            ("patch", "lmi.dev", "capacityproviders/status".into(), "x")
        );
        let a = attrs(
            "GET",
            "/apis/lmi.dev/v1alpha1/namespaces/t/similarityfunctions",
            "watch=true",
        );
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", "t"));
        let a = attrs(
            "GET",
            "/apis/lmi.dev/v1alpha1/capacityproviders",
            "limit=500",
        );
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
        let a = attrs(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/lmi/leases",
            "fieldSelector=metadata.name%3Dl",
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "l"));
        let a = attrs("GET", "/api/v1/namespaces/team", "");
        assert_eq!(
            (
                a.verb.as_str(),
                a.resource.as_str(),
                a.name.as_str(),
                a.namespace.as_str()
            ),
            ("get", "namespaces", "team", "team")
        );
        let a = attrs("PUT", "/api/v1/namespaces/team/finalize", "");
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("namespaces", "finalize")
        );
        let a = attrs("DELETE", "/api/v1/namespaces/team/configmaps", "");
        assert_eq!(a.verb, "deletecollection");
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/lmi.dev/v1alpha1",
            "/version",
            "/openapi/v3",
        ] {
            let a = attrs("GET", path, "");
            assert!(!a.resource_request, "{path}");
            assert_eq!(a.verb, "get");
        }
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
        let strings = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        PolicyRule {
            api_groups: strings(groups),
            resources: strings(resources),
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            resource_names: if names.is_empty() {
                None
            } else {
                strings(names)
            },
            non_resource_urls: None,
        }
    }

    #[test]
    fn rules_match_verb_group_resource_subresource_and_name() {
        let status = attrs(
            "PATCH",
            "/apis/lmi.dev/v1alpha1/capacityproviders/x/status",
            "",
        );
        assert!(rule_allows(
            &rule(&["lmi.dev"], &["capacityproviders/status"], &["patch"], &[]),
            &status
        ));
        assert!(!rule_allows(
            &rule(&["lmi.dev"], &["capacityproviders"], &["patch"], &[]),
            &status
        ));
        assert!(rule_allows(
            &rule(&["lmi.dev"], &["*/status"], &["patch"], &[]),
            &status
        ));
        assert!(rule_allows(&rule(&["*"], &["*"], &["*"], &[]), &status));
        assert!(!rule_allows(
            &rule(&[""], &["capacityproviders/status"], &["patch"], &[]),
            &status
        ));
        assert!(!rule_allows(
            &rule(
                &["lmi.dev"],
                &["capacityproviders/status"],
                &["update"],
                &[]
            ),
            &status
        ));
        assert!(rule_allows(
            &rule(
                &["lmi.dev"],
                &["capacityproviders/status"],
                &["patch"],
                &["x"]
            ),
            &status
        ));
        assert!(!rule_allows(
            &rule(
                &["lmi.dev"],
                &["capacityproviders/status"],
                &["patch"],
                &["y"]
            ),
            &status
        ));
        // A create has no name, so a rule limited by name never allows it.
        let create = attrs(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/n/leases",
            "",
        );
        assert!(!rule_allows(
            &rule(&["coordination.k8s.io"], &["leases"], &["create"], &["l"]),
            &create
        ));
        assert!(rule_allows(
            &rule(&["coordination.k8s.io"], &["leases"], &["create"], &[]),
            &create
        ));
    }

    #[test]
    fn forbidden_messages_read_like_the_api_servers() {
        let sa = Identity::service_account("lmi-system", "op");
        let e = forbidden(
            &sa,
            &attrs(
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/lmi-system/leases/l",
                "",
            ),
        );
        assert_eq!(
            e.message,
            "leases.coordination.k8s.io \"l\" is forbidden: User \"system:serviceaccount:lmi-system:op\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"lmi-system\""
        );
        let e = forbidden(&sa, &attrs("GET", "/api/v1/namespaces", ""));
        assert_eq!(
            e.message,
            "namespaces is forbidden: User \"system:serviceaccount:lmi-system:op\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        assert_eq!(e.code, 403);
    }

    #[test]
    fn requests_without_a_token_are_the_admin_and_unknown_tokens_are_refused() {
        let mut tokens = HashMap::new();
        tokens.insert("t".to_string(), Identity::service_account("ns", "sa"));
        assert_eq!(
            authenticate(None, &tokens).map(|i| i.user).ok(),
            Some(ADMIN.into())
        );
        assert_eq!(
            authenticate(Some("Bearer t"), &tokens).map(|i| i.user).ok(),
            Some("system:serviceaccount:ns:sa".into())
        );
        assert_eq!(
            authenticate(Some("Bearer x"), &tokens)
                .map_err(|e| e.code)
                .err(),
            Some(401)
        );
        assert_eq!(
            authenticate(Some("Basic eA=="), &tokens)
                .map_err(|e| e.code)
                .err(),
            Some(401)
        );
    }
}
