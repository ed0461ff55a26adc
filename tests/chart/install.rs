//! The chart for real: `helm install` into a real API server (with kube-controller-manager, so
//! the Deployment gets its ReplicaSet), every object there, the operator run with the token of
//! the ServiceAccount the chart installed, `helm upgrade` changing the CRDs, and `helm
//! uninstall` keeping the CRDs and the resources (`crds.keep`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use lmi_operator::api::CapacityProvider;
use lmi_test_support::kube::{ControlPlane, ControlPlaneOptions};
use lmi_test_support::{AwsEmulator, Network};
use serde::de::DeserializeOwned;

use crate::helm::{self, root};

const NAMESPACE: &str = "lmi-system";
const RELEASE: &str = "lmi";

/// helm against the control plane as its admin.
fn helm_on(kubeconfig: &Path, args: &[&str]) -> helm::Run {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    helm::run(&all)
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the object `name` of kind `K` exists, in `namespace` (namespaced kinds) or in the
/// cluster.
async fn exists<K>(client: &Client, namespace: Option<&str>, name: &str) -> bool
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(name).await.ok().flatten().is_some()
}

/// A copy of the chart whose CapacityProvider CRD says something new, as a new chart version
/// would.
fn upgraded_chart(dir: &Path) -> PathBuf {
    let copy = dir.join("lmi-operator");
    let status = std::process::Command::new("cp")
        .args(["-r"])
        .arg(helm::chart())
        .arg(&copy)
        .status()
        .expect("copy the chart");
    assert!(status.success());
    let crd = copy.join("files/crds/capacityproviders.lmi.dev.yaml");
    let text = std::fs::read_to_string(&crd).expect("read the CRD");
    let changed = text.replacen(
        "    - jsonPath: .status.state\n",
        "    - description: the upgraded chart's column\n      jsonPath: .status.state\n",
        1,
    );
    assert_ne!(
        changed, text,
        "the CRD has a State printer column to describe"
    );
    std::fs::write(&crd, changed).expect("write the CRD");
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_chart_on_a_real_api_server() {
    let plane = ControlPlane::start(ControlPlaneOptions {
        controller_manager: true,
    })
    .await
    .expect("start the control plane");
    let scratch = tempfile::tempdir().expect("scratch");
    let kubeconfig = scratch.path().join("admin.kubeconfig");
    plane
        .write_kubeconfig(&kubeconfig, plane.admin_token(), None)
        .expect("kubeconfig");
    let admin = plane.admin_client().await.expect("admin");
    let chart = helm::chart();
    let chart = chart.to_str().expect("utf-8");

    let install = helm_on(
        &kubeconfig,
        &[
            "install",
            RELEASE,
            chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "clusterName=e2e",
            "--set",
            "podDisruptionBudget.enabled=true",
        ],
    );
    assert!(install.ok, "helm install failed:\n{}", install.stderr);

    let name = format!("{RELEASE}-lmi-operator");
    let ns = Some(NAMESPACE);
    assert!(exists::<Deployment>(&admin, ns, &name).await);
    assert!(exists::<ServiceAccount>(&admin, ns, &name).await);
    assert!(exists::<ClusterRole>(&admin, None, &name).await);
    assert!(exists::<ClusterRoleBinding>(&admin, None, &name).await);
    assert!(exists::<Role>(&admin, ns, &format!("{name}-leader-election")).await);
    assert!(exists::<RoleBinding>(&admin, ns, &format!("{name}-leader-election")).await);
    assert!(exists::<Service>(&admin, ns, &format!("{name}-metrics")).await);
    assert!(exists::<PodDisruptionBudget>(&admin, ns, &name).await);
    for crd in ["capacityproviders.lmi.dev", "similarityfunctions.lmi.dev"] {
        assert!(
            exists::<CustomResourceDefinition>(&admin, None, crd).await,
            "{crd}"
        );
    }
    // The controller manager turns the Deployment into a ReplicaSet (its pods stay Pending:
    // there is no scheduler).
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually("a ReplicaSet for the Deployment", async || {
        let list = replica_sets.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|rs| {
            rs.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&name))
        })
    })
    .await;

    // The operator, with the token of the ServiceAccount the chart installed, reconciles.
    let token = plane
        .service_account_token(NAMESPACE, &name)
        .await
        .expect("a token for the chart's ServiceAccount");
    let operator_kubeconfig = scratch.path().join("operator.kubeconfig");
    plane
        .write_kubeconfig(&operator_kubeconfig, &token, None)
        .expect("kubeconfig");
    let aws = AwsEmulator::start().await.expect("the AWS emulator");
    let role = aws.create_role("lmi/operator").await.expect("a role");
    let net = Network::good(&aws.ec2()).await.expect("a network");
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_lmi-operator"))
        .args(["run", "--cluster-name", "e2e", "--namespace", NAMESPACE])
        .args(["--leader-election=false", "--log-format", "text"])
        .env("KUBECONFIG", &operator_kubeconfig)
        .env("LMI_HEALTH_ADDR", "127.0.0.1:0")
        .env("LMI_METRICS_ADDR", "127.0.0.1:0")
        .envs(aws.client_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start lmi-operator");
    let provider: CapacityProvider = serde_json::from_value(serde_json::json!({
        "apiVersion": "lmi.dev/v1alpha1", "kind": "CapacityProvider",
        "metadata": {"name": "installed"},
        "spec": {
            "vpc": {"subnetIds": net.private_subnet_ids(), "securityGroupIds": [net.security_group_id]},
            "operatorRoleArn": role,
        },
    }))
    .expect("provider");
    let providers: Api<CapacityProvider> = Api::all(admin.clone());
    providers
        .patch(
            "installed",
            &PatchParams::apply("test"),
            &Patch::Apply(&provider),
        )
        .await
        .expect("apply a provider");
    eventually("the provider Ready", async || {
        let cp = providers.get("installed").await.ok()?;
        let ready = cp
            .status?
            .conditions
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(())
    })
    .await;
    let _ = operator.start_kill();
    let _ = operator.wait().await;

    // An upgrade changes the CRDs in the cluster (they are templates, not helm's crds/ folder).
    let upgraded = upgraded_chart(scratch.path());
    let upgrade = helm_on(
        &kubeconfig,
        &[
            "upgrade",
            RELEASE,
            upgraded.to_str().expect("utf-8"),
            "--namespace",
            NAMESPACE,
            "--set",
            "clusterName=e2e",
        ],
    );
    assert!(upgrade.ok, "helm upgrade failed:\n{}", upgrade.stderr);
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = crds
        .get("capacityproviders.lmi.dev")
        .await
        .expect("the CRD");
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    assert!(
        columns
            .iter()
            .any(|c| c.description.as_deref() == Some("the upgraded chart's column")),
        "{columns:?}"
    );

    // Uninstall keeps the CRDs and with them every resource (crds.keep, the default).
    let uninstall = helm_on(
        &kubeconfig,
        &["uninstall", RELEASE, "--namespace", NAMESPACE],
    );
    assert!(uninstall.ok, "helm uninstall failed:\n{}", uninstall.stderr);
    assert!(
        !exists::<Deployment>(&admin, ns, &name).await,
        "the Deployment is gone"
    );
    assert!(!exists::<ClusterRole>(&admin, None, &name).await);
    for crd in ["capacityproviders.lmi.dev", "similarityfunctions.lmi.dev"] {
        assert!(
            exists::<CustomResourceDefinition>(&admin, None, crd).await,
            "{crd} kept"
        );
    }
    assert!(
        providers.get_opt("installed").await.expect("get").is_some(),
        "resources kept"
    );
    let _ = root();
}
