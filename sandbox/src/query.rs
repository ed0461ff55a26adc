//! The sandbox's sample query, the way a user asks it: Lambda's `Invoke` on the published
//! version of the SimilarityFunction. The AWS emulator runs that version's code — the zip the
//! operator published — under AWS's Lambda Runtime Interface Emulator, with the version's
//! environment and its catalog from the emulator's S3; so the path is operator → published
//! version → AWS's runtime → our handler.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_lambda::primitives::Blob;
use kube::Client;
use kube::api::{Api, DynamicObject};
use lmi_test_support::AwsEmulator;
use serde_json::{Value, json};

use crate::report::resource;
use crate::{catalog, detail};

/// What the sample query found.
#[derive(Debug)]
pub struct Answer {
    /// The function version that answered (`name:version`).
    pub function: String,
    /// The product asked about.
    pub product: String,
    /// The ranked results (`id`, `category`, `score`).
    pub results: Vec<(String, String, f64)>,
    /// The first invoke: the execution environment started and the catalog loaded.
    pub cold: Duration,
    /// The second invoke of the same query, on the warm environment.
    pub warm: Duration,
    /// The handler's own timings object (warm).
    pub timings: Value,
}

/// Asks the published version of the SimilarityFunction `namespace/name`, through `Invoke`, for
/// the products most similar to the catalog's first one: once cold, once warm.
pub async fn sample(
    client: &Client,
    aws: &AwsEmulator,
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
    let product = catalog::product_id(0);
    let request = json!({"productId": product, "topK": 5});
    detail(&format!(
        "aws lambda invoke --function-name {arn} --qualifier {version}"
    ));
    detail(&format!("request  {request}"));
    let (cold, _) = invoke(aws, arn, version, &request).await?;
    let (warm, body) = invoke(aws, arn, version, &request).await?;
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
    let function = arn.rsplit(':').next().unwrap_or(name);
    Ok(Answer {
        function: format!("{function}:{version}"),
        product,
        results,
        cold,
        warm,
        timings: body["timings"].clone(),
    })
}

/// One synchronous `Invoke` of `arn:version`; a function error is an error naming its type.
async fn invoke(
    aws: &AwsEmulator,
    arn: &str,
    version: &str,
    request: &Value,
) -> anyhow::Result<(Duration, Value)> {
    let started = Instant::now();
    let output = aws
        .lambda()
        .invoke()
        .function_name(arn)
        .qualifier(version)
        .payload(Blob::new(request.to_string()))
        .send()
        .await
        .with_context(|| format!("invoke {arn}:{version}"))?;
    let took = started.elapsed();
    let payload = output.payload().map(Blob::as_ref).unwrap_or_default();
    let body: Value = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    if let Some(kind) = output.function_error() {
        bail!("{arn}:{version} failed ({kind}): {body}");
    }
    Ok((took, body))
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
    detail(&format!(
        "invoke: {:.0} ms cold (environment started, catalog loaded), {:.1} ms warm",
        answer.cold.as_secs_f64() * 1000.0,
        answer.warm.as_secs_f64() * 1000.0
    ));
    detail(&format!("timings {}", answer.timings));
}
