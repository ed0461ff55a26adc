//! `CapacityProvider` (cluster-scoped): an AWS Lambda Managed Instances capacity provider — the
//! VPC networking, instance requirements and scaling of the EC2 fleet that runs functions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DeletionPolicy, DriftEntry, DriftPolicy, MAX_USER_TAGS, Tags, immutable, immutable_presence,
    is_false, tag_rules, tag_values,
};

const RECREATE: &str = "AWS fixes it when the capacity provider is created; create a new \
                        CapacityProvider (and move functions to it) instead";

/// An AWS Lambda Managed Instances capacity provider: the EC2 fleet (VPC, instance types,
/// scaling) that runs SimilarityFunctions. Functions that share a provider share instances, so a
/// provider is a trust boundary: its `tenants` grants decide who may use it, and with what.
// clippy reads the repeated `type_ = ...` of each printcolumn as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lmi.dev",
    version = "v1alpha1",
    kind = "CapacityProvider",
    derive = "PartialEq",
    plural = "capacityproviders",
    shortname = "lmicp",
    category = "lmi",
    status = "CapacityProviderStatus",
    doc = "An AWS Lambda Managed Instances capacity provider: VPC networking, instance \
           requirements and scaling of the EC2 fleet that runs SimilarityFunctions.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Arch",
        type_ = "string",
        json_path = ".spec.instances.architecture"
    ),
    printcolumn(
        name = "Max vCPU",
        type_ = "integer",
        json_path = ".spec.scaling.maxVCpuCount",
        priority = 1
    ),
    printcolumn(
        name = "ARN",
        type_ = "string",
        json_path = ".status.arn",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = immutable_presence("awsName", RECREATE))]
#[x_kube(validation = immutable_presence("region", RECREATE))]
#[x_kube(validation = immutable_presence("kmsKeyArn", RECREATE))]
pub struct CapacityProviderSpec {
    /// Name of the capacity provider in AWS Lambda (1–140 of `A-Z a-z 0-9 - _`). Defaults to
    /// `<cluster-name>_<metadata.name>` (a readable prefix and a hash when that has dots or is
    /// too long; never the same for two objects), recorded in `status.awsName` and never
    /// changed afterwards. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 140), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    #[x_kube(validation = immutable("awsName", RECREATE))]
    pub aws_name: Option<String>,

    /// AWS region of the capacity provider, for example `eu-west-1`. Defaults to the operator's
    /// region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(eusc-)?[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"))]
    #[x_kube(validation = immutable("region", RECREATE))]
    pub region: Option<String>,

    /// Take ownership of an existing capacity provider with the same `awsName` that no
    /// installation of this operator created. Without it, a same-named foreign provider is
    /// never modified or deleted: the resource reports `Ready=False` with reason
    /// `NameConflict`. A provider of another installation of the operator is never taken over.
    /// Considered once: after the takeover (`status.adoptedArn`) it has no further effect.
    #[serde(default, skip_serializing_if = "is_false")]
    pub adopt: bool,

    /// Where the instances run: subnets, security groups, and telemetry endpoints.
    pub vpc: VpcSpec,

    /// ARN of the capacity provider operator role: the IAM role Lambda assumes to launch and
    /// manage the EC2 instances (it needs the AWS managed policy
    /// `AWSLambdaManagedEC2ResourceOperator` or equivalent). Immutable.
    #[schemars(regex(
        pattern = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
    ))]
    #[x_kube(validation = immutable("operatorRoleArn", RECREATE))]
    pub operator_role_arn: String,

    /// Which EC2 instances Lambda may launch. Immutable.
    #[serde(default)]
    #[x_kube(validation = immutable("instances", RECREATE))]
    pub instances: InstancesSpec,

    /// How the fleet scales. Changes are applied in place.
    #[serde(default)]
    pub scaling: ScalingSpec,

    /// ARN of the KMS key that encrypts the instances' EBS volumes. Defaults to an AWS managed
    /// key. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^arn:aws[a-zA-Z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[a-zA-Z0-9/_-]+$"
    ))]
    #[x_kube(validation = immutable("kmsKeyArn", RECREATE))]
    pub kms_key_arn: Option<String>,

    /// Where Lambda sends the capacity provider's system logs. Changes are applied in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,

    /// Tags for the capacity provider in AWS, in addition to the operator's ownership tags.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(extend("maxProperties" = MAX_USER_TAGS, "additionalProperties" = tag_values()))]
    #[x_kube(validation = tag_rules())]
    pub tags: Tags,

    /// Whether tags are copied onto the EC2 instances the provider launches. Changes are applied
    /// in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTagsSpec>,

    /// Grants: which namespaces may place SimilarityFunctions on this provider, and for them
    /// which execution roles, code and catalog sources and AWS function names they may use,
    /// within which limits. Functions on one provider share EC2 instances (AWS: the capacity
    /// provider is the security boundary, containers are not), so a function is admitted only
    /// when one grant admits its namespace and everything it names; otherwise it is refused
    /// with a reason and nothing is written to AWS. Removing or narrowing a grant suspends the
    /// functions it no longer admits (their versions are scaled to zero execution
    /// environments) until a grant admits them again. No grants: no function is admitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tenants: Vec<TenantGrant>,

    /// `Delete` (default) deletes the AWS capacity provider and the resources the operator
    /// created for it when this object is deleted; `Retain` leaves AWS untouched.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Correct` (default) changes AWS back to the spec when it is changed outside Git;
    /// `Report` only reports such drift (spec changes are applied either way).
    #[serde(default)]
    pub drift_policy: DriftPolicy,
}

/// The capacity provider's network: subnets (by id or tag selector) and security groups (by
/// id, tag selector, or one the operator creates), all in one VPC. Instances belong in private
/// subnets; without a NAT route or VPC endpoints for CloudWatch Logs their logs are lost.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.subnetIds) != has(self.subnetSelector)")
    .message("set exactly one of vpc.subnetIds or vpc.subnetSelector"))]
#[x_kube(validation = Rule::new(
    "(has(self.securityGroupIds) ? 1 : 0) + (has(self.securityGroupSelector) ? 1 : 0) + \
     (has(self.managedSecurityGroup) ? 1 : 0) == 1")
    .message("set exactly one of vpc.securityGroupIds, vpc.securityGroupSelector or \
              vpc.managedSecurityGroup"))]
#[x_kube(validation = immutable_presence("subnetIds", RECREATE))]
#[x_kube(validation = immutable_presence("subnetSelector", RECREATE))]
#[x_kube(validation = immutable_presence("securityGroupIds", RECREATE))]
#[x_kube(validation = immutable_presence("securityGroupSelector", RECREATE))]
#[x_kube(validation = immutable_presence("managedSecurityGroup", RECREATE))]
pub struct VpcSpec {
    /// Subnet ids (1–16, all in one VPC, private). Spread them over several Availability Zones:
    /// Lambda launches three instances by default for AZ resiliency. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 16),
        inner(regex(pattern = r"^subnet-[0-9a-f]{8,17}$"))
    )]
    #[x_kube(validation = immutable("vpc.subnetIds", RECREATE))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub subnet_ids: Option<Vec<String>>,

    /// Select subnets by tags (and optionally VPC) instead of listing ids; it must match 1–16
    /// subnets in one VPC. Resolved once at creation and shown in `status.network`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = immutable("vpc.subnetSelector", RECREATE))]
    pub subnet_selector: Option<ResourceSelector>,

    /// Security group ids (0–5, as the Lambda API allows) in the subnets' VPC. An empty list
    /// gives the instances no group of your own: EC2 then attaches the VPC's default security
    /// group (EC2 API reference, `RunInstances` `SecurityGroupIds`), whose rules you may not
    /// control; prefer a group made for the provider (`managedSecurityGroup`). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 0, max = 5),
        inner(regex(pattern = r"^sg-[0-9a-f]{8,17}$"))
    )]
    #[x_kube(validation = immutable("vpc.securityGroupIds", RECREATE))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub security_group_ids: Option<Vec<String>>,

    /// Select security groups (1–5) by tags (and optionally VPC) instead of listing ids.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = immutable("vpc.securityGroupSelector", RECREATE))]
    pub security_group_selector: Option<ResourceSelector>,

    /// Have the operator create and own one security group for the instances (no ingress;
    /// egress as configured, HTTPS only by default). It is deleted with the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_security_group: Option<ManagedSecurityGroup>,

    /// `Create`: when the subnets have no NAT route, the operator creates and owns interface VPC
    /// endpoints for CloudWatch Logs, CloudWatch metrics and X-Ray so the functions' telemetry
    /// is not lost. `None` (default): the operator only warns (`NetworkReady=False`).
    #[serde(default)]
    pub telemetry_endpoints: TelemetryEndpoints,
}

/// Selects AWS resources by tags, optionally within one VPC.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSelector {
    /// Only resources in this VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^vpc-[0-9a-f]{8,17}$"))]
    pub vpc_id: Option<String>,

    /// Tags every selected resource must carry (exact key and value; all must match; 1–20).
    #[schemars(extend("minProperties" = 1, "maxProperties" = 20))]
    pub tags: Tags,
}

/// A security group the operator creates, owns and deletes with the provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedSecurityGroup {
    /// IPv4 CIDR blocks the instances may reach.
    #[serde(default = "default_egress_cidrs")]
    #[schemars(
        length(min = 1, max = 20),
        inner(regex(pattern = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])$"))
    )]
    pub egress_cidr_blocks: Vec<String>,

    /// TCP ports the instances may reach (443 for AWS APIs over HTTPS).
    #[serde(default = "default_egress_ports")]
    #[schemars(length(min = 1, max = 20), inner(range(min = 1, max = 65535)))]
    pub egress_ports: Vec<i32>,
}

impl Default for ManagedSecurityGroup {
    fn default() -> Self {
        Self {
            egress_cidr_blocks: default_egress_cidrs(),
            egress_ports: default_egress_ports(),
        }
    }
}

fn default_egress_cidrs() -> Vec<String> {
    vec!["0.0.0.0/0".to_owned()]
}

fn default_egress_ports() -> Vec<i32> {
    vec![443]
}

/// Whether the operator creates interface VPC endpoints for telemetry.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TelemetryEndpoints {
    /// Do not create endpoints; warn when the subnets have no telemetry egress.
    #[default]
    None,
    /// Create endpoints for CloudWatch Logs, metrics and X-Ray where no NAT route exists.
    Create,
}

/// CPU architecture of the instances (and of the handler build deployed on them).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Architecture {
    /// Intel and AMD instances (the AWS default).
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// AWS Graviton instances.
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// The value AWS APIs use.
    pub fn as_aws_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// Instance requirements, fixed at creation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.allowedInstanceTypes) && has(self.excludedInstanceTypes))")
    .message("set at most one of instances.allowedInstanceTypes and \
              instances.excludedInstanceTypes (AWS accepts one or the other)"))]
pub struct InstancesSpec {
    /// `x86_64` (default) or `arm64` (Graviton). Decides which handler build the operator
    /// deploys to functions on this provider.
    #[serde(default)]
    pub architecture: Architecture,

    /// Instance types Lambda may launch (up to 400; wildcards such as `c8g.*` or `m7i.*`
    /// allowed). They must exist for the architecture and be offered in the subnets'
    /// Availability Zones. Default: Lambda chooses (recommended for availability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 400),
        inner(regex(pattern = r"^[a-zA-Z0-9.*-]{1,30}$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed_instance_types: Option<Vec<String>>,

    /// Instance types Lambda must not launch (up to 400; wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 400),
        inner(regex(pattern = r"^[a-zA-Z0-9.*-]{1,30}$"))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub excluded_instance_types: Option<Vec<String>>,
}

/// How Lambda scales the fleet.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScalingMode {
    /// Lambda scales the instances on its own (default).
    #[default]
    Auto,
    /// Lambda tracks the CPU utilisation target in `targetCpuUtilization`.
    Manual,
}

/// Fleet scaling, changeable in place.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'Manual' ? has(self.targetCpuUtilization) : !has(self.targetCpuUtilization)")
    .message("scaling.targetCpuUtilization is required when scaling.mode is Manual and not \
              allowed when it is Auto"))]
pub struct ScalingSpec {
    /// `Auto` (default): Lambda scales on its own. `Manual`: Lambda keeps average CPU
    /// utilisation at `targetCpuUtilization`.
    #[serde(default)]
    pub mode: ScalingMode,

    /// Upper bound on the vCPUs of all instances together (2–15000). Default: the AWS default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 15000))]
    pub max_v_cpu_count: Option<i32>,

    /// Target average CPU utilisation in percent (1–100) for `Manual` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub target_cpu_utilization: Option<f64>,
}

// Level of the system logs Lambda sends for the capacity provider. (No `///` here: kube's
// OptionalEnum transform would put it in place of the field's own description.)
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum SystemLogLevel {
    /// Everything, for troubleshooting.
    Debug,
    /// Informational messages and above.
    Info,
    /// Warnings only.
    Warn,
}

/// CloudWatch Logs settings for the capacity provider's system logs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// `DEBUG`, `INFO` or `WARN`. Default: the AWS default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_log_level: Option<SystemLogLevel>,

    /// Log group name. Default: `/aws/lambda/capacity-provider/<awsName>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^[.\-_/#A-Za-z0-9]+$"))]
    pub log_group: Option<String>,
}

/// Whether and which tags are copied onto launched instances.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PropagateTagsMode {
    /// No tags are propagated (default).
    #[default]
    None,
    /// The tags in `explicitTags` are applied to launched instances.
    Explicit,
}

/// Tag propagation to the EC2 instances Lambda launches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'Explicit' || !has(self.explicitTags) || size(self.explicitTags) == 0")
    .message("propagateTags.explicitTags is only used when propagateTags.mode is Explicit"))]
pub struct PropagateTagsSpec {
    /// `None` (default) or `Explicit`.
    #[serde(default)]
    pub mode: PropagateTagsMode,

    /// Tags applied to launched instances when `mode` is `Explicit` (up to 40).
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(extend("maxProperties" = 40, "additionalProperties" = tag_values()))]
    #[x_kube(validation = tag_rules())]
    pub explicit_tags: Tags,
}

/// One grant of a capacity provider: the namespaces it covers and what their functions may use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantGrant {
    /// Name of the grant, unique within the provider (for example the team's name). Refusals
    /// name the grant to change, and a tenant's limits are counted per grant.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// The namespaces this grant covers: listed by name, or selected by their labels.
    pub namespaces: NamespaceGrant,

    /// Execution roles the functions may use (`spec.roleArn`), as ARN patterns (1–50). `*`
    /// matches any run of characters within one path segment (never `/`); the partition and
    /// account are literal. Role names compare without regard to case, as IAM's do. Example:
    /// `arn:aws:iam::123456789012:role/team-a-*`.
    #[schemars(
        length(min = 1, max = 50),
        inner(regex(
            pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[a-zA-Z0-9+=,.@_/*-]{1,512}$"
        ))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub execution_role_arns: Vec<String>,

    /// S3 locations the functions may load handler code from (`spec.code.s3`), up to 50: a
    /// bucket (`s3://bucket/`), a key prefix ending in `/` (`s3://bucket/lambda/`) or one
    /// object (`s3://bucket/lambda/bootstrap.zip`). Empty (default): only the handler bundled
    /// with the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(regex(pattern = S3_SOURCE_PATTERN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub code_sources: Vec<String>,

    /// S3 locations the functions may serve catalogs from (`spec.catalog.uri`), 1–50, written
    /// like `codeSources`. Example: `s3://team-a-catalogs/`.
    #[schemars(length(min = 1, max = 50), inner(regex(pattern = S3_SOURCE_PATTERN)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub catalog_sources: Vec<String>,

    /// AWS function names the functions may set in `spec.awsName`, as patterns (`*` matches
    /// any run of characters), up to 50. Empty (default): only the names the operator derives
    /// (which cannot collide with another object's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(regex(pattern = r"^[a-zA-Z0-9_*-]{1,64}$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub function_names: Vec<String>,

    /// What all functions admitted by this grant on this provider may claim together.
    #[serde(default, skip_serializing_if = "TenantLimits::is_unlimited")]
    pub limits: TenantLimits,
}

/// S3 source patterns of a grant: `s3://bucket/`, `s3://bucket/prefix/` or `s3://bucket/key`
/// (no wildcards; no `.` or `..` path segments).
const S3_SOURCE_PATTERN: &str = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^*?]*)$";

/// Namespaces covered by a grant: a namespace is covered when it is listed in `names` or its
/// labels match `selector`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.names) && size(self.names) > 0) || has(self.selector)")
    .message("a grant must cover namespaces: set namespaces.names, namespaces.selector, or both"))]
pub struct NamespaceGrant {
    /// Namespace names covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub names: Vec<String>,

    /// Label selector on Namespace objects (`{}` covers every namespace: use it only on a
    /// provider every team may share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Limits of one grant, summed over every function it admits on the provider (in every
/// namespace it covers). Unset: no limit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantLimits {
    /// Most SimilarityFunctions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_functions: Option<i32>,

    /// Most execution environments: the sum of `spec.scaling.maxExecutionEnvironments`
    /// (which then must be set on every function).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 15000))]
    pub max_execution_environments: Option<i32>,

    /// Most memory in MiB: the sum of `spec.memoryMiB` (one execution environment of each
    /// function).
    #[serde(
        rename = "maxMemoryMiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 33554432))]
    pub max_memory_mib: Option<i32>,

    /// Most published versions kept: the sum of `spec.versions.retain`. Keep it well under
    /// 100, the number of function versions AWS allows on one capacity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_retained_versions: Option<i32>,
}

impl TenantLimits {
    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        self == &TenantLimits::default()
    }
}

// Lifecycle state of the capacity provider in AWS. (No `///`: see `SystemLogLevel`.)
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderState {
    /// Being created; not usable yet.
    Pending,
    /// Usable.
    Active,
    /// AWS could not create it; see the conditions.
    Failed,
    /// Being deleted.
    Deleting,
}

/// Function versions on a provider against AWS's limit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionQuota {
    /// Function versions attached now (`$LATEST` included, as AWS counts them).
    pub used: i64,
    /// AWS's limit (`--max-versions-per-capacity-provider`).
    pub limit: i64,
}

/// Observed state of a CapacityProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderStatus {
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Name of the capacity provider in AWS (fixed once created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_name: Option<String>,

    /// ARN of the capacity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,

    /// AWS region of the capacity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Lifecycle state AWS reports: Pending, Active, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ProviderState>,

    /// The network as resolved in EC2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatus>,

    /// Instance types resolved from the allowed types (wildcards expanded) for the
    /// architecture and offered in the subnets' Availability Zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_types: Vec<String>,

    /// Function versions attached to this provider (ARNs), as AWS lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub function_versions: Vec<String>,

    /// How many function versions the provider holds against AWS's limit per provider (100,
    /// not adjustable). Functions are admitted while their versions fit (each needs
    /// `spec.versions.retain` + 2: `$LATEST` and one being rolled out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version_quota: Option<VersionQuota>,

    /// Tag keys the operator set on the provider (`spec.tags` and its ownership tags): a key
    /// removed from the spec is removed from AWS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_tags: Vec<String>,

    /// ARN of the existing capacity provider this object took over (`spec.adopt`). Once set,
    /// `spec.adopt` is no longer considered: a same-named provider that later replaces it is
    /// never taken over silently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_arn: Option<String>,

    /// Differences between the spec and AWS found by the last resync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftEntry>,

    /// When the operator last compared AWS with the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// Ready, Synced, Drifted, NetworkReady, InstanceTypesAvailable, DeletionBlocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// How a subnet reaches the AWS telemetry endpoints.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// A route to a NAT gateway.
    NatGateway,
    /// Interface VPC endpoints for CloudWatch Logs in the VPC.
    VpcEndpoints,
    /// A route to an internet gateway: the subnet is public (refused).
    InternetGateway,
    /// No egress: telemetry would be lost.
    None,
}

/// A resolved subnet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SubnetStatus {
    /// Subnet id.
    pub id: String,
    /// Availability Zone of the subnet.
    pub availability_zone: String,
    /// How the subnet reaches AWS telemetry endpoints.
    pub egress: Egress,
}

/// The network as resolved in EC2.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// The VPC all subnets belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Resolved subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubnetStatus>,
    /// Resolved security group ids (including a managed one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// The security group the operator created, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_security_group_id: Option<String>,
    /// Interface VPC endpoints the operator created for telemetry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_endpoint_ids: Vec<String>,
}
