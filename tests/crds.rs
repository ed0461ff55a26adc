//! `crds/` is exactly what `lmi-operator crds` prints, and the generated schema keeps the parts
//! of the contract users and tools rely on.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use lmi_operator::api::crdgen;
use serde_json::Value;

fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

fn crd(plural: &str) -> CustomResourceDefinition {
    crdgen::all()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD {plural}"))
}

fn version(crd: &CustomResourceDefinition) -> &CustomResourceDefinitionVersion {
    assert_eq!(crd.spec.versions.len(), 1);
    &crd.spec.versions[0]
}

fn schema(plural: &str) -> Value {
    let crd = crd(plural);
    let schema = version(&crd).schema.as_ref().expect("schema");
    serde_json::to_value(schema.open_api_v3_schema.as_ref().expect("openAPIV3Schema"))
        .expect("schema serializes")
}

fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, key| {
        let next = &node["properties"][key];
        assert!(!next.is_null(), "no property {key} in path {path}");
        next
    })
}

#[test]
fn crds_dir_matches_the_generator_byte_for_byte() {
    let expected: Vec<(String, String)> = crdgen::all()
        .iter()
        .map(|c| (crdgen::file_name(c), crdgen::to_yaml(c).expect("yaml")))
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(crds_dir())
        .expect("crds/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        on_disk, names,
        "crds/ holds other files than the generated CRDs"
    );
    for (name, yaml) in expected {
        let current = std::fs::read_to_string(crds_dir().join(&name)).expect("read crd");
        assert!(
            current == yaml,
            "crds/{name} is stale: run `cargo run -- crds --out crds` and commit the result"
        );
    }
}

#[test]
fn the_crds_command_prints_and_writes_the_same_crds() {
    let bin = env!("CARGO_BIN_EXE_lmi-operator");
    let printed = Command::new(bin)
        .arg("crds")
        .output()
        .expect("run lmi-operator crds");
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let files: Vec<String> = [
        "capacityproviders.lmi.dev.yaml",
        "similarityfunctions.lmi.dev.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(crds_dir().join(f)).expect("read"))
    .collect();
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        files.join("---\n")
    );

    let out = std::env::temp_dir().join(format!("lmi-crds-{}", std::process::id()));
    let written = Command::new(bin)
        .args(["crds", "--out"])
        .arg(&out)
        .status()
        .expect("run lmi-operator crds --out");
    assert!(written.success());
    for (name, expected) in [
        "capacityproviders.lmi.dev.yaml",
        "similarityfunctions.lmi.dev.yaml",
    ]
    .iter()
    .zip(&files)
    {
        let got = std::fs::read_to_string(out.join(name)).expect("written file");
        assert_eq!(&got, expected, "{name}");
    }
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn names_scope_and_subresources_are_pinned() {
    let cp = crd("capacityproviders");
    assert_eq!(cp.spec.group, "lmi.dev");
    assert_eq!(cp.spec.scope, "Cluster");
    assert_eq!(cp.spec.names.kind, "CapacityProvider");
    assert_eq!(
        cp.spec.names.short_names.as_deref(),
        Some(&["lmicp".to_owned()][..])
    );
    assert_eq!(
        cp.spec.names.categories.as_deref(),
        Some(&["lmi".to_owned()][..])
    );

    let sf = crd("similarityfunctions");
    assert_eq!(sf.spec.scope, "Namespaced");
    assert_eq!(sf.spec.names.kind, "SimilarityFunction");
    assert_eq!(
        sf.spec.names.short_names.as_deref(),
        Some(&["simfn".to_owned()][..])
    );
    assert_eq!(
        sf.spec.names.categories.as_deref(),
        Some(&["lmi".to_owned()][..])
    );

    for crd in [&cp, &sf] {
        let v = version(crd);
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage);
        let status = v.subresources.as_ref().and_then(|s| s.status.as_ref());
        assert!(
            status.is_some(),
            "{}: status subresource",
            crd.spec.names.kind
        );
    }
}

#[test]
fn printer_columns_show_readiness_state_and_where_it_runs() {
    let columns = |plural: &str| -> Vec<(String, String, i32)> {
        version(&crd(plural))
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name, c.json_path, c.priority.unwrap_or(0)))
            .collect()
    };
    let ready = ".status.conditions[?(@.type==\"Ready\")].status".to_owned();
    let cp = columns("capacityproviders");
    assert!(cp.contains(&("Ready".into(), ready.clone(), 0)));
    assert!(cp.contains(&("State".into(), ".status.state".into(), 0)));
    assert!(cp.contains(&("ARN".into(), ".status.arn".into(), 1)));
    assert!(cp.contains(&("Age".into(), ".metadata.creationTimestamp".into(), 0)));

    let sf = columns("similarityfunctions");
    assert!(sf.contains(&("Ready".into(), ready, 0)));
    assert!(sf.contains(&(
        "Provider".into(),
        ".spec.capacityProviderRef.name".into(),
        0
    )));
    assert!(sf.contains(&("Version".into(), ".status.version".into(), 0)));
    assert!(sf.contains(&("Age".into(), ".metadata.creationTimestamp".into(), 0)));
}

#[test]
fn conditions_are_a_list_map_keyed_on_type_with_observed_generation() {
    for plural in ["capacityproviders", "similarityfunctions"] {
        let schema = schema(plural);
        let conditions = at(&schema, "status.conditions");
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{plural}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
        assert!(!conditions["items"]["properties"]["observedGeneration"].is_null());
        assert!(!at(&schema, "status.observedGeneration").is_null());
    }
}

#[test]
fn aws_ranges_and_defaults_are_in_the_schema() {
    let cp = schema("capacityproviders");
    assert_eq!(at(&cp, "spec.vpc.subnetIds")["maxItems"], 16);
    assert_eq!(at(&cp, "spec.vpc.subnetIds")["minItems"], 1);
    assert_eq!(at(&cp, "spec.vpc.securityGroupIds")["maxItems"], 5);
    assert_eq!(at(&cp, "spec.scaling.maxVCpuCount")["minimum"], 2.0);
    assert_eq!(at(&cp, "spec.scaling.maxVCpuCount")["maximum"], 15000.0);
    assert_eq!(
        at(&cp, "spec.instances.architecture")["enum"],
        serde_json::json!(["x86_64", "arm64"])
    );
    assert_eq!(at(&cp, "spec.deletionPolicy")["default"], "Delete");
    assert_eq!(at(&cp, "spec.driftPolicy")["default"], "Correct");
    assert_eq!(
        cp["properties"]["spec"]["required"],
        serde_json::json!(["operatorRoleArn", "vpc"])
    );

    let sf = schema("similarityfunctions");
    assert_eq!(at(&sf, "spec.memoryMiB")["maximum"], 32768.0);
    assert_eq!(at(&sf, "spec.memoryMiB")["default"], 4096);
    assert_eq!(
        at(&sf, "spec.memoryGiBPerVCpu")["enum"],
        serde_json::json!([2, 4, 8])
    );
    assert_eq!(
        at(&sf, "spec.maxConcurrencyPerEnvironment")["maximum"],
        1600.0
    );
    assert_eq!(
        at(&sf, "spec.scaling.maxExecutionEnvironments")["maximum"],
        15000.0
    );
    assert_eq!(
        at(&sf, "spec.versions")["default"],
        serde_json::json!({"retain": 3})
    );
    assert_eq!(
        at(&sf, "spec.environment")["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
}

#[test]
fn immutable_fields_carry_transition_rules() {
    let rules = |schema: &Value, path: &str| -> Vec<String> {
        at(schema, path)["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["rule"].as_str().map(str::to_owned))
            .collect()
    };
    let cp = schema("capacityproviders");
    for field in [
        "spec.awsName",
        "spec.region",
        "spec.operatorRoleArn",
        "spec.instances",
        "spec.kmsKeyArn",
        "spec.vpc.subnetIds",
        "spec.vpc.subnetSelector",
        "spec.vpc.securityGroupIds",
        "spec.vpc.securityGroupSelector",
    ] {
        assert!(
            rules(&cp, field).contains(&"self == oldSelf".to_owned()),
            "{field}"
        );
    }
    let sf = schema("similarityfunctions");
    assert!(rules(&sf, "spec.awsName").contains(&"self == oldSelf".to_owned()));
    // a function moves between providers (UpdateFunctionConfiguration): not immutable
    assert!(rules(&sf, "spec.capacityProviderRef").is_empty());
    // tag values follow AWS's pattern in the schema itself
    assert_eq!(
        at(&sf, "spec.tags")["additionalProperties"]["pattern"],
        lmi_operator::api::common::TAG_PATTERN
    );
}

/// `kubectl explain` prints descriptions: every field a user can write must have one.
#[test]
fn every_field_has_a_description() {
    fn walk(node: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(properties) = node["properties"].as_object() {
            for (name, child) in properties {
                let child_path = format!("{path}.{name}");
                if child["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(child_path.clone());
                }
                walk(child, &child_path, missing);
            }
        }
        if node["items"].is_object() {
            walk(&node["items"], &format!("{path}[]"), missing);
        }
    }
    for plural in ["capacityproviders", "similarityfunctions"] {
        let schema = schema(plural);
        let mut missing = Vec::new();
        walk(&schema["properties"]["spec"], "spec", &mut missing);
        walk(&schema["properties"]["status"], "status", &mut missing);
        assert!(
            missing.is_empty(),
            "{plural}: fields without description: {missing:?}"
        );
    }
}
