//! The Argo CD health checks (`deploy/argocd/health.lua`), run with Lua 5.1 — the dialect of
//! Argo CD's gopher-lua — against the fixtures and expectations in `health_test.yaml`, and the
//! `argocd-cm` snippet kept identical to the script.

use std::path::{Path, PathBuf};

use lmi_operator::api::conditions::reason;
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

#[test]
fn errors_that_need_a_human_degrade_and_transient_ones_progress() {
    // Every reason an AWS error can carry, and what it should mean in Argo CD: the classes of
    // src/aws/error.rs (Terminal → Degraded; Retryable and NotFound → Progressing).
    let terminal = [
        "AccessDenied",
        "InvalidRequest",
        "LimitExceeded",
        "AwsError",
    ];
    let transient = [
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
    ];
    for r in lmi_operator::aws::error::REASONS {
        assert!(
            terminal.contains(r) || transient.contains(r),
            "AWS error reason {r} is new: decide whether Argo CD shows it Degraded (health.lua)"
        );
    }
    // A handler build missing from the image (SimilarityFunction): only a new image or
    // --handler-dir fixes it. A Kubernetes request the API server refused (RBAC, validation):
    // only a fixed installation does.
    for r in terminal
        .iter()
        .chain(&["HandlerBuildUnavailable", "KubeRequestRejected"])
    {
        assert_eq!(health(&failing(r)).0, "Degraded", "{r}");
    }
    for r in transient.iter().chain(&[
        "KubeConflict",
        "KubeThrottled",
        "KubeServerError",
        "KubeUnreachable",
        // Adding or removing the finalizer failed for a reason other than the reconcile's.
        "FinalizerFailed",
        // A reconcile abandoned at --reconcile-timeout, retried.
        "ReconcileTimedOut",
        "VersionsAttached",
        // Waiting while Lambda is busy with a resource or still deleting it.
        "AwsBusy",
        "AwsDeleting",
    ]) {
        assert_eq!(health(&failing(r)).0, "Progressing", "{r}");
    }
}

#[test]
fn condition_reasons_map_to_the_documented_health() {
    let not_ready = |r: &str| {
        json!({
            "metadata": {"name": "x", "generation": 1},
            "status": {"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "False", "reason": r, "message": "m",
                 "observedGeneration": 1}
            ]}
        })
    };
    for r in [
        reason::AWS_FAILED,
        reason::INVALID_SPEC,
        reason::ACCESS_DENIED,
        reason::NAME_CONFLICT,
        reason::NETWORK_NOT_FOUND,
        reason::MULTIPLE_VPCS,
        reason::PUBLIC_SUBNET,
        reason::INSTANCE_TYPE_UNAVAILABLE,
        reason::NAMESPACE_NOT_ALLOWED,
        reason::ROLE_NOT_ALLOWED,
        reason::CODE_SOURCE_NOT_ALLOWED,
        reason::CATALOG_SOURCE_NOT_ALLOWED,
        reason::FUNCTION_NAME_NOT_ALLOWED,
        reason::TENANT_LIMIT_EXCEEDED,
        // A SimilarityFunction deleted or changed outside Git under driftPolicy Report is not
        // Ready and stays so until someone acts.
        reason::DRIFT_DETECTED,
    ] {
        assert_eq!(health(&not_ready(r)).0, "Degraded", "{r}");
    }
    for r in [
        reason::PROVISIONING,
        reason::TRANSIENT_ERROR,
        reason::PROVIDER_NOT_FOUND,
        reason::PROVIDER_NOT_READY,
    ] {
        assert_eq!(health(&not_ready(r)).0, "Progressing", "{r}");
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
