//! `bootstrap`: the similarity handler as a Lambda function for `provided.al2023`, built for
//! Lambda Managed Instances (many invocations at once in one execution environment).
//!
//! Init (once per execution environment): JSON logs, configuration from the environment
//! ([`config`]), the catalog from S3 or a local path ([`source`]), the search engine, the
//! Bedrock client ([`embed`]). Any failure is reported to the Runtime API's `/init/error` with
//! a specific `errorType`, and the process exits.
//!
//! Then [`runtime`] polls for invocations with `AWS_LAMBDA_MAX_CONCURRENCY` workers sharing one
//! [`handler::App`] (large events are read a few at a time); each invocation is
//! answered by [`handler`] (request API in [`request`], HTTP events in [`http`], metrics in
//! [`metrics`]).

#![forbid(unsafe_code)]

mod config;
mod embed;
mod handler;
mod http;
mod metrics;
mod request;
mod runtime;
mod source;

use std::process::ExitCode;
use std::time::Instant;

use aws_config::BehaviorVersion;
use lambda_runtime::Diagnostic;
use lmi_similarity::{Engine, EngineOptions};
use tracing_subscriber::EnvFilter;

use crate::config::{CatalogUri, Config, ConfigError};
use crate::handler::App;
use crate::source::CatalogError;

/// Why init failed; the variant decides the `errorType` Lambda records.
#[derive(Debug, thiserror::Error)]
enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("start the search engine: {0}")]
    Engine(#[from] lmi_similarity::EngineError),
}

impl InitError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Config(_) => "InvalidConfiguration",
            Self::Catalog(e) => e.error_type(),
            Self::Engine(_) => "EngineStartFailed",
        }
    }
}

/// How long a failed execution environment keeps running after its engine fails, for the
/// runtime client to post the answers already made.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    // Without the Runtime API there is nobody to report to (and lambda_runtime would panic).
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        tracing::error!(
            "AWS_LAMBDA_RUNTIME_API is not set: bootstrap runs inside AWS Lambda or a Runtime API emulator"
        );
        return ExitCode::FAILURE;
    }
    let app = match init().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(errorType = e.error_type(), error = %e, "init failed");
            report_init_error(e.error_type(), &e.to_string()).await;
            return ExitCode::FAILURE;
        }
    };
    let failed = app.clone();
    let run = runtime::run(app);
    tokio::pin!(run);
    tokio::select! {
        stopped = &mut run => match stopped {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "runtime stopped");
                ExitCode::FAILURE
            }
        },
        () = failed.failed() => {
            // The failing invocations have their answers; give the runtime client a moment to
            // post them, then exit: Lambda starts a new execution environment (a worker that
            // merely stops answering would not be replaced).
            tracing::error!(
                "the search engine failed: exiting so that Lambda replaces this execution \
                 environment"
            );
            // The workers keep running meanwhile (dropping `run` would abort them mid-post).
            let _ = tokio::time::timeout(EXIT_GRACE, &mut run).await;
            ExitCode::FAILURE
        }
    }
}

async fn init() -> Result<App, InitError> {
    let started = Instant::now();
    let config = Config::from_env()?;
    lambda_memory_size()?;
    tracing::info!(
        catalog = %config.catalog,
        model = config.model_id.as_deref().unwrap_or("none"),
        dimensions = config.dimensions,
        maxTopK = config.max_top_k,
        int8 = config.int8,
        functionVersion = %config.function.version,
        "init"
    );
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = matches!(config.catalog, CatalogUri::S3 { .. }).then(|| s3_client(&sdk));
    let (catalog, timings) = source::load(&config, s3.as_ref()).await?;
    let memory = catalog.memory();
    tracing::info!(
        rows = catalog.len(),
        dimensions = catalog.dim(),
        categories = catalog.categories().len(),
        bytes = timings.bytes,
        downloadMs = timings.download_ms,
        buildMs = timings.build_ms,
        memoryBytes = memory.total(),
        "catalog loaded"
    );
    let engine = Engine::new(
        catalog,
        EngineOptions {
            threads: config.scan_threads,
            max_top_k: config.max_top_k,
            ..EngineOptions::default()
        },
    )?;
    // Fault injection for the handler's own tests (tests/handler/hostile.rs): a panic in the
    // first search pass. Not for production; logged loudly when set.
    if std::env::var("LMI_TEST_FAULT").as_deref() == Ok("panic-in-first-search") {
        tracing::warn!("LMI_TEST_FAULT=panic-in-first-search: the first search pass will panic");
        engine.panic_in_next_pass();
    }
    let (f32_level, i8_level) = engine.levels();
    tracing::info!(
        threads = engine.threads(),
        f32 = ?f32_level,
        i8 = ?i8_level,
        initMs = started.elapsed().as_secs_f64() * 1000.0,
        "ready"
    );
    let bedrock = embed::client(&sdk, &config.bedrock);
    Ok(App::new(engine, bedrock, config))
}

fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(sdk);
    // S3-compatible endpoints (tests, MinIO) address buckets by path.
    if std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some()
    {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// lambda_runtime panics on a missing or malformed memory size; refuse it as configuration.
fn lambda_memory_size() -> Result<(), ConfigError> {
    match std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").map(|v| v.parse::<i32>()) {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ConfigError {
            problems: vec!["AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not set to a number".into()],
        }),
    }
}

fn init_logging() {
    // Lambda's advanced logging controls set AWS_LAMBDA_LOG_LEVEL; RUST_LOG wins when set.
    let level = match std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => "trace",
        "debug" => "debug",
        "warn" => "warn",
        "error" | "fatal" => "error",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stdout)
        .init();
}

/// Tells the Runtime API that init failed (`POST /2018-06-01/runtime/init/error`).
async fn report_init_error(error_type: &str, message: &str) {
    let diagnostic = Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message.to_owned(),
    };
    let client = match lambda_runtime_api_client::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the Runtime API client to report init error");
            return;
        }
    };
    let request = serde_json::to_vec(&diagnostic)
        .map_err(|e| e.to_string())
        .and_then(|body| {
            lambda_runtime_api_client::build_request()
                .method("POST")
                .uri("/2018-06-01/runtime/init/error")
                // Lambda reads this header as `Category.Reason`; AWS's runtime emulator records
                // anything else as `Runtime.Unknown`.
                .header(
                    "lambda-runtime-function-error-type",
                    format!("Function.{error_type}"),
                )
                .header("content-type", "application/json")
                .body(lambda_runtime_api_client::body::Body::from(body))
                .map_err(|e| e.to_string())
        });
    match request {
        Ok(request) => match client.call(request).await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::error!(status = %response.status(), "Runtime API refused the init error")
            }
            Err(e) => tracing::error!(error = %e, "cannot report init error to the Runtime API"),
        },
        Err(e) => tracing::error!(error = %e, "cannot build the init error request"),
    }
}
