//! The operator as the Helm chart deploys it: the chart rendered by the real `helm` (default
//! values), its ServiceAccount, ClusterRole, Role and bindings created in the test cluster, and
//! a token the API server issued for that ServiceAccount (`TokenRequest`). The operator in every
//! end-to-end test authenticates with the token, so RBAC refuses anything the chart does not
//! grant.
//!
//! Also the two least-privilege checks every world runs when it is dropped (see
//! [`check_permissions`]): no request of the operator was refused by RBAC, and every AWS action
//! it called is in `deploy/iam/operator-policy.json`. The reverse direction (nothing granted
//! that is never used) needs a full lifecycle and lives in `tests/runtime/permissions.rs`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use lmi_test_support::kube::{AuditEvent, ControlPlane};
use serde_json::Value;

/// The release namespace: the operator's namespace, where its Lease and Role live.
pub const NAMESPACE: &str = "lmi-system";
/// The release name.
pub const RELEASE: &str = "lmi";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `helm template` of the chart with the default values and `extra` arguments; the objects.
pub fn render(extra: &[&str]) -> Vec<Value> {
    let helm = root().join(".tools/bin/helm");
    assert!(
        helm.is_file(),
        "{} is missing: run scripts/fetch-tools (scripts/test does)",
        helm.display()
    );
    let out = Command::new(&helm)
        .args(["template", RELEASE])
        .arg(root().join("charts/lmi-operator"))
        .args(["--namespace", NAMESPACE, "--set", "clusterName=e2e"])
        .args(extra)
        // Keep helm away from the user's repositories, caches and plugins.
        .env("HELM_CONFIG_HOME", root().join("target/helm/config"))
        .env("HELM_CACHE_HOME", root().join("target/helm/cache"))
        .env("HELM_DATA_HOME", root().join("target/helm/data"))
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&out.stdout))
        .expect("helm output parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// The chart rendered with default values (rendered once per test binary).
pub fn default_objects() -> &'static [Value] {
    static OBJECTS: OnceLock<Vec<Value>> = OnceLock::new();
    OBJECTS.get_or_init(|| render(&[]))
}

/// The one rendered object of `kind`.
pub fn object<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in the chart");
    found[0]
}

/// The operator container of the chart's Deployment.
pub fn container(objects: &[Value]) -> Container {
    let deployment = object(objects, "Deployment");
    serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0].clone())
        .expect("the operator container")
}

/// The value of a plain (non-`valueFrom`) environment variable of the operator container.
pub fn env(objects: &[Value], name: &str) -> Option<String> {
    container(objects)
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e: &EnvVar| e.name == name)
        .and_then(|e| e.value)
}

/// The Lease the chart configures (and whose name its Role grants).
pub fn lease_name() -> String {
    env(default_objects(), "LMI_LEASE_NAME").expect("the chart sets LMI_LEASE_NAME")
}

/// The ClusterRole's and the Role's rules.
pub fn rules() -> (Vec<PolicyRule>, Vec<PolicyRule>) {
    let rules = |kind: &str| -> Vec<PolicyRule> {
        serde_json::from_value(object(default_objects(), kind)["rules"].clone())
            .unwrap_or_else(|e| panic!("{kind} rules: {e}"))
    };
    (rules("ClusterRole"), rules("Role"))
}

/// The operator's identity in the test API server.
#[derive(Clone, Debug)]
pub struct OperatorIdentity {
    /// Bearer token of the chart's ServiceAccount.
    pub token: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub user: String,
}

/// Creates the release namespace and the chart's ServiceAccount, ClusterRole, ClusterRoleBinding,
/// Role and RoleBinding (as `helm install` would), and has the API server issue the
/// ServiceAccount a token.
pub async fn install(plane: &ControlPlane, admin: &Client) -> OperatorIdentity {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))
            .expect("namespace");
    Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the release namespace");
    let objects = default_objects();
    let mut service_account = None;
    for object in objects {
        let (group, version, plural, namespaced) = match object["kind"].as_str() {
            Some("ServiceAccount") => ("", "v1", "serviceaccounts", true),
            Some("ClusterRole") => ("rbac.authorization.k8s.io", "v1", "clusterroles", false),
            Some("ClusterRoleBinding") => (
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                false,
            ),
            Some("Role") => ("rbac.authorization.k8s.io", "v1", "roles", true),
            Some("RoleBinding") => ("rbac.authorization.k8s.io", "v1", "rolebindings", true),
            _ => continue,
        };
        let kind = object["kind"].as_str().unwrap_or_default();
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = if namespaced {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(NAMESPACE);
            Api::namespaced_with(admin.clone(), ns, &resource)
        } else {
            Api::all_with(admin.clone(), &resource)
        };
        let dynamic: DynamicObject = serde_json::from_value(object.clone()).expect("object");
        api.create(&PostParams::default(), &dynamic)
            .await
            .unwrap_or_else(|e| panic!("create the chart's {kind}: {e}"));
        if kind == "ServiceAccount" {
            service_account = object["metadata"]["name"].as_str().map(str::to_owned);
        }
    }
    let name = service_account.expect("the chart creates a ServiceAccount");
    OperatorIdentity {
        token: plane
            .service_account_token(NAMESPACE, &name)
            .await
            .expect("a token for the chart's ServiceAccount"),
        user: format!("system:serviceaccount:{NAMESPACE}:{name}"),
    }
}

/// The operator's requests that RBAC refused, one line each.
pub fn refused(audit: &[AuditEvent], user: &str) -> Vec<String> {
    let mut refused: BTreeSet<String> = BTreeSet::new();
    for a in audit.iter().filter(|e| e.user == user && !e.authorized) {
        refused.insert(format!(
            "{} {}/{} namespace={:?} name={:?}",
            a.verb,
            a.api_group,
            a.combined_resource(),
            a.namespace,
            a.name
        ));
    }
    refused.into_iter().collect()
}

/// The operator's writes to a CapacityProvider's or SimilarityFunction's object other than its
/// status, one line each, that did more than add or remove the operator's finalizer. The spec
/// belongs to Git: the operator writes status (a subresource) and its finalizer (a JSON patch of
/// `/metadata/finalizers`, as kube-runtime's `finalizer` sends it), nothing else.
pub fn spec_writes(audit: &[AuditEvent], user: &str) -> Vec<String> {
    let only_finalizers = |patch: &Value| {
        patch.as_array().is_some_and(|ops| {
            ops.iter().all(|op| {
                op["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/metadata/finalizers"))
            })
        })
    };
    audit
        .iter()
        .filter(|e| {
            e.user == user
                && e.api_group == "lmi.dev"
                && e.subresource.is_empty()
                && matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete")
        })
        .filter(|e| e.verb != "patch" || !e.request_object.as_ref().is_some_and(only_finalizers))
        .map(|e| {
            format!(
                "{} {} {}/{}: {}",
                e.verb,
                e.resource,
                e.namespace,
                e.name,
                e.request_object
                    .as_ref()
                    .map_or_else(|| "(no body logged)".to_owned(), Value::to_string)
            )
        })
        .collect()
}

/// The bucket the test worlds keep handler code in (`spec.code.s3`), which the operator's
/// policy names (`lmi-operator iam-policy --code-bucket`).
pub const CODE_BUCKET: &str = "artifacts";

/// Every action the operator's IAM policy for the test worlds allows (the generator's
/// defaults, `tests/iam.rs` proves them equal to `deploy/iam/operator-policy.json`, plus the
/// test code bucket), e.g. `lambda:CreateCapacityProvider`.
pub fn iam_policy_actions() -> BTreeSet<String> {
    let options = lmi_operator::iam::PolicyOptions {
        code_buckets: vec![CODE_BUCKET.to_owned()],
        ..Default::default()
    };
    let policy: Value =
        serde_json::to_value(lmi_operator::iam::policy(&options)).expect("the IAM policy is JSON");
    let mut actions = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("Statement list") {
        assert_eq!(statement["Effect"], "Allow", "only Allow statements");
        match &statement["Action"] {
            Value::String(a) => {
                actions.insert(a.clone());
            }
            Value::Array(list) => {
                actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)));
            }
            other => panic!("Action must be a string or a list: {other}"),
        }
    }
    actions
}

/// The IAM actions of the AWS calls the operator made through `proxy`, e.g. `ec2:DescribeSubnets`.
pub fn aws_actions(proxy: &lmi_test_support::FaultProxy) -> BTreeSet<String> {
    proxy
        .log()
        .into_iter()
        .map(|r| format!("{}:{}", r.service, r.operation))
        .collect()
}

/// Fails when RBAC refused one of the operator's requests, the operator wrote anything of a
/// CapacityProvider or SimilarityFunction but its status and finalizer ([`spec_writes`]), or it
/// called an AWS action the IAM policy does not grant. Every world runs it when dropped.
pub fn check_permissions(audit: &[AuditEvent], proxy: &lmi_test_support::FaultProxy, user: &str) {
    let refused = refused(audit, user);
    assert!(
        refused.is_empty(),
        "the chart's RBAC refused the operator (add the permission to \
         charts/lmi-operator/templates, with a comment saying why):\n{}",
        refused.join("\n")
    );
    let spec_writes = spec_writes(audit, user);
    assert!(
        spec_writes.is_empty(),
        "the operator wrote more than the status and finalizer of its objects (the spec belongs \
         to Git):\n{}",
        spec_writes.join("\n")
    );
    let granted = iam_policy_actions();
    let missing: Vec<String> = aws_actions(proxy)
        .into_iter()
        .filter(|a| !granted.contains(a))
        .collect();
    assert!(
        missing.is_empty(),
        "the operator called AWS actions its IAM policy (src/iam.rs) does not grant:\n{}",
        missing.join("\n")
    );
}
