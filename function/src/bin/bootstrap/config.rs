//! The handler's configuration: environment variables the operator sets, read and checked once
//! at init. Every problem is reported together, each naming its variable, so one failed init
//! says everything that is wrong.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Embedding dimensions Amazon Nova Multimodal Embeddings can produce (`embeddingDimension`).
pub const NOVA_DIMENSIONS: [usize; 4] = [256, 384, 1024, 3072];
/// Largest `LMI_MAX_TOP_K` accepted.
pub const TOP_K_CEILING: usize = 1000;
const DEFAULT_MAX_TOP_K: usize = 100;
const DEFAULT_BEDROCK_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_BEDROCK_MAX_ATTEMPTS: u32 = 4;
const DEFAULT_METRICS_NAMESPACE: &str = "LmiSimilarity";
/// Large events read and parsed at once by default (`LMI_LARGE_EVENT_SLOTS`, see
/// [`crate::runtime`]). Each costs about twice its size while it is parsed (the event and, for an
/// escaped string, its unescaped copy; parsing one takes milliseconds).
const DEFAULT_LARGE_EVENT_SLOTS: usize = 1;

/// Where the catalog lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogUri {
    /// `s3://bucket/key`.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// A path in the execution environment (`file:///…` or a plain path).
    Local(PathBuf),
}

impl fmt::Display for CatalogUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Self::Local(path) => write!(f, "{}", path.display()),
        }
    }
}

impl CatalogUri {
    fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || key.is_empty() {
                return Err(format!(
                    "'{raw}' is not an S3 object URI: expected s3://bucket/key"
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(path) = raw.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!("'{raw}' names no file"));
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "'{raw}' has unsupported scheme '{scheme}': use s3://bucket/key or a local path"
            ));
        }
        Ok(Self::Local(PathBuf::from(raw)))
    }
}

/// What the Lambda service says about the function (set by Lambda in every environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub version: String,
}

/// Bedrock client settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BedrockSettings {
    /// Per-attempt timeout of an InvokeModel call (`LMI_BEDROCK_TIMEOUT_MS`).
    pub attempt_timeout: Duration,
    /// Attempts per call, the first included; throttling and 5xx are retried
    /// (`LMI_BEDROCK_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Embedding calls that may wait on Bedrock at once in this execution environment
    /// (`LMI_EMBEDDING_CONCURRENCY`). By default a quarter of the invocation slots
    /// (`AWS_LAMBDA_MAX_CONCURRENCY`, at least one) is kept from Bedrock, so a Bedrock that
    /// stops answering can never hold every slot: vector and productId queries keep being served.
    pub concurrency: usize,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `LMI_CATALOG_URI`.
    pub catalog: CatalogUri,
    /// `LMI_EMBEDDING_MODEL_ID`: a Bedrock model id, inference profile id or ARN of Amazon Nova
    /// Multimodal Embeddings. Unset when the function has no embedding model: it then answers
    /// queries by `vector` and `productId` only.
    pub model_id: Option<String>,
    /// `LMI_CATALOG_BUCKET_OWNER`: the account that must own the catalog's bucket, sent as
    /// `ExpectedBucketOwner` on every catalog read (S3 refuses the read with 403 when another
    /// account owns the bucket, e.g. after the bucket name was deleted and taken by someone
    /// else). The operator sets it; unset, reads do not check the owner.
    pub catalog_bucket_owner: Option<String>,
    /// `LMI_EMBEDDING_DIMENSIONS`: the catalog's and the query embeddings' dimension.
    pub dimensions: usize,
    /// `LMI_MAX_TOP_K`: the largest `topK` a request may ask for.
    pub max_top_k: usize,
    /// `LMI_INT8`: scan an int8 copy of the catalog and re-score candidates exactly.
    pub int8: bool,
    /// `LMI_SCAN_THREADS`: scan threads, 0 for one per core.
    pub scan_threads: usize,
    /// `LMI_METRICS_NAMESPACE`: the CloudWatch namespace of the EMF metrics.
    pub metrics_namespace: String,
    /// Bedrock client settings.
    pub bedrock: BedrockSettings,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`: invocations this execution environment runs at once (at
    /// least one).
    pub invocation_slots: usize,
    /// `LMI_LARGE_EVENT_SLOTS`: events over [`crate::runtime::LARGE_EVENT_BYTES`] read and parsed
    /// at once.
    pub large_event_slots: usize,
    /// The function, as Lambda describes it.
    pub function: FunctionInfo,
}

/// Everything wrong with the environment, one line per variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    /// One message per problem, each naming its variable.
    pub problems: Vec<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str| match get(name).map(|v| v.trim().to_owned()) {
            Some(v) if !v.is_empty() => Some(v),
            Some(_) => {
                problems.push(format!("{name} is empty"));
                None
            }
            None => {
                problems.push(format!("{name} is not set"));
                None
            }
        };
        let catalog = required("LMI_CATALOG_URI");
        let dimensions = required("LMI_EMBEDDING_DIMENSIONS");
        let function_name = required("AWS_LAMBDA_FUNCTION_NAME");
        let function_version = required("AWS_LAMBDA_FUNCTION_VERSION");
        let model_id = match get("LMI_EMBEDDING_MODEL_ID").map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v.is_empty() => {
                problems.push(
                    "LMI_EMBEDDING_MODEL_ID is empty (leave it unset for a function without \
                     an embedding model)"
                        .to_owned(),
                );
                None
            }
            Some(v) => Some(v),
        };

        let catalog_bucket_owner =
            match get("LMI_CATALOG_BUCKET_OWNER").map(|v| v.trim().to_owned()) {
                None => None,
                Some(v) if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) => Some(v),
                Some(v) => {
                    problems.push(format!(
                        "LMI_CATALOG_BUCKET_OWNER '{v}' is not a 12-digit AWS account id"
                    ));
                    None
                }
            };
        let catalog = catalog.and_then(|raw| {
            CatalogUri::parse(&raw)
                .map_err(|e| problems.push(format!("LMI_CATALOG_URI {e}")))
                .ok()
        });
        if let Some(id) = &model_id
            && id.chars().any(char::is_whitespace)
        {
            problems.push(format!("LMI_EMBEDDING_MODEL_ID '{id}' contains whitespace"));
        }
        let dimensions = dimensions.and_then(|raw| match raw.parse::<usize>() {
            Ok(d) if NOVA_DIMENSIONS.contains(&d) => Some(d),
            _ => {
                problems.push(format!(
                    "LMI_EMBEDDING_DIMENSIONS '{raw}' is not one of the dimensions Nova \
                     Multimodal Embeddings produces (256, 384, 1024, 3072)"
                ));
                None
            }
        });
        let max_top_k = optional_number(
            &get,
            &mut problems,
            "LMI_MAX_TOP_K",
            DEFAULT_MAX_TOP_K,
            1,
            TOP_K_CEILING,
        );
        let scan_threads = optional_number(&get, &mut problems, "LMI_SCAN_THREADS", 0, 0, 1024);
        let timeout_ms = optional_number(
            &get,
            &mut problems,
            "LMI_BEDROCK_TIMEOUT_MS",
            DEFAULT_BEDROCK_TIMEOUT_MS as usize,
            100,
            300_000,
        );
        let max_attempts = optional_number(
            &get,
            &mut problems,
            "LMI_BEDROCK_MAX_ATTEMPTS",
            DEFAULT_BEDROCK_MAX_ATTEMPTS as usize,
            1,
            10,
        );
        let slots = get("AWS_LAMBDA_MAX_CONCURRENCY")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let large_event_slots = optional_number(
            &get,
            &mut problems,
            "LMI_LARGE_EVENT_SLOTS",
            DEFAULT_LARGE_EVENT_SLOTS,
            1,
            1024,
        );
        let embedding_concurrency = optional_number(
            &get,
            &mut problems,
            "LMI_EMBEDDING_CONCURRENCY",
            default_embedding_concurrency(slots),
            1,
            10_000,
        );
        let int8 = match get("LMI_INT8").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) => match v.as_str() {
                "" | "0" | "false" | "no" | "off" => false,
                "1" | "true" | "yes" | "on" => true,
                _ => {
                    problems.push(format!("LMI_INT8 '{v}' is not a boolean (true or false)"));
                    false
                }
            },
        };
        let metrics_namespace = get("LMI_METRICS_NAMESPACE")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());

        match (
            catalog,
            model_id,
            dimensions,
            function_name,
            function_version,
        ) {
            (Some(catalog), model_id, Some(dimensions), Some(name), Some(version))
                if problems.is_empty() =>
            {
                Ok(Config {
                    catalog,
                    catalog_bucket_owner,
                    model_id,
                    dimensions,
                    max_top_k,
                    int8,
                    scan_threads,
                    metrics_namespace,
                    invocation_slots: slots,
                    large_event_slots,
                    bedrock: BedrockSettings {
                        attempt_timeout: Duration::from_millis(timeout_ms as u64),
                        max_attempts: u32::try_from(max_attempts).unwrap_or(1),
                        concurrency: embedding_concurrency,
                    },
                    function: FunctionInfo { name, version },
                })
            }
            _ => Err(ConfigError { problems }),
        }
    }
}

/// Embedding calls allowed at once for `slots` invocation slots: all but a quarter of them
/// (at least one kept free), and at least one.
pub fn default_embedding_concurrency(slots: usize) -> usize {
    slots.saturating_sub((slots / 4).max(1)).max(1)
}

fn optional_number(
    get: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
    name: &str,
    default: usize,
    min: usize,
    max: usize,
) -> usize {
    let Some(raw) = get(name).map(|v| v.trim().to_owned()) else {
        return default;
    };
    if raw.is_empty() {
        return default;
    }
    match raw.parse::<usize>() {
        Ok(v) if (min..=max).contains(&v) => v,
        _ => {
            problems.push(format!(
                "{name} '{raw}' is not a whole number in {min}..={max}"
            ));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut map: HashMap<String, String> = [
            ("LMI_CATALOG_URI", "s3://bucket/catalogs/products.parquet"),
            (
                "LMI_EMBEDDING_MODEL_ID",
                "amazon.nova-2-multimodal-embeddings-v1:0",
            ),
            ("LMI_EMBEDDING_DIMENSIONS", "1024"),
            ("AWS_LAMBDA_FUNCTION_NAME", "similar"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() && k.starts_with('!') {
                map.remove(&k[1..]);
            } else {
                map.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_complete_environment_gives_defaults_for_the_optional_settings() {
        let c = Config::from_lookup(env(&[])).expect("valid");
        assert_eq!(
            c.catalog,
            CatalogUri::S3 {
                bucket: "bucket".into(),
                key: "catalogs/products.parquet".into()
            }
        );
        assert_eq!(c.dimensions, 1024);
        assert_eq!(c.max_top_k, 100);
        assert!(!c.int8);
        assert_eq!(c.bedrock.max_attempts, 4);
        assert_eq!(c.bedrock.attempt_timeout, Duration::from_secs(10));
        assert_eq!(c.function.version, "7");
        assert_eq!(c.metrics_namespace, "LmiSimilarity");
        // No AWS_LAMBDA_MAX_CONCURRENCY: one slot, and it may embed.
        assert_eq!(c.bedrock.concurrency, 1);
    }

    #[test]
    fn a_quarter_of_the_invocation_slots_is_kept_from_bedrock() {
        let by_slots: Vec<usize> = [1, 2, 3, 4, 8, 16, 64]
            .into_iter()
            .map(default_embedding_concurrency)
            .collect();
        assert_eq!(by_slots, vec![1, 1, 2, 3, 6, 12, 48]);
        let c = Config::from_lookup(env(&[("AWS_LAMBDA_MAX_CONCURRENCY", "8")])).expect("valid");
        assert_eq!(c.bedrock.concurrency, 6);
        let c = Config::from_lookup(env(&[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
            ("LMI_EMBEDDING_CONCURRENCY", "8"),
        ]))
        .expect("valid");
        assert_eq!(c.bedrock.concurrency, 8);
        let e = Config::from_lookup(env(&[("LMI_EMBEDDING_CONCURRENCY", "0")]))
            .expect_err("zero embedding slots");
        assert!(e.to_string().contains("LMI_EMBEDDING_CONCURRENCY"), "{e}");
    }

    #[test]
    fn local_paths_and_file_uris_are_local_catalogs() {
        let c = Config::from_lookup(env(&[("LMI_CATALOG_URI", "file:///opt/c.parquet")]))
            .expect("valid");
        assert_eq!(c.catalog, CatalogUri::Local("/opt/c.parquet".into()));
        let c = Config::from_lookup(env(&[("LMI_CATALOG_URI", "/tmp/c.parquet")])).expect("valid");
        assert_eq!(c.catalog, CatalogUri::Local("/tmp/c.parquet".into()));
    }

    #[test]
    fn optional_settings_are_read_and_checked() {
        let c = Config::from_lookup(env(&[
            ("LMI_MAX_TOP_K", "250"),
            ("LMI_INT8", "TRUE"),
            ("LMI_BEDROCK_TIMEOUT_MS", "2500"),
            ("LMI_BEDROCK_MAX_ATTEMPTS", "2"),
        ]))
        .expect("valid");
        assert_eq!(c.max_top_k, 250);
        assert!(c.int8);
        assert_eq!(c.bedrock.attempt_timeout, Duration::from_millis(2500));
        assert_eq!(c.bedrock.max_attempts, 2);
        assert_eq!(c.catalog_bucket_owner, None);
        assert_eq!((c.invocation_slots, c.large_event_slots), (1, 1));
        let c = Config::from_lookup(env(&[
            ("AWS_LAMBDA_MAX_CONCURRENCY", "64"),
            ("LMI_LARGE_EVENT_SLOTS", "2"),
        ]))
        .expect("valid");
        assert_eq!((c.invocation_slots, c.large_event_slots), (64, 2));
        let err = Config::from_lookup(env(&[("LMI_LARGE_EVENT_SLOTS", "0")])).expect_err("zero");
        assert!(err.to_string().contains("LMI_LARGE_EVENT_SLOTS"), "{err}");
        let c = Config::from_lookup(env(&[("LMI_CATALOG_BUCKET_OWNER", " 123456789012 ")]))
            .expect("valid");
        assert_eq!(c.catalog_bucket_owner.as_deref(), Some("123456789012"));
        for bad in ["12345", "12345678901a", "arn:aws:iam::123456789012:root"] {
            let err =
                Config::from_lookup(env(&[("LMI_CATALOG_BUCKET_OWNER", bad)])).expect_err(bad);
            assert!(
                err.to_string().contains("LMI_CATALOG_BUCKET_OWNER"),
                "{err}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let err = Config::from_lookup(env(&[
            ("!LMI_CATALOG_URI", ""),
            ("LMI_EMBEDDING_DIMENSIONS", "1000"),
            ("LMI_MAX_TOP_K", "0"),
            ("LMI_INT8", "maybe"),
        ]))
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        assert!(text.contains("LMI_CATALOG_URI is not set"), "{text}");
        assert!(text.contains("LMI_EMBEDDING_DIMENSIONS '1000'"), "{text}");
        assert!(text.contains("LMI_MAX_TOP_K '0'"), "{text}");
        assert!(text.contains("LMI_INT8 'maybe'"), "{text}");
    }

    #[test]
    fn malformed_catalog_uris_are_refused() {
        for bad in [
            "s3://bucket",
            "s3:///key",
            "https://example.com/c.parquet",
            "file://",
        ] {
            let err = Config::from_lookup(env(&[("LMI_CATALOG_URI", bad)])).expect_err(bad);
            assert!(err.to_string().contains("LMI_CATALOG_URI"), "{err}");
        }
    }

    #[test]
    fn empty_required_variables_are_refused() {
        let err = Config::from_lookup(env(&[("LMI_EMBEDDING_MODEL_ID", "  ")])).expect_err("empty");
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.problems[0].starts_with("LMI_EMBEDDING_MODEL_ID is empty"),
            "{err}"
        );
        let err = Config::from_lookup(env(&[("LMI_CATALOG_URI", "")])).expect_err("empty");
        assert_eq!(err.problems, vec!["LMI_CATALOG_URI is empty".to_owned()]);
    }

    #[test]
    fn the_embedding_model_is_optional() {
        let c = Config::from_lookup(env(&[("!LMI_EMBEDDING_MODEL_ID", "")])).expect("valid");
        assert_eq!(c.model_id, None);
        let c = Config::from_lookup(env(&[])).expect("valid");
        assert_eq!(
            c.model_id.as_deref(),
            Some("amazon.nova-2-multimodal-embeddings-v1:0")
        );
    }
}
