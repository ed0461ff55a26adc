//! End-to-end test world: a real Kubernetes control plane with our CRDs (`cluster`), the AWS
//! emulator behind the fault proxy, and the operator's controllers running in-process against
//! both.
//!
//! Each test builds its own world, so tests never share state. The operator reaches AWS only
//! through the proxy, whose operation log counts its calls; test setup and inspection talk to
//! the emulator directly and are not counted. Each world also has its own `--handler-dir` with
//! test builds of the handler (`functions`), which SimilarityFunctions deploy by default.
//!
//! The operator runs as the Helm chart deploys it (`chart`): it authenticates as the chart's
//! ServiceAccount, so the API server enforces the chart's RBAC, and a dropped world fails the
//! test if RBAC refused the operator anything or it called AWS outside the IAM policy. It reaches
//! the API server through a fault proxy (`cluster`), as it reaches AWS.
//! `replica` runs whole operator processes' worth of runtime (leader election, probes, metrics)
//! in-process.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod chart;
pub mod cluster;
pub mod functions;
pub mod replica;
pub mod tenants;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ApiResource, DynamicObject};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use lmi_operator::aws::rate::AwsRates;
use lmi_operator::controller::error::Backoff;
use lmi_operator::controller::{Config, Context};
use lmi_operator::metrics::Metrics;
use lmi_test_support::{AwsEmulator, FaultProxy, Network};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the operator to converge before it fails.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// The cluster name the operator runs with in tests.
pub const CLUSTER: &str = "e2e";

/// The installation id the operator runs with in tests.
pub const INSTALLATION: &str = "e2e-installation";

/// A running test world.
pub struct World {
    /// The Kubernetes cluster (a real API server) and the proxy the operator reaches it through.
    pub api: cluster::Cluster,
    /// The AWS emulator (shared by the worlds of [`World::another_installation`]).
    pub aws: Arc<AwsEmulator>,
    /// The fault proxy between the operator and the emulator.
    pub proxy: FaultProxy,
    /// A Kubernetes client acting as the user.
    pub kube: Client,
    /// EC2 straight to the emulator (setup and inspection; not counted).
    pub ec2: aws_sdk_ec2::Client,
    /// Lambda straight to the emulator (setup and inspection; not counted).
    pub lambda: aws_sdk_lambda::Client,
    /// An IAM role for capacity providers and functions.
    pub role_arn: String,
    /// The operator's configuration.
    pub config: Config,
    /// Who the operator is in the API server: the chart's ServiceAccount.
    pub identity: chart::OperatorIdentity,
    /// The operator's client configuration (its token, through the API server proxy).
    pub operator_config: kube::Config,
    /// The handler builds in the operator's `--handler-dir`.
    pub handlers: functions::Handlers,
    operator: Option<(JoinHandle<()>, oneshot::Sender<()>, Arc<Context>)>,
}

/// Fast intervals so tests converge in seconds.
pub fn fast_config(handler_dir: PathBuf) -> Config {
    Config {
        cluster_name: CLUSTER.into(),
        installation_id: INSTALLATION.into(),
        namespace: chart::NAMESPACE.into(),
        resync_interval: Duration::from_secs(2),
        pending_interval: Duration::from_millis(300),
        slowest_pending_poll: Duration::from_secs(2),
        backoff: Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            terminal: Duration::from_secs(2),
        },
        handler_dir,
        // Time is compressed (a 2 s resync stands for 5 min), so the client-side Lambda
        // control-plane rates are lifted: at 13.5 calls a second, dozens of functions resyncing
        // every 2 s would queue for longer than a test waits. The capacity-provider rates stay
        // AWS's: the emulator enforces them, and the operator must keep to them.
        aws_rates: AwsRates {
            control_plane: 0.0,
            get_function: 0.0,
            ..AwsRates::default()
        },
        ..Config::default()
    }
}

impl World {
    /// Starts the API server (with `crds/` installed), the emulator and the proxy.
    pub async fn start() -> World {
        let aws = Arc::new(AwsEmulator::start().await.expect("start the AWS emulator"));
        let role_arn = aws.create_role("lmi-e2e").await.expect("create a role");
        Self::start_on(aws, role_arn, INSTALLATION).await
    }

    /// A second installation of the operator against this world's AWS account: its own
    /// cluster (API server), proxy and installation id, the same `--cluster-name`, emulator
    /// and role.
    pub async fn another_installation(&self, installation: &str) -> World {
        Self::start_on(self.aws.clone(), self.role_arn.clone(), installation).await
    }

    async fn start_on(aws: Arc<AwsEmulator>, role_arn: String, installation: &str) -> World {
        let api = cluster::Cluster::start().await;
        let identity = api.identity.clone();
        let proxy = FaultProxy::start(aws.endpoint())
            .await
            .expect("start the fault proxy");
        let handlers = functions::Handlers::write();
        let mut config = fast_config(handlers.dir().to_owned());
        config.installation_id = installation.to_owned();
        World {
            config,
            handlers,
            kube: api.admin().await,
            operator_config: api.operator_config().await,
            ec2: aws.ec2(),
            lambda: aws.lambda(),
            api,
            aws,
            proxy,
            role_arn,
            identity,
            operator: None,
        }
    }

    /// A Kubernetes client acting as the operator (the chart's ServiceAccount, through the
    /// API server proxy).
    pub fn operator_client(&self) -> Client {
        Client::try_from(self.operator_config.clone()).expect("the operator's client")
    }

    /// A good network: private subnets with a NAT route in two zones and a security group.
    pub async fn good_network(&self) -> Network {
        Network::good(&self.ec2)
            .await
            .expect("build the good network")
    }

    /// Starts the operator's controllers in-process.
    pub fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator is already running");
        let ctx = Arc::new(Context::new(
            self.operator_client(),
            self.proxy.sdk_config(),
            self.config.clone(),
            Arc::new(Metrics::default()),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(lmi_operator::run::controllers(ctx.clone(), async move {
            let _ = stopped.await;
        }));
        self.operator = Some((task, stop, ctx));
    }

    /// The running operator's context (its liveness, metrics, configuration).
    pub fn operator_context(&self) -> Option<&Arc<Context>> {
        self.operator.as_ref().map(|(_, _, ctx)| ctx)
    }

    /// Stops the operator gracefully (in-flight reconciles finish). A panic of the operator's
    /// task is the test's panic.
    pub async fn stop_operator(&mut self) {
        if let Some((task, stop, _)) = self.operator.take() {
            let _ = stop.send(());
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Ok(_) => {}
                Err(_) => eprintln!("the operator did not stop within 30 s; left running"),
            }
        }
    }

    /// Kills the operator at once, wherever it is (a crash).
    pub async fn kill_operator(&mut self) {
        if let Some((task, _stop, _)) = self.operator.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Applies a manifest as the user would (server-side apply, field manager `e2e-user`).
    pub async fn apply<K>(&self, manifest: Value) -> K
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let resource = ApiResource::erase::<K>(&());
        let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.kube.clone(), ns, &resource),
            None => Api::all_with(self.kube.clone(), &resource),
        };
        let applied = api
            .patch(
                &name,
                &PatchParams::apply("e2e-user").force(),
                &Patch::Apply(&manifest),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
        serde_json::from_value(serde_json::to_value(applied).expect("serialize"))
            .expect("applied object parses")
    }

    /// Applies a CapacityProvider manifest.
    pub async fn apply_provider(&self, manifest: Value) -> CapacityProvider {
        self.apply(manifest).await
    }

    /// The CapacityProvider API.
    pub fn providers(&self) -> Api<CapacityProvider> {
        Api::all(self.kube.clone())
    }

    /// The SimilarityFunction API of a namespace.
    pub fn functions(&self, namespace: &str) -> Api<SimilarityFunction> {
        Api::namespaced(self.kube.clone(), namespace)
    }

    /// Waits until the provider satisfies `done`; fails with its last status otherwise.
    pub async fn wait_provider(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&CapacityProvider) -> bool,
    ) -> CapacityProvider {
        let api = self.providers();
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < CONVERGE {
            if let Ok(Some(cp)) = api.get_opt(name).await {
                if done(&cp) {
                    return cp;
                }
                last = Some(cp);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "provider {name} never became {what} within {CONVERGE:?}; last status: {:#?}",
            last.and_then(|cp| cp.status)
        )
    }

    /// Waits until the provider is gone from Kubernetes.
    pub async fn wait_provider_gone(&self, name: &str) {
        let api = self.providers();
        let gone = eventually(CONVERGE, || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)) }
        })
        .await;
        let left = api.get_opt(name).await.ok().flatten();
        assert!(
            gone,
            "provider {name} still exists: {:#?}",
            left.and_then(|cp| cp.status)
        );
    }

    /// Deletes a provider as the user would.
    pub async fn delete_provider(&self, name: &str) {
        self.providers()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }

    /// Names of the capacity providers in AWS.
    pub async fn aws_provider_names(&self) -> Vec<String> {
        let out = self
            .lambda
            .list_capacity_providers()
            .send()
            .await
            .expect("list capacity providers");
        let mut names: Vec<String> = out
            .capacity_providers()
            .iter()
            .filter_map(|p| {
                p.capacity_provider_arn()
                    .rsplit(':')
                    .next()
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    /// How many calls the operator made to a Lambda `operation` (retried attempts included).
    pub fn lambda_calls(&self, operation: &str) -> usize {
        self.proxy.calls("lambda", operation)
    }

    /// Creates a namespace with labels.
    pub async fn create_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
        }))
        .expect("namespace");
        Api::<Namespace>::all(self.kube.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }

    /// Reasons of the events recorded about objects named `name`.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.kube.clone());
        events
            .list(&kube::api::ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }

    /// The Warning events (Event objects; a repeated one is one object with a series) with
    /// `reason` about objects named `name`.
    pub async fn warnings(
        &self,
        name: &str,
        reason: &str,
    ) -> Vec<k8s_openapi::api::events::v1::Event> {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(self.kube.clone());
        events
            .list(&kube::api::ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some("Warning")
            })
            .collect()
    }

    /// Waits until an event with `reason` about objects named `name` is recorded. The
    /// operator records a pass's events after its AWS calls, so a test that saw AWS change
    /// waits here rather than reading the events at once.
    pub async fn wait_event(&self, name: &str, reason: &str) {
        let seen = eventually(CONVERGE, || async {
            self.event_reasons(name).await.iter().any(|r| r == reason)
        })
        .await;
        assert!(
            seen,
            "no {reason} event about {name} within {CONVERGE:?}; events: {:?}",
            self.event_reasons(name).await
        );
    }

    /// Lets the running operator work for `window` and returns the AWS calls it made meanwhile
    /// (`operation` names, in order). A window in which "nothing happened" proves nothing if the
    /// operator was not running: this fails unless it read AWS during the window (a resync).
    pub async fn quiet_window(&self, window: Duration) -> Vec<lmi_test_support::OperationRecord> {
        let start = self.proxy.log().len();
        tokio::time::sleep(window).await;
        let calls = self.proxy.log().split_off(start);
        assert!(
            calls.iter().any(|r| r.is_read_only()),
            "the operator read nothing from AWS in {window:?}: was it running at all?"
        );
        calls
    }

    /// Calls the operator made, as `operation` names, optionally only mutating ones.
    pub fn operator_calls(&self, mutating_only: bool) -> Vec<String> {
        self.proxy
            .log()
            .into_iter()
            .filter(|r| !mutating_only || !r.is_read_only())
            .map(|r| r.operation)
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A test that already failed says why; this would only add noise.
        if !std::thread::panicking() {
            chart::check_permissions(&self.api.audit(), &self.proxy, &self.identity.user);
        }
    }
}

/// The condition `type_` of a status' conditions.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` has `status` (`"True"`/`"False"`) and, if given, `reason`.
pub fn has_condition(
    conditions: &[Condition],
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> bool {
    condition(conditions, type_)
        .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// The conditions of a provider (empty without status).
pub fn provider_conditions(cp: &CapacityProvider) -> &[Condition] {
    cp.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Polls `check` every 200 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A CapacityProvider manifest on the given subnets and security groups.
pub fn provider_manifest(name: &str, subnets: &[String], groups: &[String], role: &str) -> Value {
    serde_json::json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "CapacityProvider",
        "metadata": {"name": name},
        "spec": {
            "vpc": {"subnetIds": subnets, "securityGroupIds": groups},
            "operatorRoleArn": role,
            "instances": {"architecture": "arm64"},
            "scaling": {"mode": "Auto", "maxVCpuCount": 64},
            "tenants": [grant("team", serde_json::json!({"names": ["team"]}), role)],
        }
    })
}

/// A CapacityProvider manifest on `subnets` whose network the operator makes: a managed
/// security group and the telemetry VPC endpoints (`telemetryEndpoints: Create`).
pub fn managed_network_manifest(name: &str, subnets: &[String], role: &str) -> Value {
    let mut manifest = provider_manifest(name, subnets, &[], role);
    manifest["spec"]["vpc"] = serde_json::json!({
        "subnetIds": subnets,
        "managedSecurityGroup": {},
        "telemetryEndpoints": "Create",
    });
    manifest
}

/// A tenant grant for `namespaces` (`{"names": [...]}` or `{"selector": ...}`): the test
/// worlds' role (`role`), the test catalogs (`s3://catalogs/`) and code (`s3://artifacts/`),
/// no name patterns, no limits.
pub fn grant(name: &str, namespaces: Value, role: &str) -> Value {
    serde_json::json!({
        "name": name,
        "namespaces": namespaces,
        "executionRoleArns": [role],
        "codeSources": ["s3://artifacts/"],
        "catalogSources": ["s3://catalogs/"],
    })
}
