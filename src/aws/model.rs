//! Plain, comparable descriptions of what AWS holds, free of SDK types, so desired state can be
//! built and diffed by pure code.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::capacity_provider::ProviderState;

/// Scaling of a capacity provider.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderScaling {
    /// `Auto` or `Manual`.
    pub mode: Option<String>,
    /// Upper bound on vCPUs.
    pub max_vcpu_count: Option<i32>,
    /// CPU utilisation target for `Manual` mode.
    pub target_cpu_utilization: Option<f64>,
}

/// Tag propagation of a capacity provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderPropagateTags {
    /// `None` or `Explicit`.
    pub mode: String,
    /// Tags applied to launched instances.
    pub explicit_tags: BTreeMap<String, String>,
}

/// System log settings of a capacity provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderLogging {
    /// `DEBUG`, `INFO` or `WARN`.
    pub system_log_level: Option<String>,
    /// Log group name.
    pub log_group: Option<String>,
}

/// A capacity provider's configuration, as sent to or read from AWS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderConfig {
    /// Subnets (fixed at creation).
    pub subnet_ids: BTreeSet<String>,
    /// Security groups (fixed at creation).
    pub security_group_ids: BTreeSet<String>,
    /// Operator role (fixed at creation).
    pub operator_role_arn: String,
    /// `x86_64` or `arm64` (fixed at creation).
    pub architecture: Option<String>,
    /// Allowed instance types (fixed at creation).
    pub allowed_instance_types: BTreeSet<String>,
    /// Excluded instance types (fixed at creation).
    pub excluded_instance_types: BTreeSet<String>,
    /// KMS key (fixed at creation).
    pub kms_key_arn: Option<String>,
    /// Scaling (changeable).
    pub scaling: ProviderScaling,
    /// Tag propagation (changeable).
    pub propagate_tags: Option<ProviderPropagateTags>,
    /// Logging (changeable).
    pub logging: Option<ProviderLogging>,
}

/// A capacity provider as AWS reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedProvider {
    /// ARN.
    pub arn: String,
    /// Lifecycle state.
    pub state: ProviderState,
    /// Configuration.
    pub config: ProviderConfig,
}

/// A function version attached to a capacity provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedVersion {
    /// Qualified function ARN.
    pub function_arn: String,
    /// Version state.
    pub state: String,
}

/// A Lambda function's configuration as the operator sets it on `$LATEST` and compares it with
/// published versions. Members the operator never sets (VPC, layers, …) are left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionConfig {
    /// Runtime, e.g. `provided.al2023`.
    pub runtime: Option<String>,
    /// Handler, e.g. `bootstrap`.
    pub handler: Option<String>,
    /// `x86_64` or `arm64`.
    pub architecture: Option<String>,
    /// Memory in MiB.
    pub memory_mib: Option<i32>,
    /// Timeout in seconds.
    pub timeout_seconds: Option<i32>,
    /// Execution role ARN.
    pub role_arn: String,
    /// Description (`None` when empty).
    pub description: Option<String>,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Capacity provider ARN (`None` for a function not on a capacity provider).
    pub capacity_provider_arn: Option<String>,
    /// Invocations one execution environment runs at once.
    pub max_concurrency: Option<i32>,
    /// Memory per vCPU in GiB.
    pub memory_gib_per_vcpu: Option<f64>,
}

/// State of a function (`$LATEST`) or a published version, as AWS reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedFunction {
    /// Function ARN as AWS returns it (qualified for a published version).
    pub arn: String,
    /// `$LATEST` or the version number.
    pub version: String,
    /// `Pending`, `Active`, … (`None` when AWS reports no state or one the operator does not
    /// know).
    pub state: Option<crate::api::similarity_function::FunctionState>,
    /// The state as AWS spelt it, also when `state` is `None` because the operator does not
    /// know it (a state a later API adds), for messages.
    pub state_name: Option<String>,
    /// Why the state is what it is (AWS's text), for messages.
    pub state_reason: Option<String>,
    /// AWS's code for the state (`InsufficientCapacity`, `VcpuLimitExceeded`, …).
    pub state_reason_code: Option<String>,
    /// `Successful`, `InProgress` or `Failed`.
    pub last_update_status: Option<String>,
    /// Why the last update failed (AWS's text), for messages.
    pub last_update_reason: Option<String>,
    /// Revision id, for optimistic concurrency on publish.
    pub revision_id: Option<String>,
    /// When the function was last created or updated (AWS's ISO-8601 text).
    pub last_modified: Option<String>,
    /// Base64 SHA-256 of the deployment package.
    pub code_sha256: Option<String>,
    /// Configuration.
    pub config: FunctionConfig,
}

/// Where a function's code comes from, as sent to CreateFunction / UpdateFunctionCode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeSource {
    /// A zip uploaded with the request.
    Zip(std::sync::Arc<Vec<u8>>),
    /// An object in S3.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Object version, for versioned buckets.
        object_version: Option<String>,
    },
}

/// A function scaling config (execution environments of a published version).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingConfig {
    /// Minimum execution environments.
    pub min: Option<i32>,
    /// Maximum execution environments.
    pub max: Option<i32>,
}

/// A published version's scaling as requested and as applied by Lambda.
///
/// AWS reports `requested` only while a put settles, then moves the values to `applied` and
/// clears `requested` (see tests/aws/README.md, "Lifecycle").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedScaling {
    /// What was last asked for, while it settles (`None` once applied, or never put).
    pub requested: Option<ScalingConfig>,
    /// What Lambda applies.
    pub applied: Option<ScalingConfig>,
}

impl ObservedScaling {
    /// What the version holds as far as the caller is concerned: the settling request, else
    /// what is applied. Compared with the spec, so a settled config is not put again.
    pub fn held(&self) -> Option<&ScalingConfig> {
        self.requested.as_ref().or(self.applied.as_ref())
    }
}
