//! The Argo CD health checks (`deploy/argocd/health.lua`), run with Lua 5.1 — the dialect of
//! Argo CD's gopher-lua — against the fixtures and expectations in `health_test.yaml`, and the
//! `argocd-cm` snippet kept identical to the script.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mlua::{Lua, LuaSerdeExt, SerializeOptions, Table};
use serde::Deserialize;
use serde_json::{Value, json};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn script() -> String {
    read(&dir().join("health.lua"))
}

/// Runs the health script on `object`: (status, message).
fn health(object: &Value) -> (String, String) {
    let lua = Lua::new();
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).expect("object to Lua");
    lua.globals().set("obj", obj).expect("set obj");
    let result: Table = lua
        .load(script())
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|e| panic!("health.lua failed on {object}: {e}"));
    let status: String = result.get("status").expect("status");
    let message: Option<String> = result.get("message").expect("message");
    (status, message.unwrap_or_default())
}

#[derive(Deserialize)]
struct Suite {
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    input_path: String,
    health_status: Expected,
}

#[derive(Deserialize)]
struct Expected {
    status: String,
    message: String,
}

#[test]
fn every_fixture_gets_its_expected_health() {
    let suite: Suite =
        serde_saphyr::from_str(&read(&dir().join("health_test.yaml"))).expect("health_test.yaml");
    let mut failures = Vec::new();
    for case in &suite.tests {
        let object: Value =
            serde_saphyr::from_str(&read(&dir().join(&case.input_path))).expect("fixture");
        let (status, message) = health(&object);
        if status != case.health_status.status || message != case.health_status.message {
            failures.push(format!(
                "{}: got {status} {message:?}, expected {} {:?}",
                case.input_path, case.health_status.status, case.health_status.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every fixture is part of the suite.
    let mut listed: Vec<&str> = suite.tests.iter().map(|c| c.input_path.as_str()).collect();
    listed.sort();
    let mut files: Vec<String> = std::fs::read_dir(dir().join("testdata"))
        .expect("testdata")
        .map(|e| {
            format!(
                "testdata/{}",
                e.expect("entry").file_name().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    assert_eq!(listed, files, "fixtures and health_test.yaml disagree");
}

/// A resource whose last reconcile failed for `reason` and is not Ready.
fn failing(reason: &str) -> Value {
    json!({
        "metadata": {"name": "x", "generation": 2},
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "Synced", "status": "False", "reason": reason, "message": "m",
                 "observedGeneration": 2},
                {"type": "Ready", "status": "Unknown", "reason": "Provisioning", "message": "m",
                 "observedGeneration": 2},
            ]
        }
    })
}

/// A resource not Ready for `reason`.
fn not_ready(reason: &str) -> Value {
    json!({
        "metadata": {"name": "x", "generation": 1},
        "status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "False", "reason": reason, "message": "m",
             "observedGeneration": 1}
        ]}
    })
}

/// Every value of `pub mod reason` in `src/api/conditions.rs`, read from the source so that a
/// reason added there cannot be missed here.
fn condition_reasons() -> BTreeSet<String> {
    let source = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/conditions.rs"));
    let module = source
        .split("pub mod reason {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("src/api/conditions.rs has a `pub mod reason` block");
    let reasons: BTreeSet<String> = module
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .map(|decl| {
            decl.split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("a reason that is not a string literal: {decl}"))
                .to_owned()
        })
        .collect();
    assert!(reasons.len() > 20, "read only {reasons:?}");
    reasons
}

/// Reasons that need a human: Argo CD shows the resource Degraded.
const DEGRADED: &[&str] = &[
    // AWS errors of the Terminal class (src/aws/error.rs).
    "AccessDenied",
    "InvalidRequest",
    "LimitExceeded",
    "AwsError",
    // Only a new image or --handler-dir fixes a missing handler build; only a fixed installation
    // fixes a Kubernetes request the API server refused (RBAC, validation).
    "HandlerBuildUnavailable",
    "KubeRequestRejected",
    // Ready's terminal reasons.
    "AwsFailed",
    "InvalidSpec",
    "NameConflict",
    "NetworkNotFound",
    "MultipleVpcs",
    "PublicSubnet",
    "InstanceTypeUnavailable",
    "NamespaceNotAllowed",
    "RoleNotAllowed",
    "CodeSourceNotAllowed",
    "CatalogSourceNotAllowed",
    "FunctionNameNotAllowed",
    "TenantLimitExceeded",
    "VersionBudgetExceeded",
    "VersionLimitExceeded",
    // A SimilarityFunction deleted or changed outside Git under driftPolicy Report is not Ready
    // and stays so until someone acts.
    "DriftDetected",
];

/// Reasons that pass by themselves: Argo CD shows the resource Progressing.
const PROGRESSING: &[&str] = &[
    // AWS errors of the Retryable and NotFound classes.
    "Throttled",
    "AwsServerError",
    "AwsUnreachable",
    "NotFound",
    "Conflict",
    "AwsUnexpectedResponse",
    // IAM propagation: retried fast for about two minutes, then slowly; a role that never
    // becomes assumable also shows in Ready (the function or provider is not created).
    "RoleNotAssumableYet",
    // Expired credentials or a refused signature: the credential chain refreshes them.
    "CredentialsExpired",
    "KubeConflict",
    "KubeThrottled",
    "KubeServerError",
    "KubeUnreachable",
    "FinalizerFailed",
    "ReconcileTimedOut",
    // Deletion waiting for versions to detach, or for Lambda to finish with a resource.
    "VersionsAttached",
    "AwsBusy",
    "AwsDeleting",
    "Provisioning",
    "TransientError",
    "ProviderNotFound",
    "ProviderNotReady",
];

/// Reasons of a condition that is fine (or True).
const FINE: &[&str] = &[
    "Available",
    "Applied",
    "InSync",
    "DriftCorrected",
    "NotBlocked",
];

/// Reasons of a warning beside Ready=True (NetworkReady=False): the resource works.
const WARNINGS: &[&str] = &["NoTelemetryEgress"];

#[test]
fn every_reason_the_operator_sets_has_the_documented_health() {
    // Every reason: the condition reasons, AWS's error reasons, the controllers' own error
    // reasons and the StateReasonCodes of a version that failed to start.
    let mut all = condition_reasons();
    all.extend(
        lmi_operator::aws::error::REASONS
            .iter()
            .chain(lmi_operator::controller::error::REASONS)
            .map(|r| (*r).to_owned()),
    );
    all.extend(
        lmi_operator::controller::similarity_function::versions::failed_reasons()
            .map(str::to_owned),
    );
    let failed_versions: BTreeSet<&str> =
        lmi_operator::controller::similarity_function::versions::failed_reasons().collect();
    for r in &all {
        let r = r.as_str();
        let expected = if DEGRADED.contains(&r) || failed_versions.contains(r) {
            // A version AWS could not start: the previous one keeps serving; someone should look.
            "Degraded"
        } else if PROGRESSING.contains(&r) {
            "Progressing"
        } else if FINE.contains(&r) {
            continue;
        } else if WARNINGS.contains(&r) {
            let warned = json!({
                "metadata": {"name": "x", "generation": 1},
                "status": {"observedGeneration": 1, "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Available", "message": "ok",
                     "observedGeneration": 1},
                    {"type": "NetworkReady", "status": "False", "reason": r, "message": "m",
                     "observedGeneration": 1},
                ]}
            });
            let (status, message) = health(&warned);
            assert_eq!(status, "Healthy", "{r}");
            assert!(message.contains(r), "{r}: {message}");
            continue;
        } else {
            panic!(
                "reason {r} is new: decide whether Argo CD shows it Degraded (deploy/argocd/\
                 health.lua) and list it here"
            );
        };
        // As the reason of a failed reconcile (Synced) and as the reason Ready is False.
        assert_eq!(health(&failing(r)).0, expected, "Synced=False {r}");
        assert_eq!(health(&not_ready(r)).0, expected, "Ready=False {r}");
    }
    // And the lists name nothing the operator no longer sets.
    for r in DEGRADED
        .iter()
        .chain(PROGRESSING)
        .chain(FINE)
        .chain(WARNINGS)
    {
        assert!(
            all.contains(*r),
            "{r} is listed but the operator never sets it"
        );
    }
}

#[test]
fn a_terminal_condition_of_an_older_generation_does_not_degrade_a_new_spec() {
    let object = json!({
        "metadata": {"name": "x", "generation": 3},
        "status": {"observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": "False", "reason": "PublicSubnet", "message": "m",
             "observedGeneration": 2}
        ]}
    });
    assert_eq!(
        health(&object),
        (
            "Progressing".to_owned(),
            "Waiting for the operator to apply generation 3".to_owned()
        )
    );
}

#[test]
fn the_argocd_cm_snippet_installs_the_script_for_both_kinds() {
    let cm: Value = serde_saphyr::from_str(&read(&dir().join("argocd-cm.yaml"))).expect("yaml");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let data = cm["data"].as_object().expect("data");
    assert_eq!(data.len(), 2);
    for kind in ["CapacityProvider", "SimilarityFunction"] {
        let key = format!("resource.customizations.health.lmi.dev_{kind}");
        assert_eq!(
            data.get(&key).and_then(Value::as_str),
            Some(script().as_str()),
            "{key} differs from deploy/argocd/health.lua"
        );
    }
}
