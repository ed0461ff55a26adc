//! The API server's audit log (`--audit-log-path`, [`POLICY`]): who asked what, and whether
//! RBAC allowed it — read back by tests that prove least privilege and ordering — and the bodies
//! of writes to `lmi.dev` objects, read by the check that the operator never writes a spec.

use std::path::Path;

use serde_json::Value;

/// One request as the API server audited it (its `ResponseComplete` stage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// `user.username`, e.g. `system:serviceaccount:lmi-system:lmi-lmi-operator`.
    pub user: String,
    /// The RBAC verb (`get`, `list`, `watch`, `create`, `patch`, ...).
    pub verb: String,
    /// `objectRef.apiGroup` (empty for the core group).
    pub api_group: String,
    /// `objectRef.resource`, e.g. `capacityproviders`.
    pub resource: String,
    /// `objectRef.subresource`, e.g. `status`.
    pub subresource: String,
    /// `objectRef.namespace`.
    pub namespace: String,
    /// `objectRef.name`.
    pub name: String,
    /// `responseStatus.code`.
    pub code: u16,
    /// Whether the authorizer allowed it (`authorization.k8s.io/decision` annotation).
    pub authorized: bool,
    /// The request URI (path and query).
    pub uri: String,
    /// The request body as sent (for a patch: the patch itself), logged for writes to `lmi.dev`
    /// objects only ([`POLICY`]).
    pub request_object: Option<Value>,
}

impl AuditEvent {
    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The completed requests in the audit log at `path`, oldest first. Lines still being written
/// (the log is appended to while the server runs) are skipped.
pub fn read(path: &Path) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let object = &e["objectRef"];
            AuditEvent {
                user: s(&e["user"]["username"]),
                verb: s(&e["verb"]),
                api_group: s(&object["apiGroup"]),
                resource: s(&object["resource"]),
                subresource: s(&object["subresource"]),
                namespace: s(&object["namespace"]),
                name: s(&object["name"]),
                code: e["responseStatus"]["code"]
                    .as_u64()
                    .and_then(|c| u16::try_from(c).ok())
                    .unwrap_or_default(),
                authorized: e["annotations"]["authorization.k8s.io/decision"] != "forbid",
                uri: s(&e["requestURI"]),
                request_object: e.get("requestObject").cloned(),
            }
        })
        .collect()
}

/// The audit policy: writes to `lmi.dev` objects (and their subresources) at `Request` level,
/// with the body sent; every other request at `Metadata` level (who, what, outcome; no bodies).
pub const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Request
    verbs: [create, update, patch]
    resources:
      - group: lmi.dev
  - level: Metadata
";
