//! Desired state (pure): the function configuration, tags and scaling the spec asks for, the
//! hash that identifies a published version, and the markers the operator leaves in AWS (the
//! config hash in each version's description, the S3 code source in a tag).

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::admission::Admitted;
use crate::api::similarity_function::{Precision, S3Object, SimilarityFunctionSpec};
use crate::aws::model::{FunctionConfig, ScalingConfig};

/// Runtime of the handler: a custom runtime running the `bootstrap` executable.
pub const RUNTIME: &str = "provided.al2023";
/// Handler name (informational for custom runtimes; Lambda runs `bootstrap`).
pub const HANDLER: &str = "bootstrap";

/// Environment variables the handler reads (issue 8 owns the handler side).
pub mod env {
    /// `s3://bucket/key` of the catalog.
    pub const CATALOG_URI: &str = "LMI_CATALOG_URI";
    /// Account that must own the catalog's bucket (`ExpectedBucketOwner` on the handler's read).
    pub const CATALOG_BUCKET_OWNER: &str = "LMI_CATALOG_BUCKET_OWNER";
    /// Bedrock model id for query embeddings (only set when the spec names one).
    pub const EMBEDDING_MODEL_ID: &str = "LMI_EMBEDDING_MODEL_ID";
    /// Length of the catalog's (and the queries') vectors.
    pub const EMBEDDING_DIMENSIONS: &str = "LMI_EMBEDDING_DIMENSIONS";
    /// Largest `topK` a query may ask for.
    pub const MAX_TOP_K: &str = "LMI_MAX_TOP_K";
    /// `true` for the int8 scan with exact re-scoring, `false` for float32.
    pub const INT8: &str = "LMI_INT8";
}

/// Tag on the function naming the S3 code source `$LATEST` was last loaded from and the code
/// hash Lambda computed for it: `<source id>:<CodeSha256>`.
pub const CODE_TAG: &str = "lmi.dev/code";

/// Tag on a function a grant no longer admits: its published versions are scaled to zero
/// execution environments (the value is the refusal's reason). While it is there, the next
/// admitted pass reactivates the serving version before anything else, then removes it.
pub const SUSPENDED_TAG: &str = "lmi.dev/suspended";

/// Scaling that deactivates a version without deleting it. AWS, "Scaling Lambda Managed
/// Instances": "Set both minimum and maximum to 0 to deactivate a function without deleting
/// it"; "A deactivated function does not automatically scale back up with traffic."
pub const DEACTIVATED: ScalingConfig = ScalingConfig {
    min: Some(0),
    max: Some(0),
};

/// Lambda's default minimum of execution environments for a version (the same AWS page: three,
/// for Availability Zone resiliency).
pub const DEFAULT_MIN_EXECUTION_ENVIRONMENTS: i32 = 3;

/// The scaling that reactivates a suspended version: the spec's, and where the spec leaves the
/// minimum to Lambda, Lambda's default (never above the spec's maximum), since a deactivated
/// version only comes back with explicit non-zero values.
pub fn reactivation(spec: &ScalingConfig) -> ScalingConfig {
    ScalingConfig {
        min: Some(spec.min.unwrap_or_else(|| {
            spec.max.map_or(DEFAULT_MIN_EXECUTION_ENVIRONMENTS, |max| {
                max.min(DEFAULT_MIN_EXECUTION_ENVIRONMENTS)
            })
        })),
        max: spec.max,
    }
}

/// Marker that carries the config hash in a published version's description.
const HASH_MARKER: &str = "lmi-operator config ";
/// Hex digits of a config hash.
const HASH_LEN: usize = 16;
/// Longest description Lambda accepts.
const MAX_DESCRIPTION: usize = 256;

/// Where the code comes from, as far as planning needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesiredCode {
    /// The handler bundled with the operator: its hash is known before any call.
    Bundled {
        /// Base64 SHA-256 of the zip, as Lambda reports `CodeSha256`.
        sha256: String,
    },
    /// An S3 object: its hash is known once Lambda has loaded it (recorded in [`CODE_TAG`]).
    S3 {
        /// Stable id of bucket, key and object version.
        source_id: String,
    },
}

/// The environment the handler gets: the user's variables and the operator's `LMI_*` ones.
pub fn environment(
    spec: &SimilarityFunctionSpec,
    account: Option<&str>,
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = spec
        .environment
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    vars.insert(env::CATALOG_URI.into(), spec.catalog.uri.clone());
    // The catalog's bucket must belong to the named account, else the function's own.
    if let Some(owner) = spec.catalog.bucket_owner.as_deref().or(account) {
        vars.insert(env::CATALOG_BUCKET_OWNER.into(), owner.to_owned());
    }
    vars.insert(
        env::EMBEDDING_DIMENSIONS.into(),
        spec.catalog.dimensions.to_string(),
    );
    if let Some(embedding) = &spec.embedding {
        vars.insert(env::EMBEDDING_MODEL_ID.into(), embedding.model_id.clone());
    }
    vars.insert(env::MAX_TOP_K.into(), spec.search.max_top_k.to_string());
    vars.insert(
        env::INT8.into(),
        (spec.search.precision == Precision::Int8).to_string(),
    );
    vars
}

/// The largest event a synchronous invocation delivers (Lambda's 6 MB payload limit, as the
/// handler counts it). The runtime client holds each in-flight event whole, so a burst of
/// maximum-size requests holds up to this much per invocation slot.
pub const MAX_EVENT_BYTES: u64 = 6 * 1024 * 1024;

/// Lambda's default invocations per execution environment for Rust: 8 per vCPU (the field's
/// documentation in the CRD).
const DEFAULT_CONCURRENCY_PER_VCPU: u64 = 8;

/// The warning for a function whose invocation slots, each holding a maximum-size event, could
/// take more than a quarter of an execution environment's memory (the rest is the catalog, the
/// scan and the runtime): a burst of large (or hostile) requests could then run it out of
/// memory and fail every in-flight invocation. `None` when the headroom is ample.
pub fn request_memory_warning(spec: &SimilarityFunctionSpec) -> Option<String> {
    let memory = u64::try_from(spec.memory_mib).ok()? * 1024 * 1024;
    let per_vcpu = u64::try_from(spec.memory_gi_b_per_v_cpu).ok()?.max(1) * 1024 * 1024 * 1024;
    let (slots, given) = match spec.max_concurrency_per_environment {
        Some(n) => (u64::try_from(n).ok()?, true),
        None => (
            (memory / per_vcpu).max(1) * DEFAULT_CONCURRENCY_PER_VCPU,
            false,
        ),
    };
    let worst = slots * MAX_EVENT_BYTES;
    if worst * 4 <= memory {
        return None;
    }
    let mib = |b: u64| b / (1024 * 1024);
    Some(format!(
        "{slots} invocation slots{} × 6 MiB (the largest event Lambda delivers) = {} MiB of \
         in-flight requests, more than a quarter of memoryMiB {}: a burst of maximum-size \
         requests could run an execution environment out of memory beside the catalog; lower \
         maxConcurrencyPerEnvironment or raise memoryMiB",
        if given {
            " (maxConcurrencyPerEnvironment)"
        } else {
            " (Lambda's default, 8 per vCPU)"
        },
        mib(worst),
        spec.memory_mib
    ))
}

/// The account in an ARN (`arn:partition:service:region:ACCOUNT:...`), when it is one.
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
}

/// The configuration `$LATEST` should have.
pub fn config(spec: &SimilarityFunctionSpec, admitted: &Admitted) -> FunctionConfig {
    FunctionConfig {
        runtime: Some(RUNTIME.into()),
        handler: Some(HANDLER.into()),
        architecture: Some(admitted.architecture.as_aws_str().into()),
        memory_mib: Some(spec.memory_mib),
        timeout_seconds: Some(spec.timeout_seconds),
        role_arn: spec.role_arn.clone(),
        description: spec.description.clone().filter(|d| !d.is_empty()),
        environment: environment(spec, account_of(&admitted.provider_arn)),
        capacity_provider_arn: Some(admitted.provider_arn.clone()),
        max_concurrency: spec.max_concurrency_per_environment,
        memory_gib_per_vcpu: Some(f64::from(spec.memory_gi_b_per_v_cpu)),
    }
}

/// The tags the function must carry: the user's and the operator's ownership tags.
pub fn tags(
    spec: &SimilarityFunctionSpec,
    ownership: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.extend(ownership.clone());
    tags
}

/// The scaling a version serving the spec holds: the spec's, with Lambda's documented default
/// minimum (3, never above the spec's maximum) where the spec leaves it out — so a bound removed
/// from the spec returns AWS to its default instead of staying as it was. A maximum the spec
/// leaves out is put as absent, which AWS reads as its own default.
pub fn scaling(spec: &SimilarityFunctionSpec) -> ScalingConfig {
    reactivation(&ScalingConfig {
        min: spec.scaling.min_execution_environments,
        max: spec.scaling.max_execution_environments,
    })
}

/// Stable id of an S3 code source (bucket, key and object version).
pub fn s3_source_id(s3: &S3Object) -> String {
    let mut canonical = String::new();
    field(&mut canonical, "bucket", &s3.bucket);
    field(&mut canonical, "key", &s3.key);
    field(
        &mut canonical,
        "version",
        s3.object_version.as_deref().unwrap_or(""),
    );
    short_hash(&canonical)
}

/// The value of [`CODE_TAG`].
pub fn code_tag(source_id: &str, code_sha256: &str) -> String {
    format!("{source_id}:{code_sha256}")
}

/// The code hash recorded for `source_id` in the function's [`CODE_TAG`], if the tag names
/// that source.
pub fn recorded_sha<'a>(tag: Option<&'a String>, source_id: &str) -> Option<&'a str> {
    let (source, sha) = tag?.split_once(':')?;
    (source == source_id && !sha.is_empty()).then_some(sha)
}

/// Base64 SHA-256 of a deployment package, as Lambda reports `CodeSha256`.
pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

/// The hash of everything that goes into a published version: code hash, runtime, handler,
/// architecture, memory, timeout, role, environment and capacity provider settings. The
/// description is left out: the operator writes its own into each version. Unset optional
/// settings hash as unset, so a change between "Lambda's default" and an explicit value counts.
pub fn config_hash(config: &FunctionConfig, code_sha256: &str) -> String {
    let mut c = String::new();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_default();
    field(&mut c, "code", code_sha256);
    field(&mut c, "runtime", &opt(&config.runtime));
    field(&mut c, "handler", &opt(&config.handler));
    field(&mut c, "architecture", &opt(&config.architecture));
    field(&mut c, "memory", &num(config.memory_mib));
    field(&mut c, "timeout", &num(config.timeout_seconds));
    field(&mut c, "role", &config.role_arn);
    for (name, value) in &config.environment {
        field(&mut c, "env", name);
        field(&mut c, "value", value);
    }
    field(&mut c, "provider", &opt(&config.capacity_provider_arn));
    field(&mut c, "concurrency", &num(config.max_concurrency));
    field(
        &mut c,
        "memoryPerVCpu",
        &config
            .memory_gib_per_vcpu
            .map(|r| format!("{r:.3}"))
            .unwrap_or_default(),
    );
    short_hash(&c)
}

/// The description of a version published for `hash`: the user's description (shortened when
/// needed) followed by the hash marker.
pub fn version_description(user: Option<&str>, hash: &str) -> String {
    let marker = format!("{HASH_MARKER}{hash}");
    match user.filter(|d| !d.is_empty()) {
        None => marker,
        Some(d) => {
            let room = MAX_DESCRIPTION - marker.len() - 3;
            let cut: String = d.chars().take(room).collect();
            format!("{cut} ({marker})")
        }
    }
}

/// The config hash recorded in a version's description, if any.
pub fn hash_in_description(description: &str) -> Option<&str> {
    let start = description.find(HASH_MARKER)? + HASH_MARKER.len();
    let hash = description.get(start..start + HASH_LEN)?;
    hash.chars().all(|c| c.is_ascii_hexdigit()).then_some(hash)
}

/// Appends one length-prefixed field: unambiguous whatever the values contain.
fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(&format!("{name}:{}:{value};", value.len()));
}

fn short_hash(canonical: &str) -> String {
    Sha256::digest(canonical.as_bytes())
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::capacity_provider::Architecture;
    use crate::api::similarity_function::{EmbeddingSpec, EnvVar};

    pub(crate) fn spec() -> SimilarityFunctionSpec {
        serde_json::from_value(serde_json::json!({
            "capacityProviderRef": {"name": "graviton"},
            "roleArn": "arn:aws:iam::123456789012:role/fn",
            "catalog": {"uri": "s3://catalogs/products.parquet", "dimensions": 1024},
            "tags": {"team": "search"},
        }))
        .expect("spec")
    }

    pub(crate) fn admitted() -> Admitted {
        Admitted {
            provider: "graviton".into(),
            provider_arn: "arn:aws:lambda:us-east-1:123456789012:capacity-provider:g".into(),
            architecture: Architecture::Arm64,
            region: None,
            grant: "search".into(),
        }
    }

    #[test]
    fn environment_carries_exactly_the_handler_settings_and_the_users_variables() {
        let mut s = spec();
        s.environment = vec![EnvVar {
            name: "RUST_LOG".into(),
            value: "debug".into(),
        }];
        s.search.precision = Precision::Int8;
        let vars = environment(&s, Some("123456789012"));
        assert_eq!(
            vars,
            BTreeMap::from([
                ("LMI_CATALOG_BUCKET_OWNER".into(), "123456789012".into()),
                (
                    "LMI_CATALOG_URI".into(),
                    "s3://catalogs/products.parquet".into()
                ),
                ("LMI_EMBEDDING_DIMENSIONS".into(), "1024".into()),
                ("LMI_INT8".into(), "true".into()),
                ("LMI_MAX_TOP_K".into(), "100".into()),
                ("RUST_LOG".into(), "debug".into()),
            ])
        );
        s.embedding = Some(EmbeddingSpec {
            model_id: "amazon.nova-2-multimodal-embeddings-v1:0".into(),
            dimensions: 1024,
        });
        s.search.precision = Precision::Float32;
        let vars = environment(&s, None);
        assert_eq!(
            vars["LMI_EMBEDDING_MODEL_ID"],
            "amazon.nova-2-multimodal-embeddings-v1:0"
        );
        assert_eq!(vars["LMI_INT8"], "false");
    }

    #[test]
    fn large_request_bursts_that_could_exhaust_memory_are_warned_about() {
        let mut s = spec();
        // 4096 MiB, 2 GiB per vCPU: 2 vCPUs, Lambda's 16 slots, 96 MiB: ample.
        s.memory_mib = 4096;
        s.memory_gi_b_per_v_cpu = 2;
        assert_eq!(request_memory_warning(&s), None);
        // 200 slots × 6 MiB = 1200 MiB > 1024 MiB (a quarter of 4096).
        s.max_concurrency_per_environment = Some(200);
        let w = request_memory_warning(&s).expect("warned");
        assert!(
            w.contains("200 invocation slots (maxConcurrencyPerEnvironment)")
                && w.contains("1200 MiB")
                && w.contains("memoryMiB 4096"),
            "{w}"
        );
        // The same slots with more memory: ample again.
        s.memory_mib = 8192;
        assert_eq!(request_memory_warning(&s), None);
        // Lambda's default of 8 per vCPU on many small vCPUs... still ample: 16 vCPUs at 2 GiB.
        s.max_concurrency_per_environment = None;
        s.memory_mib = 32768;
        assert_eq!(request_memory_warning(&s), None);
        // 1600 slots on 32 GiB: 9600 MiB > 8192 MiB.
        s.max_concurrency_per_environment = Some(1600);
        assert!(request_memory_warning(&s).is_some());
    }

    #[test]
    fn the_catalog_bucket_must_belong_to_the_functions_account_unless_the_spec_names_one() {
        let c = config(&spec(), &admitted());
        assert_eq!(c.environment["LMI_CATALOG_BUCKET_OWNER"], "123456789012");
        let mut s = spec();
        s.catalog.bucket_owner = Some("210987654321".into());
        let c = config(&s, &admitted());
        assert_eq!(c.environment["LMI_CATALOG_BUCKET_OWNER"], "210987654321");
        assert_eq!(
            account_of("arn:aws:lambda:us-east-1:123456789012:function:f"),
            Some("123456789012")
        );
        assert_eq!(account_of("arn:aws:s3:::bucket"), None);
        assert_eq!(account_of("not an arn"), None);
    }

    #[test]
    fn config_follows_the_spec_and_the_providers_architecture() {
        let c = config(&spec(), &admitted());
        assert_eq!(c.runtime.as_deref(), Some("provided.al2023"));
        assert_eq!(c.handler.as_deref(), Some("bootstrap"));
        assert_eq!(c.architecture.as_deref(), Some("arm64"));
        assert_eq!(c.memory_mib, Some(4096));
        assert_eq!(c.timeout_seconds, Some(30));
        assert_eq!(c.memory_gib_per_vcpu, Some(2.0));
        assert_eq!(c.max_concurrency, None);
        assert_eq!(
            c.capacity_provider_arn.as_deref(),
            Some("arn:aws:lambda:us-east-1:123456789012:capacity-provider:g")
        );
    }

    #[test]
    fn config_hash_is_stable_and_changes_with_what_goes_into_a_version() {
        let c = config(&spec(), &admitted());
        let h = config_hash(&c, "sha-a");
        assert_eq!(h.len(), 16);
        assert_eq!(h, config_hash(&c.clone(), "sha-a"));
        assert_ne!(h, config_hash(&c, "sha-b"));
        let mut more_memory = c.clone();
        more_memory.memory_mib = Some(8192);
        assert_ne!(h, config_hash(&more_memory, "sha-a"));
        let mut env = c.clone();
        env.environment.insert("X".into(), "1".into());
        assert_ne!(h, config_hash(&env, "sha-a"));
        let mut concurrency = c.clone();
        concurrency.max_concurrency = Some(8);
        assert_ne!(h, config_hash(&concurrency, "sha-a"));
        // The description is not part of a version's identity.
        let mut described = c;
        described.description = Some("products".into());
        assert_eq!(h, config_hash(&described, "sha-a"));
    }

    #[test]
    fn config_hash_cannot_be_confused_by_values_that_look_like_separators() {
        let mut a = config(&spec(), &admitted());
        let mut b = a.clone();
        a.environment = BTreeMap::from([("A".into(), "1;env:1:B".into())]);
        b.environment = BTreeMap::from([("A".into(), "1".into()), ("B".into(), String::new())]);
        assert_ne!(config_hash(&a, "s"), config_hash(&b, "s"));
    }

    #[test]
    fn version_descriptions_carry_the_hash_and_fit_lambdas_limit() {
        let d = version_description(None, "0123456789abcdef");
        assert_eq!(hash_in_description(&d), Some("0123456789abcdef"));
        let long = "é".repeat(300);
        let d = version_description(Some(&long), "0123456789abcdef");
        assert!(d.chars().count() <= 256, "{}", d.chars().count());
        assert!(d.starts_with("éé"));
        assert_eq!(hash_in_description(&d), Some("0123456789abcdef"));
        assert_eq!(hash_in_description("a version published by hand"), None);
        assert_eq!(hash_in_description("lmi-operator config xyz"), None);
    }

    #[test]
    fn the_code_tag_names_its_source() {
        let s3 = S3Object {
            bucket: "code".into(),
            key: "bootstrap.zip".into(),
            object_version: Some("v1".into()),
        };
        let id = s3_source_id(&s3);
        let other = s3_source_id(&S3Object {
            object_version: Some("v2".into()),
            ..s3.clone()
        });
        assert_ne!(id, other);
        let tag = code_tag(&id, "abc+/=");
        assert_eq!(recorded_sha(Some(&tag), &id), Some("abc+/="));
        assert_eq!(recorded_sha(Some(&tag), &other), None);
        assert_eq!(recorded_sha(None, &id), None);
    }

    #[test]
    fn code_sha256_is_base64_of_the_digest_as_lambda_reports_it() {
        // sha256("") = e3b0c442…; Lambda reports it base64-encoded.
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn reactivation_keeps_the_spec_and_fills_in_lambdas_default_minimum() {
        let spec = |min, max| ScalingConfig { min, max };
        assert_eq!(
            reactivation(&spec(Some(1), Some(4))),
            spec(Some(1), Some(4))
        );
        assert_eq!(reactivation(&spec(None, None)), spec(Some(3), None));
        assert_eq!(reactivation(&spec(None, Some(2))), spec(Some(2), Some(2)));
        assert_eq!(reactivation(&spec(None, Some(0))), spec(Some(0), Some(0)));
    }

    #[test]
    fn tags_add_ownership_to_the_users_tags() {
        let ownership = BTreeMap::from([("lmi.dev/uid".to_owned(), "u".to_owned())]);
        let t = tags(&spec(), &ownership);
        assert_eq!(t["team"], "search");
        assert_eq!(t["lmi.dev/uid"], "u");
    }
}
