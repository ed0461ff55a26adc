//! What the sandbox shows: the fixtures it made, progress towards Ready, and the AWS side.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::Value;

use crate::fixtures::Fixtures;
use crate::manifests::Examples;
use crate::{detail, step};

pub fn fixtures(fixtures: &Fixtures) {
    let network = &fixtures.network;
    detail(&format!("VPC {} ({})", network.vpc_id, network.cidr));
    for subnet in &network.subnets {
        detail(&format!(
            "  subnet {} {} {} {:?}",
            subnet.id, subnet.availability_zone, subnet.cidr, subnet.egress
        ));
    }
    detail(&format!(
        "  security group {} (lmi-role=functions), NAT gateway {}",
        network.security_group_id,
        network.nat_gateway_id.as_deref().unwrap_or("-")
    ));
    for role in &fixtures.roles {
        detail(&format!("IAM role {role}"));
    }
    for (uri, products, dimensions) in &fixtures.catalogs {
        detail(&format!(
            "catalog {uri}: {products} products, {dimensions} dimensions"
        ));
    }
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("lmi.dev", "v1alpha1", kind))
}

/// `(Ready status, reason, message)` of an object, once its status is for its generation.
fn readiness(object: &DynamicObject) -> (String, String, String) {
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    let observed = status["observedGeneration"].as_i64();
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if observed != object.metadata.generation || ready.is_null() {
        return ("Unknown".into(), "Reconciling".into(), String::new());
    }
    (
        text(&ready["status"]),
        text(&ready["reason"]),
        text(&ready["message"]),
    )
}

/// Polls every example object, printing each change of its Ready condition, until all are
/// Ready or `timeout` passes (then fails naming the ones that are not).
pub async fn wait_ready(
    client: &Client,
    examples: &Examples,
    timeout: Duration,
) -> anyhow::Result<()> {
    let providers: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("CapacityProvider"));
    let mut wanted: Vec<(String, Api<DynamicObject>, String)> = examples
        .providers
        .iter()
        .map(|name| {
            (
                format!("capacityprovider/{name}"),
                providers.clone(),
                name.clone(),
            )
        })
        .collect();
    for (namespace, name) in &examples.functions {
        wanted.push((
            format!("similarityfunction/{namespace}/{name}"),
            Api::namespaced_with(client.clone(), namespace, &resource("SimilarityFunction")),
            name.clone(),
        ));
    }
    let started = Instant::now();
    let mut last: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    loop {
        let mut all = true;
        for (label, api, name) in &wanted {
            let now = match api.get_opt(name).await {
                Ok(Some(object)) => readiness(&object),
                Ok(None) => ("Unknown".into(), "NotFound".into(), String::new()),
                Err(error) => ("Unknown".into(), "ApiError".into(), error.to_string()),
            };
            all &= now.0 == "True";
            if last.get(label) != Some(&now) {
                detail(&format!(
                    "[{:>5.1}s] {label}: Ready={} {} {}",
                    started.elapsed().as_secs_f64(),
                    now.0,
                    now.1,
                    now.2
                ));
                last.insert(label.clone(), now);
            }
        }
        if all {
            return Ok(());
        }
        if started.elapsed() > timeout {
            let waiting: Vec<String> = last
                .iter()
                .filter(|(_, (status, ..))| status != "True")
                .map(|(label, (_, reason, message))| format!("{label} ({reason}: {message})"))
                .collect();
            bail!("not Ready after {timeout:?}: {}", waiting.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints the last lines of the operator's log (after a failure).
pub fn operator_log_tail(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    step(&format!("last lines of {}", path.display()));
    for line in &lines[lines.len().saturating_sub(30)..] {
        println!("    {line}");
    }
}

/// Lists the capacity providers, functions and published versions in the emulator.
pub async fn aws_side(aws: &lmi_test_support::AwsEmulator) -> anyhow::Result<()> {
    let lambda = aws.lambda();
    let providers = lambda
        .list_capacity_providers()
        .send()
        .await
        .context("list capacity providers")?;
    for provider in providers.capacity_providers() {
        let arn = provider.capacity_provider_arn();
        detail(&format!(
            "capacity provider {} {:?}",
            arn.rsplit(':').next().unwrap_or(arn),
            provider.state()
        ));
        let versions = lambda
            .list_function_versions_by_capacity_provider()
            .capacity_provider_name(arn)
            .send()
            .await
            .with_context(|| format!("list the versions on {arn}"))?;
        for version in versions.function_versions() {
            detail(&format!(
                "  function version {} {:?}",
                version.function_arn(),
                version.state()
            ));
        }
    }
    Ok(())
}
