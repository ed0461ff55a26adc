//! The chart's CRDs: a byte-for-byte copy of the generated `crds/`, rendered as templates with
//! `helm.sh/resource-policy: keep`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use lmi_operator::api::crdgen;
use serde_json::Value;

use crate::helm::{self, REQUIRED};

fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn chart_crds_are_identical_to_the_generated_crds() {
    let generated = helm::root().join("crds");
    let chart = helm::chart().join("files/crds");
    assert_eq!(
        file_names(&chart),
        file_names(&generated),
        "charts/lmi-operator/files/crds holds other files than crds/: run scripts/generate"
    );
    for name in file_names(&generated) {
        assert!(
            helm::read(&chart.join(&name)) == helm::read(&generated.join(&name)),
            "charts/lmi-operator/files/crds/{name} is stale: run scripts/generate"
        );
    }
}

/// Numbers compared by value: the template round-trips the CRD through Helm's YAML, which
/// writes `15000.0` as `15000`.
fn normalise(v: Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        other => other,
    }
}

#[test]
fn rendered_crds_are_the_generated_ones_kept_on_uninstall() {
    let objects = helm::render(REQUIRED);
    let rendered: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    let generated = crdgen::all();
    assert_eq!(rendered.len(), generated.len());
    for crd in generated {
        let name = crd.metadata.name.clone().expect("name");
        let object = rendered
            .iter()
            .find(|o| o["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not rendered"));
        assert_eq!(
            object["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm"
        );
        let typed: CustomResourceDefinition =
            serde_json::from_value((*object).clone()).expect("CRD");
        assert_eq!(
            normalise(serde_json::to_value(&typed.spec).expect("spec")),
            normalise(serde_json::to_value(&crd.spec).expect("spec")),
            "{name}: the rendered spec differs from the generator's"
        );
    }
}

#[test]
fn crds_can_be_left_out_or_not_kept() {
    let without = helm::render(&["--set", "clusterName=t", "--set", "crds.install=false"]);
    assert!(!helm::kinds(&without).contains(&"CustomResourceDefinition".to_owned()));
    let not_kept = helm::render(&["--set", "clusterName=t", "--set", "crds.keep=false"]);
    for crd in not_kept
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
    {
        assert!(crd["metadata"]["annotations"]["helm.sh/resource-policy"].is_null());
    }
}

#[test]
fn crds_are_templates_so_upgrades_apply_them() {
    // Helm installs a chart's crds/ folder once and never upgrades it.
    assert!(
        !helm::chart().join("crds").exists(),
        "CRDs in the chart's crds/ folder would never be upgraded"
    );
}
