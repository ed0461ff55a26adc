//! Condition types and reasons, shared by both kinds.
//!
//! Reasons are a bounded set of CamelCase constants: they appear in conditions, event reasons
//! and metric labels, so they must never carry free text.

/// The condition Argo CD and humans read: the resource does what its spec asks.
pub const READY: &str = "Ready";
/// The last reconcile applied the current generation of the spec to AWS.
pub const SYNCED: &str = "Synced";
/// AWS differs from the spec (changed outside Git).
pub const DRIFTED: &str = "Drifted";
/// CapacityProvider: subnets and security groups resolve, share one VPC, are private and have
/// egress for telemetry.
pub const NETWORK_READY: &str = "NetworkReady";
/// CapacityProvider: the allowed instance types exist for the architecture in the subnets' AZs.
pub const INSTANCE_TYPES_AVAILABLE: &str = "InstanceTypesAvailable";
/// SimilarityFunction: the referenced capacity provider exists, is Ready and admits the
/// function's namespace.
pub const CAPACITY_PROVIDER_READY: &str = "CapacityProviderReady";
/// Deletion waits on something outside this object (for example function versions still
/// attached to a capacity provider).
pub const DELETION_BLOCKED: &str = "DeletionBlocked";

/// Every condition type the operator writes, for documentation and tests.
pub const ALL_TYPES: &[&str] = &[
    READY,
    SYNCED,
    DRIFTED,
    NETWORK_READY,
    INSTANCE_TYPES_AVAILABLE,
    CAPACITY_PROVIDER_READY,
    DELETION_BLOCKED,
];

/// Condition reasons (CamelCase, bounded).
pub mod reason {
    /// Everything the spec asks for is in place.
    pub const AVAILABLE: &str = "Available";
    /// AWS is still creating or updating the resource.
    pub const PROVISIONING: &str = "Provisioning";
    /// AWS reports the resource failed.
    pub const AWS_FAILED: &str = "AwsFailed";
    /// The spec was applied.
    pub const APPLIED: &str = "Applied";
    /// The spec is valid in the schema but impossible in AWS (bad reference, wrong value).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// AWS refused the operator's credentials or role.
    pub const ACCESS_DENIED: &str = "AccessDenied";
    /// A transient AWS or Kubernetes error; the operator retries with backoff.
    pub const TRANSIENT_ERROR: &str = "TransientError";
    /// A same-named AWS resource exists that this operator does not own.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// AWS matches the spec.
    pub const IN_SYNC: &str = "InSync";
    /// AWS differs and the operator corrected it.
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// AWS differs and the policy is `Report` (or AWS cannot change the field in place).
    pub const DRIFT_DETECTED: &str = "DriftDetected";
    /// A subnet or security group does not exist.
    pub const NETWORK_NOT_FOUND: &str = "NetworkNotFound";
    /// Subnets span more than one VPC, or a security group is in another VPC.
    pub const MULTIPLE_VPCS: &str = "MultipleVpcs";
    /// A subnet routes to an internet gateway.
    pub const PUBLIC_SUBNET: &str = "PublicSubnet";
    /// A subnet has no NAT route and no CloudWatch Logs endpoint: logs would be lost.
    pub const NO_TELEMETRY_EGRESS: &str = "NoTelemetryEgress";
    /// An allowed instance type does not exist, has the wrong architecture or is not offered.
    pub const INSTANCE_TYPE_UNAVAILABLE: &str = "InstanceTypeUnavailable";
    /// The referenced capacity provider does not exist.
    pub const PROVIDER_NOT_FOUND: &str = "ProviderNotFound";
    /// The referenced capacity provider is not Ready yet.
    pub const PROVIDER_NOT_READY: &str = "ProviderNotReady";
    /// No grant of the referenced capacity provider covers this namespace.
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    /// The grant covering the namespace does not allow `spec.roleArn`.
    pub const ROLE_NOT_ALLOWED: &str = "RoleNotAllowed";
    /// The grant covering the namespace does not allow `spec.code.s3`.
    pub const CODE_SOURCE_NOT_ALLOWED: &str = "CodeSourceNotAllowed";
    /// The grant covering the namespace does not allow `spec.catalog.uri`.
    pub const CATALOG_SOURCE_NOT_ALLOWED: &str = "CatalogSourceNotAllowed";
    /// The grant covering the namespace does not allow `spec.awsName`.
    pub const FUNCTION_NAME_NOT_ALLOWED: &str = "FunctionNameNotAllowed";
    /// The function would take its grant past one of the grant's limits.
    pub const TENANT_LIMIT_EXCEEDED: &str = "TenantLimitExceeded";
    /// The functions created before this one on its provider hold the provider's function
    /// versions (AWS allows 100 per provider, not adjustable).
    pub const VERSION_BUDGET_EXCEEDED: &str = "VersionBudgetExceeded";
    /// AWS refused a new version: the provider holds as many function versions as AWS allows.
    pub const VERSION_LIMIT_EXCEEDED: &str = "VersionLimitExceeded";
    /// Function versions are still attached to the capacity provider.
    pub const VERSIONS_ATTACHED: &str = "VersionsAttached";
    /// Nothing blocks deletion.
    pub const NOT_BLOCKED: &str = "NotBlocked";
}
