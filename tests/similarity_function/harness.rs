//! End-to-end test world for SimilarityFunctions: the in-memory API server with our CRDs and
//! the namespaces the tests use, the AWS emulator behind the fault proxy, test handler builds in
//! a `--handler-dir` of its own, and the operator's controllers running in-process.
//!
//! The operator reaches AWS only through the proxy, whose operation log counts its calls; setup
//! and inspection talk to the emulator directly and are not counted.
//!
//! (Kept local to this test binary until the shared `tests/harness/` lands on main.)

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use lmi_operator::controller::error::Backoff;
use lmi_operator::controller::similarity_function::desired::code_sha256;
use lmi_operator::controller::{Config, Context};
use lmi_operator::identity;
use lmi_operator::metrics::Metrics;
use lmi_test_apiserver::TestApiServer;
use lmi_test_support::{AwsEmulator, EmulatorOptions, FaultProxy, Network};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the operator to converge before it fails.
pub const CONVERGE: Duration = Duration::from_secs(120);
/// The cluster name the operator runs with in tests.
pub const CLUSTER: &str = "e2e";
/// The namespace every test provider admits.
pub const TEAM: &str = "team";
/// A namespace no test provider admits by name.
pub const OTHER: &str = "other";
/// The provider every test uses.
pub const PROVIDER: &str = "graviton";

static WORLDS: AtomicU32 = AtomicU32::new(0);

/// A running test world.
pub struct World {
    /// The in-memory API server.
    pub api: TestApiServer,
    /// The AWS emulator.
    pub aws: AwsEmulator,
    /// The fault proxy between the operator and the emulator.
    pub proxy: FaultProxy,
    /// A Kubernetes client acting as the user.
    pub kube: Client,
    /// Lambda straight to the emulator (setup and inspection; not counted).
    pub lambda: aws_sdk_lambda::Client,
    /// An IAM role for capacity providers and functions.
    pub role_arn: String,
    /// The network providers use.
    pub network: Network,
    /// The operator's configuration.
    pub config: Config,
    /// The bundled handler builds, by architecture (`x86_64`, `arm64`): (zip, CodeSha256).
    pub handlers: BTreeMap<&'static str, (Vec<u8>, String)>,
    operator: Option<(JoinHandle<()>, oneshot::Sender<()>)>,
}

/// A zip holding an executable `bootstrap` (the emulator never runs it).
pub fn handler_zip(marker: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options).expect("zip entry");
    zip.write_all(format!("#!/bin/sh\n# {marker}\n").as_bytes())
        .expect("zip write");
    zip.finish().expect("zip finish").into_inner()
}

impl World {
    /// Starts everything but the operator; states in AWS settle at once.
    pub async fn start() -> World {
        Self::start_with(Duration::ZERO).await
    }

    /// Starts everything but the operator, with AWS states settling after `state_delay`.
    pub async fn start_with(state_delay: Duration) -> World {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let api = TestApiServer::start().await.expect("start the API server");
        api.load_crds(&root.join("crds")).expect("install crds/");
        let aws = AwsEmulator::start_with(EmulatorOptions {
            state_delay,
            ..Default::default()
        })
        .await
        .expect("start the AWS emulator");
        let proxy = FaultProxy::start(aws.endpoint())
            .await
            .expect("start the fault proxy");
        let role_arn = aws.create_role("lmi-e2e").await.expect("create a role");
        let network = Network::good(&aws.ec2()).await.expect("good network");
        let kube = api.client();
        for ns in [TEAM, OTHER, "lmi-system"] {
            create_namespace(&kube, ns, &[]).await;
        }

        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "simfn-handlers-{}-{}",
            std::process::id(),
            WORLDS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("handler dir");
        let mut handlers = BTreeMap::new();
        for arch in ["x86_64", "arm64"] {
            let zip = handler_zip(arch);
            std::fs::write(dir.join(format!("bootstrap-{arch}.zip")), &zip).expect("write zip");
            let sha = code_sha256(&zip);
            handlers.insert(arch, (zip, sha));
        }
        let config = Config {
            cluster_name: CLUSTER.into(),
            namespace: "lmi-system".into(),
            resync_interval: Duration::from_secs(2),
            pending_interval: Duration::from_millis(300),
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
                terminal: Duration::from_secs(2),
            },
            handler_dir: dir,
        };
        World {
            lambda: aws.lambda(),
            kube,
            api,
            aws,
            proxy,
            role_arn,
            network,
            config,
            handlers,
            operator: None,
        }
    }

    /// Starts the operator's controllers in-process.
    pub fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "the operator is already running");
        let ctx = Arc::new(Context::new(
            self.api.client(),
            self.proxy.sdk_config(),
            self.config.clone(),
            Arc::new(Metrics::default()),
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(lmi_operator::run::controllers(ctx, async move {
            let _ = stopped.await;
        }));
        self.operator = Some((task, stop));
    }

    /// Stops the operator gracefully (in-flight reconciles finish).
    pub async fn stop_operator(&mut self) {
        if let Some((task, stop)) = self.operator.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }

    /// Kills the operator at once, wherever it is (a crash).
    pub async fn kill_operator(&mut self) {
        if let Some((task, _stop)) = self.operator.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Applies a manifest as the user would (server-side apply, field manager `e2e-user`).
    pub async fn apply(&self, manifest: &Value) {
        let name = manifest["metadata"]["name"].as_str().expect("name");
        let resource = match manifest["kind"].as_str() {
            Some("CapacityProvider") => ApiResource::erase::<CapacityProvider>(&()),
            _ => ApiResource::erase::<SimilarityFunction>(&()),
        };
        let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.kube.clone(), ns, &resource),
            None => Api::all_with(self.kube.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(manifest),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    /// A provider on the good network that admits [`TEAM`], Ready once the operator made it.
    pub fn provider_manifest(&self) -> Value {
        json!({
            "apiVersion": "lmi.dev/v1alpha1",
            "kind": "CapacityProvider",
            "metadata": {"name": PROVIDER},
            "spec": {
                "vpc": {
                    "subnetIds": self.network.private_subnet_ids(),
                    "securityGroupIds": [self.network.security_group_id],
                },
                "operatorRoleArn": self.role_arn,
                "instances": {"architecture": "arm64"},
                "scaling": {"mode": "Auto", "maxVCpuCount": 64},
                "allowedNamespaces": {"names": [TEAM]},
            }
        })
    }

    /// Applies the test provider and waits until it is Ready.
    pub async fn ready_provider(&self) -> CapacityProvider {
        self.apply(&self.provider_manifest()).await;
        self.wait_provider("Ready", |cp| {
            has_condition(
                cp.status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default(),
                "Ready",
                "True",
                None,
            )
        })
        .await
    }

    /// A function on the test provider.
    pub fn function_manifest(&self, namespace: &str, name: &str) -> Value {
        json!({
            "apiVersion": "lmi.dev/v1alpha1",
            "kind": "SimilarityFunction",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "capacityProviderRef": {"name": PROVIDER},
                "roleArn": self.role_arn,
                "memoryMiB": 4096,
                "memoryGiBPerVCpu": 2,
                "maxConcurrencyPerEnvironment": 32,
                "scaling": {"minExecutionEnvironments": 1, "maxExecutionEnvironments": 4},
                "catalog": {"uri": "s3://catalogs/products.parquet", "dimensions": 1024},
                "embedding": {"modelId": "amazon.nova-2-multimodal-embeddings-v1:0", "dimensions": 1024},
                "versions": {"retain": 2},
                "tags": {"team": "search"},
            }
        })
    }

    /// The SimilarityFunction API of a namespace.
    pub fn functions(&self, namespace: &str) -> Api<SimilarityFunction> {
        Api::namespaced(self.kube.clone(), namespace)
    }

    /// Waits until the provider satisfies `done`.
    pub async fn wait_provider(
        &self,
        what: &str,
        done: impl Fn(&CapacityProvider) -> bool,
    ) -> CapacityProvider {
        let api: Api<CapacityProvider> = Api::all(self.kube.clone());
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < CONVERGE {
            if let Ok(Some(cp)) = api.get_opt(PROVIDER).await {
                if done(&cp) {
                    return cp;
                }
                last = Some(cp);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "provider never became {what} within {CONVERGE:?}; last status: {:#?}",
            last.and_then(|cp| cp.status)
        )
    }

    /// Waits until the function satisfies `done`; fails with its last status otherwise.
    pub async fn wait_function(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        done: impl Fn(&SimilarityFunction) -> bool,
    ) -> SimilarityFunction {
        let api = self.functions(namespace);
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < CONVERGE {
            if let Ok(Some(sf)) = api.get_opt(name).await {
                if done(&sf) {
                    return sf;
                }
                last = Some(sf);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "function {namespace}/{name} never became {what} within {CONVERGE:?}; last status: \
             {:#?}",
            last.and_then(|sf| sf.status)
        )
    }

    /// Waits until the function is Ready (for its current generation).
    pub async fn wait_ready(&self, namespace: &str, name: &str) -> SimilarityFunction {
        self.wait_function(namespace, name, "Ready", is_ready).await
    }

    /// Waits until an object is gone from Kubernetes.
    pub async fn wait_gone(&self, namespace: Option<&str>, name: &str) {
        let gone = eventually(CONVERGE, || async {
            match namespace {
                Some(ns) => matches!(self.functions(ns).get_opt(name).await, Ok(None)),
                None => {
                    let api: Api<CapacityProvider> = Api::all(self.kube.clone());
                    matches!(api.get_opt(name).await, Ok(None))
                }
            }
        })
        .await;
        assert!(gone, "{namespace:?}/{name} still exists after {CONVERGE:?}");
    }

    /// Deletes an object as the user would.
    pub async fn delete(&self, namespace: Option<&str>, name: &str) {
        let result = match namespace {
            Some(ns) => self
                .functions(ns)
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
            None => Api::<CapacityProvider>::all(self.kube.clone())
                .delete(name, &DeleteParams::default())
                .await
                .map(|_| ()),
        };
        result.unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }

    /// The AWS name the operator derives for a function.
    pub fn aws_name(&self, namespace: &str, name: &str) -> String {
        identity::function_name(CLUSTER, namespace, name)
    }

    /// `$LATEST` of a function in AWS.
    pub async fn aws_function(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<aws_sdk_lambda::operation::get_function::GetFunctionOutput> {
        self.lambda
            .get_function()
            .function_name(self.aws_name(namespace, name))
            .send()
            .await
            .ok()
    }

    /// The numbered versions of a function in AWS.
    pub async fn aws_versions(&self, namespace: &str, name: &str) -> Vec<String> {
        let out = self
            .lambda
            .list_versions_by_function()
            .function_name(self.aws_name(namespace, name))
            .send()
            .await
            .expect("list versions");
        let mut v: Vec<u64> = out
            .versions()
            .iter()
            .filter_map(|v| v.version().and_then(|n| n.parse().ok()))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|n| n.to_string()).collect()
    }

    /// (requested, applied) (min, max) of a version's scaling config in AWS.
    pub async fn aws_scaling(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> (
        Option<(Option<i32>, Option<i32>)>,
        Option<(Option<i32>, Option<i32>)>,
    ) {
        let out = self
            .lambda
            .get_function_scaling_config()
            .function_name(self.aws_name(namespace, name))
            .qualifier(version)
            .send()
            .await
            .expect("scaling config");
        let pair = |s: &aws_sdk_lambda::types::FunctionScalingConfig| {
            (
                s.min_execution_environments(),
                s.max_execution_environments(),
            )
        };
        (
            out.requested_function_scaling_config().map(pair),
            out.applied_function_scaling_config().map(pair),
        )
    }

    /// Names of every function in AWS.
    pub async fn aws_function_names(&self) -> Vec<String> {
        let out = self
            .lambda
            .list_functions()
            .send()
            .await
            .expect("list functions");
        out.functions()
            .iter()
            .filter_map(|f| f.function_name().map(str::to_owned))
            .collect()
    }

    /// Number of capacity providers in AWS.
    pub async fn aws_provider_count(&self) -> usize {
        self.lambda
            .list_capacity_providers()
            .send()
            .await
            .expect("list capacity providers")
            .capacity_providers()
            .len()
    }

    /// How many times the operator called `operation` (attempts included).
    pub fn calls(&self, operation: &str) -> usize {
        self.proxy.calls("lambda", operation)
    }

    /// The mutating calls the operator made (operation names).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.proxy
            .log()
            .into_iter()
            .filter(|r| !r.is_read_only())
            .map(|r| r.operation)
            .collect()
    }

    /// Reasons of the events recorded about the object `name`.
    pub fn event_reasons(&self, name: &str) -> Vec<String> {
        let mut events = self.api.objects("events.k8s.io", "events");
        events.extend(self.api.objects("", "events"));
        events
            .iter()
            .filter(|e| {
                e["regarding"]["name"].as_str() == Some(name)
                    || e["involvedObject"]["name"].as_str() == Some(name)
            })
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Creates a namespace with labels.
pub async fn create_namespace(kube: &Client, name: &str, labels: &[(&str, &str)]) {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
    }))
    .expect("namespace");
    Api::<Namespace>::all(kube.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// The conditions of a function (empty without status).
pub fn conditions(sf: &SimilarityFunction) -> &[Condition] {
    sf.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Whether condition `type_` has `status` and, if given, `reason`.
pub fn has_condition(
    conditions: &[Condition],
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// Ready=True for the current generation.
pub fn is_ready(sf: &SimilarityFunction) -> bool {
    conditions(sf).iter().any(|c| {
        c.type_ == "Ready" && c.status == "True" && c.observed_generation == sf.metadata.generation
    })
}

/// Polls `check` every 200 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
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
