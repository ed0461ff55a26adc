//! `helm lint` and `helm template`: the chart renders the objects an install needs, each of
//! them a valid Kubernetes object of its kind.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::helm::{self, REQUIRED};

#[test]
fn lint_passes_with_default_and_full_values() {
    let chart = helm::chart();
    let chart = chart.to_str().expect("utf-8");
    let default = helm::run(&["lint", "--strict", chart, "--set", "clusterName=test"]);
    assert!(default.ok, "{}{}", default.stdout, default.stderr);
    let full = helm::run(&["lint", "--strict", chart, "-f", &helm::full_values()]);
    assert!(full.ok, "{}{}", full.stdout, full.stderr);
    // Without any values lint still passes: the missing cluster name is a warning there, an
    // error at install (see `schema::the_cluster_name_is_required`).
    let bare = helm::run(&["lint", chart]);
    assert!(bare.ok, "{}{}", bare.stdout, bare.stderr);
}

#[test]
fn default_values_render_the_operator_and_its_rbac_and_crds() {
    let objects = helm::render(REQUIRED);
    assert_eq!(
        helm::kinds(&objects),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    );
}

#[test]
fn full_values_add_the_service_monitor_and_disruption_budget() {
    let objects = helm::render(&["-f", &helm::full_values()]);
    let kinds = helm::kinds(&objects);
    assert!(kinds.contains(&"ServiceMonitor".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"PodDisruptionBudget".to_owned()),
        "{kinds:?}"
    );

    let monitor = helm::find(&objects, "ServiceMonitor", None);
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let service = helm::find(&objects, "Service", None);
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"], service["spec"]["selector"],
        "the ServiceMonitor selects the metrics Service"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");

    let pdb: PodDisruptionBudget = typed(helm::find(&objects, "PodDisruptionBudget", None));
    let deployment: Deployment = typed(helm::find(&objects, "Deployment", None));
    let spec = pdb.spec.expect("spec");
    assert_eq!(
        spec.selector.and_then(|s| s.match_labels),
        deployment.spec.selector.match_labels,
        "the PodDisruptionBudget covers the operator's pods"
    );
}

#[test]
fn the_service_monitor_needs_the_service() {
    let run = helm::template(&[
        "--set",
        "clusterName=t",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.service.enabled=false",
    ]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("needs metrics.service.enabled"),
        "{}",
        run.stderr
    );
}

/// Deserializes into the k8s-openapi type and checks that nothing was lost on the way: a
/// misspelt or misplaced field in a template would be silently dropped by the API server.
fn typed<T: DeserializeOwned + Serialize>(object: &Value) -> T {
    let value: T = serde_json::from_value(object.clone()).unwrap_or_else(|e| {
        panic!(
            "{} {} does not deserialize: {e}",
            object["kind"], object["metadata"]["name"]
        )
    });
    let back = serde_json::to_value(&value).expect("serialize");
    let missing = lost_fields(object, &back, String::new());
    assert!(
        missing.is_empty(),
        "{} {}: fields the type does not know: {missing:?}",
        object["kind"],
        object["metadata"]["name"]
    );
    value
}

fn lost_fields(original: &Value, typed: &Value, path: String) -> Vec<String> {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .flat_map(|(k, v)| match b.get(k) {
                Some(bv) => lost_fields(v, bv, format!("{path}.{k}")),
                None if v.is_null() => vec![],
                None => vec![format!("{path}.{k}")],
            })
            .collect(),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .flat_map(|(i, (x, y))| lost_fields(x, y, format!("{path}[{i}]")))
            .collect(),
        _ => vec![],
    }
}

fn check_all_typed(objects: &[Value]) {
    for object in objects {
        match object["kind"].as_str().unwrap_or_default() {
            "Deployment" => drop(typed::<Deployment>(object)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(object)),
            "Service" => drop(typed::<Service>(object)),
            "ClusterRole" => drop(typed::<ClusterRole>(object)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(object)),
            "Role" => drop(typed::<Role>(object)),
            "RoleBinding" => drop(typed::<RoleBinding>(object)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(object)),
            "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(object)),
            // Not a core type; its fields are checked in
            // `full_values_add_the_service_monitor_and_disruption_budget`.
            "ServiceMonitor" => {}
            other => panic!("unexpected kind {other}"),
        }
    }
}

#[test]
fn every_rendered_object_is_a_valid_object_of_its_kind() {
    check_all_typed(&helm::render(REQUIRED));
    check_all_typed(&helm::render(&["-f", &helm::full_values()]));
}

#[test]
fn namespaced_objects_land_in_the_release_namespace() {
    for object in helm::render(&["-f", &helm::full_values()]) {
        let kind = object["kind"].as_str().unwrap_or_default();
        let cluster_scoped = matches!(
            kind,
            "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        let namespace = &object["metadata"]["namespace"];
        if cluster_scoped {
            assert!(namespace.is_null(), "{kind} must not have a namespace");
        } else {
            assert_eq!(namespace, "lmi-system", "{kind}");
        }
    }
}

#[test]
fn service_account_carries_the_irsa_annotation_and_every_binding_names_it() {
    let objects = helm::render(&["-f", &helm::full_values()]);
    let sa: ServiceAccount = typed(helm::find(&objects, "ServiceAccount", None));
    let name = sa.metadata.name.clone().expect("name");
    assert_eq!(
        sa.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("eks.amazonaws.com/role-arn"))
            .map(String::as_str),
        Some("arn:aws:iam::123456789012:role/lmi-operator")
    );
    let deployment: Deployment = typed(helm::find(&objects, "Deployment", None));
    let pod = deployment.spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(name.as_str()));
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let binding = helm::find(&objects, kind, None);
        assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount", "{kind}");
        assert_eq!(binding["subjects"][0]["name"], name.as_str(), "{kind}");
        assert_eq!(binding["subjects"][0]["namespace"], "lmi-system", "{kind}");
    }
}

#[test]
fn an_existing_service_account_can_be_used_instead() {
    let objects = helm::render(&[
        "--set",
        "clusterName=t",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=platform-sa",
    ]);
    assert!(!helm::kinds(&objects).contains(&"ServiceAccount".to_owned()));
    let deployment = helm::find(&objects, "Deployment", None);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-sa"
    );
    let run = helm::template(&[
        "--set",
        "clusterName=t",
        "--set",
        "serviceAccount.create=false",
    ]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("serviceAccount.name is required"),
        "{}",
        run.stderr
    );
}

#[test]
fn notes_say_how_to_check_the_install() {
    let chart = helm::chart();
    let run = helm::run(&[
        "install",
        "lmi",
        chart.to_str().expect("utf-8"),
        "--dry-run=client",
        "--namespace",
        "lmi-system",
        "--set",
        "clusterName=test",
    ]);
    assert!(run.ok, "{}", run.stderr);
    let notes = run.stdout.split("NOTES:").nth(1).expect("NOTES section");
    assert!(
        notes.contains("rollout status deployment/lmi-lmi-operator"),
        "{notes}"
    );
    assert!(notes.contains("get lease lmi-operator-leader"), "{notes}");
    assert!(
        notes.contains(r#"serviceAccount.annotations."eks\.amazonaws\.com/role-arn""#),
        "no IRSA hint: {notes}"
    );
}
