//! What the user asked for, as the chaos test tracks it: the providers and functions that should
//! exist with their specs (and those deleted), and the manifests that say so.

use std::collections::{BTreeMap, BTreeSet};

use lmi_test_support::Network;
use serde_json::{Value, json};

use crate::harness::functions::TEAM;

/// How a provider is networked (fixed at creation, as AWS fixes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Networking {
    /// NAT-routed subnets and a security group the user made.
    GivenGroup,
    /// NAT-routed subnets and a security group the operator creates and owns.
    ManagedGroup,
    /// Isolated subnets, a managed security group, and telemetry endpoints the operator creates
    /// and owns (with their own security group).
    Endpoints,
}

/// A provider's spec, as far as the test varies it.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    pub networking: Networking,
    pub max_vcpu: i32,
    /// Value of the user tag `chaos`.
    pub tag: String,
}

/// A function's spec, as far as the test varies it.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    pub provider: String,
    pub memory_mib: i32,
    pub concurrency: i32,
    pub min: i32,
    pub max: i32,
    pub retain: i32,
    /// Value of the environment variable `CHAOS_REVISION`.
    pub revision: String,
}

/// The networks providers are put on.
pub struct Networks {
    pub nat: Network,
    pub isolated: Network,
}

/// The user's side of the world.
#[derive(Default)]
pub struct Model {
    pub providers: BTreeMap<String, ProviderSpec>,
    pub functions: BTreeMap<String, FunctionSpec>,
    pub deleted_providers: BTreeSet<String>,
    pub deleted_functions: BTreeSet<String>,
    next: u32,
}

impl Model {
    /// A name never used before (names are not reused: a deleted object may still be
    /// terminating).
    pub fn fresh_name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{}", self.next)
    }

    /// Live functions on `provider`.
    pub fn functions_on(&self, provider: &str) -> Vec<String> {
        self.functions
            .iter()
            .filter(|(_, f)| f.provider == provider)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The CapacityProvider manifest for `spec`.
pub fn provider_manifest(name: &str, spec: &ProviderSpec, nets: &Networks, role: &str) -> Value {
    let vpc = match spec.networking {
        Networking::GivenGroup => json!({
            "subnetIds": nets.nat.private_subnet_ids(),
            "securityGroupIds": [nets.nat.security_group_id],
        }),
        Networking::ManagedGroup => json!({
            "subnetIds": nets.nat.private_subnet_ids(),
            "managedSecurityGroup": {},
        }),
        Networking::Endpoints => json!({
            "subnetIds": nets.isolated.subnet_ids(lmi_test_support::Egress::None),
            "managedSecurityGroup": {},
            "telemetryEndpoints": "Create",
        }),
    };
    json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "CapacityProvider",
        "metadata": {"name": name},
        "spec": {
            "vpc": vpc,
            "operatorRoleArn": role,
            "instances": {"architecture": "arm64"},
            "scaling": {"mode": "Auto", "maxVCpuCount": spec.max_vcpu},
            "tenants": [crate::harness::grant(TEAM, json!({"names": [TEAM]}), role)],
            "tags": {"chaos": spec.tag},
        }
    })
}

/// The SimilarityFunction manifest for `spec` (in [`TEAM`]).
pub fn function_manifest(name: &str, spec: &FunctionSpec, role: &str) -> Value {
    json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "SimilarityFunction",
        "metadata": {"name": name, "namespace": TEAM},
        "spec": {
            "capacityProviderRef": {"name": spec.provider},
            "roleArn": role,
            "memoryMiB": spec.memory_mib,
            "memoryGiBPerVCpu": 2,
            "maxConcurrencyPerEnvironment": spec.concurrency,
            "scaling": {
                "minExecutionEnvironments": spec.min,
                "maxExecutionEnvironments": spec.max,
            },
            "environment": [{"name": "CHAOS_REVISION", "value": spec.revision}],
            "catalog": {"uri": "s3://catalogs/products.parquet", "dimensions": 1024},
            "embedding": {"modelId": "amazon.nova-2-multimodal-embeddings-v1:0", "dimensions": 1024},
            "versions": {"retain": spec.retain},
            "tags": {"team": "search"},
        }
    })
}
