//! What the server serves: the built-in resources and those of every established CRD, looked up
//! by group/version/plural. Rebuilt from the stored CRDs whenever one changes.

use std::sync::Arc;

use serde_json::{Value, json};

/// Built-in kinds (served with k8s-openapi types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Namespace,
    Event,
    EventsV1,
    Secret,
    ConfigMap,
    ServiceAccount,
    Lease,
    Crd,
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
}

/// The parts of a CRD version the server needs to serve custom resources.
#[derive(Clone, Debug)]
pub struct CustomVersion {
    /// `openAPIV3Schema` of this version (`{}` when absent).
    pub schema: Value,
    /// `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// Extra `selectableFields` JSON paths (e.g. `.spec.color`).
    pub selectable_fields: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Source {
    Builtin(Builtin),
    Custom(Arc<CustomVersion>),
}

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub source: Source,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// Group and resource under which objects are stored (events.k8s.io/v1 events share the
    /// core/v1 storage).
    pub fn storage(&self) -> (&str, &str) {
        if self.builtin() == Some(Builtin::EventsV1) {
            ("", "events")
        } else {
            (&self.group, &self.plural)
        }
    }
    pub fn is_custom(&self) -> bool {
        matches!(self.source, Source::Custom(_))
    }
    pub fn builtin(&self) -> Option<Builtin> {
        match self.source {
            Source::Builtin(b) => Some(b),
            Source::Custom(_) => None,
        }
    }
    pub fn custom(&self) -> Option<&CustomVersion> {
        match &self.source {
            Source::Custom(c) => Some(c),
            Source::Builtin(_) => None,
        }
    }
    /// Whether writes to the main resource bump `metadata.generation` (CRs and CRDs do).
    pub fn has_generation(&self) -> bool {
        self.is_custom() || self.builtin() == Some(Builtin::Crd)
    }
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

fn builtin(
    (group, version): (&str, &str),
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    b: Builtin,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        status_subresource: status,
        source: Source::Builtin(b),
    }
}

/// The built-in resources this server serves.
pub fn builtins() -> Vec<ResourceType> {
    use Builtin::*;
    const RBAC: &str = crate::authz::RBAC_GROUP;
    vec![
        builtin(
            ("", "v1"),
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            true,
            Namespace,
        ),
        builtin(("", "v1"), "events", "Event", true, &["ev"], false, Event),
        builtin(("", "v1"), "secrets", "Secret", true, &[], false, Secret),
        builtin(
            ("", "v1"),
            "configmaps",
            "ConfigMap",
            true,
            &["cm"],
            false,
            ConfigMap,
        ),
        builtin(
            ("", "v1"),
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            ServiceAccount,
        ),
        builtin(
            ("events.k8s.io", "v1"),
            "events",
            "Event",
            true,
            &["ev"],
            false,
            EventsV1,
        ),
        builtin(
            ("coordination.k8s.io", "v1"),
            "leases",
            "Lease",
            true,
            &[],
            false,
            Lease,
        ),
        builtin(
            ("apiextensions.k8s.io", "v1"),
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            Crd,
        ),
        builtin(
            (RBAC, "v1"),
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
            ClusterRole,
        ),
        builtin(
            (RBAC, "v1"),
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            ClusterRoleBinding,
        ),
        builtin((RBAC, "v1"), "roles", "Role", true, &[], false, Role),
        builtin(
            (RBAC, "v1"),
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
            RoleBinding,
        ),
    ]
}

/// The resource types one stored CRD serves (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return vec![];
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    versions
        .iter()
        .filter(|v| v["served"] != json!(false))
        .filter_map(|v| {
            let version = v["name"].as_str()?.to_string();
            let custom = CustomVersion {
                schema: v["schema"]["openAPIV3Schema"].clone(),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                selectable_fields: v["selectableFields"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f["jsonPath"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            Some(ResourceType {
                group: group.to_string(),
                version,
                plural: plural.to_string(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                kind: kind.to_string(),
                list_kind: names["listKind"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| format!("{kind}List")),
                namespaced: spec["scope"] == json!("Namespaced"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status_subresource: v["subresources"]["status"].is_object(),
                source: Source::Custom(Arc::new(custom)),
            })
        })
        .collect()
}

/// All served resource types.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub types: Vec<ResourceType>,
}

impl Registry {
    pub fn new(crds: &[Value]) -> Self {
        let mut types = builtins();
        for crd in crds {
            types.extend(from_crd(crd));
        }
        Self { types }
    }
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }
    /// Group → versions in the order first seen (built-ins first, CRD version order after).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) => {
                    if !vs.contains(&t.version) {
                        vs.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }
}
