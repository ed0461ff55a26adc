//! Fixtures: CRDs generated with kube's derive (CEL rules, defaults, ranges, list-map
//! conditions, printer columns, selectable fields), and a server with them installed.

use kube::api::{Api, PostParams};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use lmi_test_apiserver::TestApiServer;
use serde::{Deserialize, Serialize};

fn default_size() -> i32 {
    3
}

/// How a widget scales.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub enum Mode {
    Auto,
    Manual,
}

/// A namespaced test kind with a status subresource.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "test.lmi.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wdg",
    printcolumn = r#"{"name": "Zone", "type": "string", "jsonPath": ".spec.zone"}"#,
    printcolumn = r#"{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    selectable = "spec.zone"
)]
#[x_kube(validation = Rule::new("self.size <= 5 || (has(self.mode) && self.mode == 'Manual')").message("sizes above 5 need mode Manual"))]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    /// Availability zone; fixed at creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("zone is immutable"))]
    pub zone: String,
    /// How many parts (1-10).
    #[serde(default = "default_size")]
    #[schemars(range(min = 1, max = 10))]
    pub size: i32,
    /// Subnets (at most 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub subnets: Vec<String>,
    /// Scaling mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// Observed state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    /// Conditions, keyed on type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Cond>,
    /// Generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
pub struct Cond {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A cluster-scoped test kind without a status subresource.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema,
)]
#[kube(
    group = "test.lmi.dev",
    version = "v1",
    kind = "Gizmo",
    shortname = "gz"
)]
pub struct GizmoSpec {
    /// Free text.
    pub note: String,
}

pub fn widget(name: &str, zone: &str) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            zone: zone.into(),
            size: 3,
            ..Default::default()
        },
    )
}

/// A server with the Widget and Gizmo CRDs installed.
pub async fn server() -> TestApiServer {
    let s = TestApiServer::start().await.expect("server starts");
    s.install_crd(serde_json::to_value(Widget::crd()).unwrap())
        .expect("widget CRD");
    s.install_crd(serde_json::to_value(Gizmo::crd()).unwrap())
        .expect("gizmo CRD");
    s
}

pub fn widgets(s: &TestApiServer, ns: &str) -> Api<Widget> {
    Api::namespaced(s.client(), ns)
}

pub async fn create_widget(api: &Api<Widget>, name: &str, zone: &str) -> Widget {
    api.create(&PostParams::default(), &widget(name, zone))
        .await
        .expect("create widget")
}

/// The `Status` of a failed kube call.
pub fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
