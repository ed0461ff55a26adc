//! The sandbox's sample query: the handler binary for this machine, run as the deployed
//! version would run it (the version's environment from the emulator, its catalog from the
//! emulator's S3), under a local Lambda Runtime API, asked "what is most like this product".

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::Client;
use kube::api::{Api, DynamicObject};
use lmi_test_support::AwsEmulator;
use lmi_test_support::runtime_api::{Outcome, RuntimeApi};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::report::resource;
use crate::{catalog, detail};

/// How long the handler may take to load its catalog.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the sample query found.
#[derive(Debug)]
pub struct Answer {
    /// The function version that was run (`name:version`).
    pub function: String,
    /// The product asked about.
    pub product: String,
    /// The ranked results (`id`, `category`, `score`).
    pub results: Vec<(String, String, f64)>,
    /// Time from start to the handler asking for its first invocation.
    pub init: Duration,
    /// The handler's own timings object.
    pub timings: Value,
}

/// Runs `handler` as the published version of the SimilarityFunction `namespace/name` and asks
/// it for the products most similar to the catalog's first one.
pub async fn sample(
    client: &Client,
    aws: &AwsEmulator,
    handler: &Path,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Answer> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource("SimilarityFunction"));
    let object = api
        .get(name)
        .await
        .with_context(|| format!("read similarityfunction {namespace}/{name}"))?;
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let (Some(arn), Some(version)) = (status["functionArn"].as_str(), status["version"].as_str())
    else {
        bail!("similarityfunction {namespace}/{name} has no published version in its status");
    };
    let config = aws
        .lambda()
        .get_function_configuration()
        .function_name(arn)
        .qualifier(version)
        .send()
        .await
        .with_context(|| format!("read {arn}:{version} from the emulator"))?;
    let function_name = config.function_name().unwrap_or(name).to_owned();
    let variables = config
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let memory = config.memory_size().unwrap_or(2048);

    let runtime = RuntimeApi::start()
        .await
        .context("start a local Lambda Runtime API")?;
    let started = Instant::now();
    let mut child = Command::new(handler)
        .env_clear()
        .envs(&variables)
        .envs(aws.client_env())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", &function_name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", version)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string())
        .env("AWS_LAMBDA_MAX_CONCURRENCY", "4")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "sandbox")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", handler.display()))?;
    if !runtime.wait_ready(INIT_TIMEOUT).await {
        let _ = child.kill().await;
        match runtime.init_error(Duration::ZERO).await {
            Some(e) => bail!(
                "the handler failed to start: {}: {}",
                e.error_type,
                e.message
            ),
            None => bail!("the handler did not start within {INIT_TIMEOUT:?}"),
        }
    }
    let init = started.elapsed();
    let product = catalog::product_id(0);
    detail(&format!(
        "{function_name}:{version} loaded {} in {:.1}s",
        variables
            .get("LMI_CATALOG_URI")
            .map_or("its catalog", String::as_str),
        init.as_secs_f64()
    ));
    let request = json!({"productId": product, "topK": 5});
    detail(&format!("request  {request}"));
    let outcome = runtime
        .try_invoke(&request, Duration::from_secs(30))
        .await
        .map_err(anyhow::Error::msg);
    let _ = child.kill().await;
    let body = match outcome? {
        Outcome::Response(body) => body,
        Outcome::Error { body, .. } => bail!("the handler failed: {body}"),
    };
    if let Some(error) = body.get("errorType") {
        bail!("the handler refused the sample query ({error}): {body}");
    }
    let results: Vec<(String, String, f64)> = body["results"]
        .as_array()
        .context("the handler's answer has no results")?
        .iter()
        .map(|hit| {
            (
                hit["id"].as_str().unwrap_or_default().to_owned(),
                hit["category"].as_str().unwrap_or_default().to_owned(),
                hit["score"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    if results.is_empty() {
        bail!("the handler found nothing similar to {product}: {body}");
    }
    Ok(Answer {
        function: format!("{function_name}:{version}"),
        product,
        results,
        init,
        timings: body["timings"].clone(),
    })
}

/// Prints the answer as a small table.
pub fn print(answer: &Answer) {
    detail(&format!(
        "{} answered: most similar to {}",
        answer.function, answer.product
    ));
    for (rank, (id, category, score)) in answer.results.iter().enumerate() {
        detail(&format!(
            "  {}. {id:<14} {category:<8} {score:.4}",
            rank + 1
        ));
    }
    detail(&format!("timings {}", answer.timings));
}
