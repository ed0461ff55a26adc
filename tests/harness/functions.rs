//! The SimilarityFunction part of the test world: test builds of the handler in the operator's
//! `--handler-dir`, a function manifest, waits on functions, and what Lambda holds for them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::types::FunctionScalingConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::DeleteParams;
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use lmi_operator::controller::similarity_function::desired::code_sha256;
use lmi_operator::identity;
use lmi_test_support::Network;
use serde_json::{Value, json};

use super::{CLUSTER, CONVERGE, World, eventually, has_condition, provider_conditions};

/// The namespace the test provider admits (see [`super::provider_manifest`]).
pub const TEAM: &str = "team";
/// A namespace the test provider does not admit.
pub const OTHER: &str = "other";
/// The provider the function tests run on.
pub const PROVIDER: &str = "graviton";

static WORLDS: AtomicU32 = AtomicU32::new(0);

/// A zip holding an executable `bootstrap` script (the emulator never runs it); `marker` makes
/// its hash unique.
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

/// Test builds of the handler, one per architecture, in a directory of their own (removed on
/// drop).
pub struct Handlers {
    dir: PathBuf,
    sha256: BTreeMap<&'static str, String>,
}

impl Handlers {
    /// Writes `bootstrap-x86_64.zip` and `bootstrap-arm64.zip` into a new directory.
    pub fn write() -> Handlers {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "handlers-{}-{}",
            std::process::id(),
            WORLDS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("handler dir");
        let mut sha256 = BTreeMap::new();
        for arch in ["x86_64", "arm64"] {
            let zip = handler_zip(arch);
            std::fs::write(dir.join(format!("bootstrap-{arch}.zip")), &zip).expect("write zip");
            sha256.insert(arch, code_sha256(&zip));
        }
        Handlers { dir, sha256 }
    }

    /// The directory (the operator's `--handler-dir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `CodeSha256` of the build for `arch` (`x86_64`, `arm64`).
    pub fn sha256(&self, arch: &str) -> String {
        self.sha256
            .get(arch)
            .unwrap_or_else(|| panic!("no handler build for {arch}"))
            .clone()
    }

    /// Removes the build for `arch`, as an image without it would ship.
    pub fn remove(&self, arch: &str) {
        std::fs::remove_file(self.dir.join(format!("bootstrap-{arch}.zip")))
            .expect("remove handler build");
    }

    /// Writes the build for `arch` again (same content, same hash).
    pub fn restore(&self, arch: &str) {
        std::fs::write(
            self.dir.join(format!("bootstrap-{arch}.zip")),
            handler_zip(arch),
        )
        .expect("restore handler build");
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A function on [`PROVIDER`] with scaling 1..4 and `retain: 2`.
pub fn function_manifest(namespace: &str, name: &str, role: &str) -> Value {
    json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "SimilarityFunction",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "capacityProviderRef": {"name": PROVIDER},
            "roleArn": role,
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

/// The conditions of a function (empty without status).
pub fn conditions(sf: &SimilarityFunction) -> &[Condition] {
    sf.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// Ready=True for the current generation.
pub fn is_ready(sf: &SimilarityFunction) -> bool {
    conditions(sf).iter().any(|c| {
        c.type_ == "Ready" && c.status == "True" && c.observed_generation == sf.metadata.generation
    })
}

/// The serving version in status.
pub fn version(sf: &SimilarityFunction) -> Option<&str> {
    sf.status.as_ref().and_then(|s| s.version.as_deref())
}

/// (min, max) execution environments.
pub type Scaling = (Option<i32>, Option<i32>);

impl World {
    /// A world for function tests: its namespaces ([`TEAM`], [`OTHER`]; the operator's own is
    /// the chart's release namespace, created by [`World::start`]) and a good network for
    /// [`PROVIDER`].
    pub async fn for_functions() -> (World, Network) {
        let world = World::start().await;
        for ns in [TEAM, OTHER] {
            world.create_namespace(ns, &[]).await;
        }
        let net = world.good_network().await;
        (world, net)
    }

    /// The [`PROVIDER`] manifest on `net` (arm64, admits [`TEAM`]).
    pub fn function_provider(&self, net: &Network) -> Value {
        super::provider_manifest(
            PROVIDER,
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &self.role_arn,
        )
    }

    /// Applies [`PROVIDER`] on `net` and waits until it is Ready.
    pub async fn ready_provider(&self, net: &Network) -> CapacityProvider {
        self.apply_provider(self.function_provider(net)).await;
        self.wait_provider(PROVIDER, "Ready", |cp| {
            has_condition(provider_conditions(cp), "Ready", "True", None)
        })
        .await
    }

    /// [`function_manifest`] with this world's role.
    pub fn function(&self, namespace: &str, name: &str) -> Value {
        function_manifest(namespace, name, &self.role_arn)
    }

    /// Applies a SimilarityFunction manifest.
    pub async fn apply_function(&self, manifest: &Value) -> SimilarityFunction {
        self.apply(manifest.clone()).await
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
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!(
            "function {namespace}/{name} never became {what} within {CONVERGE:?}; last status: \
             {:#?}",
            last.and_then(|sf| sf.status)
        )
    }

    /// Waits until the function is Ready for its current generation.
    pub async fn wait_function_ready(&self, namespace: &str, name: &str) -> SimilarityFunction {
        self.wait_function(namespace, name, "Ready", is_ready).await
    }

    /// Deletes a function as the user would.
    pub async fn delete_function(&self, namespace: &str, name: &str) {
        self.functions(namespace)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {namespace}/{name}: {e}"));
    }

    /// Waits until the function is gone from Kubernetes.
    pub async fn wait_function_gone(&self, namespace: &str, name: &str) {
        let api = self.functions(namespace);
        let gone = eventually(CONVERGE, || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)) }
        })
        .await;
        let left = api.get_opt(name).await.ok().flatten();
        assert!(
            gone,
            "function {namespace}/{name} still exists: {:#?}",
            left.and_then(|sf| sf.status)
        );
    }

    /// The AWS name the operator derives for a function.
    pub fn function_aws_name(&self, namespace: &str, name: &str) -> String {
        identity::function_name(CLUSTER, namespace, name)
    }

    /// `$LATEST` of a function in AWS, with its tags.
    pub async fn aws_function(&self, namespace: &str, name: &str) -> Option<GetFunctionOutput> {
        self.lambda
            .get_function()
            .function_name(self.function_aws_name(namespace, name))
            .send()
            .await
            .ok()
    }

    /// `CodeSha256` of a function's `$LATEST` in AWS.
    pub async fn aws_code_sha256(&self, namespace: &str, name: &str) -> Option<String> {
        self.aws_function(namespace, name)
            .await?
            .configuration()?
            .code_sha256()
            .map(str::to_owned)
    }

    /// The published (numbered) versions of a function in AWS, ascending; empty when the
    /// function does not exist.
    pub async fn aws_versions(&self, namespace: &str, name: &str) -> Vec<u64> {
        let Ok(out) = self
            .lambda
            .list_versions_by_function()
            .function_name(self.function_aws_name(namespace, name))
            .send()
            .await
        else {
            return Vec::new();
        };
        let mut v: Vec<u64> = out
            .versions()
            .iter()
            .filter_map(|v| v.version().and_then(|n| n.parse().ok()))
            .collect();
        v.sort_unstable();
        v
    }

    /// (held, applied) scaling of a version in AWS: what the version holds (the request while
    /// it settles, else what is applied — AWS clears the request once applied) and what is
    /// applied.
    pub async fn aws_scaling(
        &self,
        namespace: &str,
        name: &str,
        version: &str,
    ) -> (Option<Scaling>, Option<Scaling>) {
        self.aws_scaling_of(&self.function_aws_name(namespace, name), version)
            .await
    }

    /// (held, applied) scaling of a version of the function named `aws_name` in AWS.
    pub async fn aws_scaling_of(
        &self,
        aws_name: &str,
        version: &str,
    ) -> (Option<Scaling>, Option<Scaling>) {
        let out = self
            .lambda
            .get_function_scaling_config()
            .function_name(aws_name)
            .qualifier(version)
            .send()
            .await
            .expect("scaling config");
        let pair = |s: &FunctionScalingConfig| {
            (
                s.min_execution_environments(),
                s.max_execution_environments(),
            )
        };
        let applied = out.applied_function_scaling_config().map(pair);
        (
            out.requested_function_scaling_config()
                .map(pair)
                .or(applied),
            applied,
        )
    }

    /// ARNs of the function versions attached to a capacity provider (by AWS name).
    pub async fn attached_versions(&self, provider: &str) -> Vec<String> {
        self.lambda
            .list_function_versions_by_capacity_provider()
            .capacity_provider_name(provider)
            .send()
            .await
            .expect("list function versions by capacity provider")
            .function_versions()
            .iter()
            .map(|v| v.function_arn().to_owned())
            .collect()
    }

    /// Names of every function in AWS, sorted.
    pub async fn aws_function_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut marker = None;
        loop {
            let out = self
                .lambda
                .list_functions()
                .set_marker(marker)
                .send()
                .await
                .expect("list functions");
            names.extend(
                out.functions()
                    .iter()
                    .filter_map(|f| f.function_name().map(str::to_owned)),
            );
            marker = out.next_marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        names.sort();
        names
    }
}
