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
