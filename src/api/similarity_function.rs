//! `SimilarityFunction` (namespaced): a Lambda function running the compiled similarity handler
//! on a CapacityProvider, served as published versions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DeletionPolicy, DriftEntry, DriftPolicy, MAX_USER_TAGS, Tags, immutable, immutable_presence,
    tag_rules, tag_values,
};

const RECREATE: &str = "AWS fixes it when the function is created; create a new \
                        SimilarityFunction instead";

/// Default Bedrock model for query embeddings: Amazon Nova Multimodal Embeddings.
pub const DEFAULT_EMBEDDING_MODEL: &str = "amazon.nova-2-multimodal-embeddings-v1:0";

/// A Lambda function running the compiled product-similarity handler on a CapacityProvider.
/// The operator creates the function, publishes a version for every change of code or
/// configuration (Lambda Managed Instances serve published versions only), applies the scaling
/// and prunes old versions.
// clippy reads the repeated `type_ = ...` of each printcolumn as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lmi.dev",
    version = "v1alpha1",
    kind = "SimilarityFunction",
    derive = "PartialEq",
    plural = "similarityfunctions",
    shortname = "simfn",
    category = "lmi",
    namespaced,
    status = "SimilarityFunctionStatus",
    selectable = ".spec.capacityProviderRef.name",
    doc = "A Lambda function running the compiled product-similarity handler on a \
           CapacityProvider, served as published versions.",
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
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.capacityProviderRef.name"
    ),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Memory",
        type_ = "integer",
        json_path = ".spec.memoryMiB",
        priority = 1
    ),
    printcolumn(
        name = "ARN",
        type_ = "string",
        json_path = ".status.functionArn",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.embedding) || self.embedding.dimensions == self.catalog.dimensions")
    .message("embedding.dimensions must equal catalog.dimensions: query embeddings are \
              compared with the catalog's vectors"))]
#[x_kube(validation = Rule::new("self.memoryMiB >= self.memoryGiBPerVCpu * 1024 && self.memoryMiB % (self.memoryGiBPerVCpu * 1024) == 0")
    .message("memoryMiB must be a whole number of vCPUs: a multiple of memoryGiBPerVCpu × 1024 \
              (for example 4096 or 8192 with memoryGiBPerVCpu 4)"))]
#[x_kube(validation = immutable_presence("awsName", RECREATE))]
pub struct SimilarityFunctionSpec {
    /// Name of the Lambda function (1–64 of `A-Z a-z 0-9 - _`); the provider's grant must allow
    /// it (`tenants[].functionNames`), and names of the shape the operator derives are
    /// reserved. Defaults to `<cluster-name>_<namespace>_<metadata.name>` (a readable prefix and
    /// a hash when that is too long or has dots; never the same for two objects), recorded in
    /// `status.awsName` and never changed afterwards. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    #[x_kube(validation = immutable("awsName", RECREATE))]
    pub aws_name: Option<String>,

    /// The CapacityProvider (cluster-scoped) the function runs on. It must be Ready, and one of
    /// its `tenants` grants must admit this namespace and everything this function names
    /// (role, code, catalog, AWS name). Changing it moves the function: the function (and its
    /// ARN) stays, its next version is published on the new provider, and the versions on the
    /// old one are deleted once that version is Active.
    pub capacity_provider_ref: CapacityProviderRef,

    /// ARN of the function's execution role (it needs CloudWatch Logs, `s3:GetObject` on the
    /// catalog, and `bedrock:InvokeModel` on the embedding model).
    #[schemars(regex(
        pattern = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$"
    ))]
    pub role_arn: String,

    /// Where the handler's code comes from. Default: the handler bundled with the operator,
    /// built for the provider's architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSpec>,

    /// Memory of each execution environment in MiB (2048–32768; Lambda Managed Instances need
    /// at least 2 GiB and one vCPU). Together with `memoryGiBPerVCpu` it sets the vCPUs.
    #[serde(rename = "memoryMiB", default = "default_memory_mib")]
    #[schemars(range(min = 2048, max = 32768))]
    pub memory_mib: i32,

    /// Memory per vCPU in GiB: 2, 4 or 8 — the ratios Lambda supports (the API model takes any
    /// number from 2.0 to 8.0, but "the supported memory-to-CPU ratios are 2GB, 4GB, or 8GB per
    /// CPU": AWS SAM's `CapacityProviderConfig` reference). The similarity scan is
    /// memory-bandwidth bound, so more vCPUs per GiB (2) answer faster; use 4 or 8 for catalogs
    /// that need the memory.
    #[serde(default = "default_memory_per_vcpu")]
    #[schemars(extend("enum" = [2, 4, 8]))]
    pub memory_gi_b_per_v_cpu: i32,

    /// Invocations one execution environment runs at once (1–1600). Default: the Lambda default
    /// for Rust (8 per vCPU). The handler coalesces concurrent queries into one scan, so higher
    /// values raise throughput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1600))]
    pub max_concurrency_per_environment: Option<i32>,

    /// Invocation timeout in seconds (1–5400, the API model's range for Lambda's `Timeout`).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 5400))]
    pub timeout_seconds: i32,

    /// Extra environment variables for the handler (up to 50). Names starting with `AWS_`
    /// (reserved by Lambda) or `LMI_` (set by the operator from this spec) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[x_kube(validation = Rule::new("self.all(e, !e.name.startsWith('AWS_') && !e.name.startsWith('LMI_'))")
        .message("environment names must not start with AWS_ (reserved by Lambda) or LMI_ (set \
                  by the operator from the spec)"))]
    pub environment: Vec<EnvVar>,

    /// Execution environments Lambda keeps for the published version.
    #[serde(default)]
    pub scaling: FunctionScaling,

    /// The product catalog the handler serves.
    pub catalog: CatalogSpec,

    /// The Bedrock model that embeds text and image queries. Without it, the function answers
    /// only queries by vector or product id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingSpec>,

    /// Query limits and search mode.
    #[serde(default)]
    pub search: SearchSpec,

    /// Published versions to keep.
    #[serde(default)]
    pub versions: VersionsSpec,

    /// Optional description of the function in AWS (up to 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,

    /// Tags for the function in AWS, in addition to the operator's ownership tags.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(extend("maxProperties" = MAX_USER_TAGS, "additionalProperties" = tag_values()))]
    #[x_kube(validation = tag_rules())]
    pub tags: Tags,

    /// `Delete` (default) deletes the function and all its versions when this object is
    /// deleted; `Retain` leaves AWS untouched.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Correct` (default) changes AWS back to the spec when it is changed outside Git
    /// (publishing a new version when needed); `Report` only reports such drift (spec changes
    /// are applied either way).
    #[serde(default)]
    pub drift_policy: DriftPolicy,
}

fn default_memory_mib() -> i32 {
    4096
}

fn default_memory_per_vcpu() -> i32 {
    2
}

fn default_timeout() -> i32 {
    30
}

/// One environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name: a letter, then letters, digits or underscores (at most 128).
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$")
    )]
    pub name: String,
    /// Value (at most 4096 characters; Lambda limits all variables together to 4 KB).
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// Reference to a cluster-scoped CapacityProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderRef {
    /// `metadata.name` of the CapacityProvider.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Handler code from S3 instead of the bundled build.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CodeSpec {
    /// A `bootstrap` zip for `provided.al2023` in S3, built for the provider's architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Object>,
}

/// An object in Amazon S3.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Object {
    /// Bucket name (in the function's region).
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// Object key.
    #[schemars(length(min = 1, max = 1024))]
    pub key: String,
    /// Object version, for versioned buckets. Pin it to make deployments reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub object_version: Option<String>,
}

/// Execution environments for the published version (Lambda's function scaling config).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minExecutionEnvironments) || !has(self.maxExecutionEnvironments) || self.minExecutionEnvironments <= self.maxExecutionEnvironments")
    .message("scaling.minExecutionEnvironments must not exceed scaling.maxExecutionEnvironments"))]
pub struct FunctionScaling {
    /// Environments kept running even without traffic (0–15000). Default: the Lambda default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 15000))]
    pub min_execution_environments: Option<i32>,

    /// Upper bound on environments (0–15000; 0 stops the function). Default: the Lambda
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 15000))]
    pub max_execution_environments: Option<i32>,
}

/// Where the catalog lives and its shape.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    /// `s3://bucket/key` of a Parquet file with columns `id` (string), `category` (string),
    /// `embedding` (list of float32) and optional payload columns returned with results.
    #[schemars(regex(pattern = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"))]
    pub uri: String,

    /// AWS account that must own the catalog's bucket (12 digits). The handler sends it as
    /// `ExpectedBucketOwner` on its catalog read, so a bucket of the same name owned by anyone
    /// else (after the bucket was deleted and its name taken) is refused with 403, never loaded.
    /// Default: the function's own account; set it for a catalog in another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub bucket_owner: Option<String>,

    /// Length of every embedding vector in the catalog: 256, 384, 1024 or 3072, the sizes the
    /// embedding model produces and the handler serves (queries and catalog must match).
    #[schemars(extend("enum" = [256, 384, 1024, 3072]))]
    pub dimensions: i32,
}

/// The model that embeds queries.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingSpec {
    /// Amazon Bedrock model id (or inference profile id) of Amazon Nova Multimodal Embeddings.
    #[serde(default = "default_embedding_model")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^[a-zA-Z0-9.:/_-]+$"))]
    pub model_id: String,

    /// Output dimension requested from the model: 256, 384, 1024 or 3072 (Nova's supported
    /// sizes). Must equal `catalog.dimensions`.
    #[schemars(extend("enum" = [256, 384, 1024, 3072]))]
    pub dimensions: i32,
}

fn default_embedding_model() -> String {
    DEFAULT_EMBEDDING_MODEL.to_owned()
}

/// How vectors are stored and searched.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Exact search over float32 vectors (default).
    #[default]
    Float32,
    /// int8 vectors scanned first (about 4× less memory traffic), then the best candidates
    /// re-scored exactly in float32.
    Int8,
}

/// Query limits and search mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SearchSpec {
    /// Largest `topK` a query may ask for (1–1000).
    #[serde(default = "default_max_top_k")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_top_k: i32,

    /// `Float32` (default, exact) or `Int8` (faster scan with exact re-scoring).
    #[serde(default)]
    pub precision: Precision,
}

impl Default for SearchSpec {
    fn default() -> Self {
        Self {
            max_top_k: default_max_top_k(),
            precision: Precision::default(),
        }
    }
}

fn default_max_top_k() -> i32 {
    100
}

/// Published versions to keep.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionsSpec {
    /// How many published versions to keep, the current one included (1–50). Older ones are
    /// deleted after a new version is Active.
    #[serde(default = "default_retain")]
    #[schemars(range(min = 1, max = 50))]
    pub retain: i32,
}

impl Default for VersionsSpec {
    fn default() -> Self {
        Self {
            retain: default_retain(),
        }
    }
}

fn default_retain() -> i32 {
    3
}

// State of a function version as AWS reports it. (No `///`: kube's OptionalEnum transform
// would put it in place of the field's own description.)
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionState {
    /// Being created; capacity starting.
    Pending,
    /// Serving invocations.
    Active,
    /// Active but not invocable (for example scaled to zero).
    ActiveNonInvocable,
    /// Idle for a long time; reactivated on demand.
    Inactive,
    /// AWS could not create it; see the conditions.
    Failed,
    /// Being deactivated.
    Deactivating,
    /// Deactivated.
    Deactivated,
    /// Being deleted.
    Deleting,
}

/// Scaling as requested and as applied by Lambda.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStatus {
    /// What the operator asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<FunctionScaling>,
    /// What Lambda applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<FunctionScaling>,
}

/// Observed state of a SimilarityFunction.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimilarityFunctionStatus {
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Name of the Lambda function (fixed once created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_name: Option<String>,

    /// Unqualified ARN of the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_arn: Option<String>,

    /// ARN of the capacity provider the function is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_provider_arn: Option<String>,

    /// The grant (`spec.tenants[].name`) of the capacity provider that admits the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,

    /// The current published version (the one invocations reach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Published versions kept, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,

    /// SHA-256 (base64, as Lambda reports it) of the deployed code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,

    /// Hash of the configuration the current version was published with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,

    /// State of the current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FunctionState>,

    /// Status of the last configuration or code update (`Successful`, `InProgress`, `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_status: Option<String>,

    /// Scaling requested by the operator and applied by Lambda.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,

    /// Versions kept only for rollback, scaled to 0 execution environments (they cost nothing
    /// until a rollback reactivates them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_versions: Vec<String>,

    /// Tag keys the operator set on the function from `spec.tags` (and its ownership tags): a
    /// key removed from the spec is removed from AWS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_tags: Vec<String>,

    /// Differences between the spec and AWS found by the last resync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftEntry>,

    /// When the operator last compared AWS with the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// Ready, Synced, Drifted, CapacityProviderReady, DeletionBlocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
