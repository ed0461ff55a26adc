//! Loading the catalog at init, from S3 or a local path, with its dimension checked against
//! `LMI_EMBEDDING_DIMENSIONS`.
//!
//! An S3 object is streamed straight into one buffer of exactly its size (no second copy: the
//! SDK's `collect()` would gather chunks and then copy them), and the Parquet loader reads that
//! buffer in place. Peak memory is the object plus the catalog matrix; the object is freed once
//! the matrix is built.

use std::time::Instant;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use bytes::Bytes;
use lmi_similarity::{Catalog, LoadError, LoadOptions, Storage};

use crate::config::{CatalogUri, Config};

/// Why the catalog could not be loaded; each variant is an init error type.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The object or file does not exist.
    #[error("catalog {uri} not found: {detail}")]
    NotFound {
        /// The catalog URI.
        uri: String,
        /// What the store said.
        detail: String,
    },
    /// The function may not read it.
    #[error("catalog {uri}: access denied (the function's role needs s3:GetObject): {detail}")]
    AccessDenied {
        /// The catalog URI.
        uri: String,
        /// What the store said.
        detail: String,
    },
    /// The object is archived (S3 Glacier Flexible Retrieval or Deep Archive) and not restored.
    #[error(
        "catalog {uri} is archived and cannot be read until it is restored: copy it to the \
         STANDARD storage class or restore it (s3:RestoreObject): {detail}"
    )]
    Archived {
        /// The catalog URI.
        uri: String,
        /// What the store said.
        detail: String,
    },
    /// The download failed.
    #[error("download catalog {uri}: {detail}")]
    Download {
        /// The catalog URI.
        uri: String,
        /// What failed.
        detail: String,
    },
    /// The catalog's embeddings do not have the configured dimension.
    #[error(
        "catalog {uri} has embeddings of dimension {found} (row {row}), but \
         LMI_EMBEDDING_DIMENSIONS is {expected}: the catalog and the query embeddings must match"
    )]
    Dimension {
        /// The catalog URI.
        uri: String,
        /// The configured dimension.
        expected: usize,
        /// The catalog's.
        found: usize,
        /// The first row that differs (file order).
        row: usize,
    },
    /// The loading task panicked (a bug).
    #[error("load catalog {uri}: {detail}")]
    Crashed {
        /// The catalog URI.
        uri: String,
        /// The task's failure.
        detail: String,
    },
    /// The file is not a usable catalog.
    #[error("catalog {uri} is invalid: {source}")]
    Invalid {
        /// The catalog URI.
        uri: String,
        /// The loader's error.
        source: LoadError,
    },
}

impl CatalogError {
    /// The init error type reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "CatalogNotFound",
            Self::AccessDenied { .. } => "CatalogAccessDenied",
            Self::Archived { .. } => "CatalogArchived",
            Self::Download { .. } => "CatalogDownloadFailed",
            Self::Dimension { .. } => "CatalogDimensionMismatch",
            Self::Invalid { .. } => "CatalogInvalid",
            Self::Crashed { .. } => "CatalogLoadFailed",
        }
    }
}

/// How long each step took, for the init log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadTimings {
    /// Download (S3) in milliseconds; 0 for a local file.
    pub download_ms: f64,
    /// Parsing and building the matrix, in milliseconds.
    pub build_ms: f64,
    /// Bytes read.
    pub bytes: u64,
}

/// Loads the configured catalog.
pub async fn load(
    config: &Config,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<(Catalog, LoadTimings), CatalogError> {
    let uri = config.catalog.to_string();
    let options = LoadOptions {
        dimension: Some(config.dimensions),
        storage: if config.int8 {
            Storage::Int8
        } else {
            Storage::F32
        },
        ..LoadOptions::default()
    };
    let mut timings = LoadTimings::default();
    let started = Instant::now();
    let result = match &config.catalog {
        CatalogUri::Local(path) => {
            timings.bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let path = path.clone();
            blocking(move || Catalog::from_parquet_path(path, &options), &uri).await?
        }
        CatalogUri::S3 { bucket, key } => {
            let Some(s3) = s3 else {
                return Err(CatalogError::Download {
                    uri,
                    detail: "no S3 client".into(),
                });
            };
            let owner = config.catalog_bucket_owner.as_deref();
            let bytes = download(s3, bucket, key, owner, &uri).await?;
            timings.bytes = bytes.len() as u64;
            timings.download_ms = ms(started);
            blocking(move || Catalog::from_parquet_bytes(bytes, &options), &uri).await?
        }
    };
    timings.build_ms = ms(started) - timings.download_ms;
    let catalog = result.map_err(|e| classify(e, &uri, config.dimensions))?;
    Ok((catalog, timings))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

async fn blocking(
    f: impl FnOnce() -> Result<Catalog, LoadError> + Send + 'static,
    uri: &str,
) -> Result<Result<Catalog, LoadError>, CatalogError> {
    // The load is CPU-bound for seconds: keep it off the async workers.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CatalogError::Crashed {
            uri: uri.to_owned(),
            detail: e.to_string(),
        })
}

fn classify(e: LoadError, uri: &str, expected: usize) -> CatalogError {
    match e {
        LoadError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            CatalogError::NotFound {
                uri: uri.to_owned(),
                detail: source.to_string(),
            }
        }
        LoadError::Open { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            CatalogError::AccessDenied {
                uri: uri.to_owned(),
                detail: source.to_string(),
            }
        }
        LoadError::Dimension { row, found, .. } => CatalogError::Dimension {
            uri: uri.to_owned(),
            expected,
            found,
            row,
        },
        source => CatalogError::Invalid {
            uri: uri.to_owned(),
            source,
        },
    }
}

async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    expected_owner: Option<&str>,
    uri: &str,
) -> Result<Bytes, CatalogError> {
    let failed = |detail: String| CatalogError::Download {
        uri: uri.to_owned(),
        detail,
    };
    let output = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_expected_bucket_owner(expected_owner.map(str::to_owned))
        .send()
        .await
        .map_err(|e| get_error(e, uri))?;
    let expected = output
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut buffer: Vec<u8> = Vec::new();
    buffer
        .try_reserve_exact(expected)
        .map_err(|_| failed(format!("cannot allocate {expected} bytes for the object")))?;
    let mut body = output.body;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| failed(format!("read the object body: {e}")))?
    {
        buffer.extend_from_slice(&chunk);
    }
    if expected != 0 && buffer.len() != expected {
        return Err(failed(format!(
            "the object body has {} bytes, Content-Length said {expected}",
            buffer.len()
        )));
    }
    Ok(Bytes::from(buffer))
}

fn get_error<R: std::fmt::Debug>(e: SdkError<GetObjectError, R>, uri: &str) -> CatalogError {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let uri = uri.to_owned();
    match e {
        SdkError::ServiceError(ctx) => {
            let err = ctx.into_err();
            let detail = format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            );
            match (&err, err.code()) {
                (GetObjectError::NoSuchKey(_), _) | (_, Some("NoSuchBucket" | "NotFound")) => {
                    CatalogError::NotFound { uri, detail }
                }
                (_, Some("AccessDenied" | "Forbidden")) => {
                    CatalogError::AccessDenied { uri, detail }
                }
                (GetObjectError::InvalidObjectState(_), _) => {
                    CatalogError::Archived { uri, detail }
                }
                _ => CatalogError::Download { uri, detail },
            }
        }
        other => CatalogError::Download {
            uri,
            detail: other.to_string(),
        },
    }
}
