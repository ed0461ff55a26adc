//! Bad input: specs the schema accepts but AWS cannot serve — a subnet that does not exist, a
//! public subnet, instance types of the other architecture, roles of another AWS partition. Each
//! reaches a condition whose reason says what kind of problem it is and whose message names the
//! culprit, nothing is created in AWS, and while the spec stays wrong the operator only looks
//! again slowly: its AWS calls (and its status writes) over a window are bounded by the slow
//! retry, far from a hot loop.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::{ObjectMeta, Resource};
use lmi_operator::api::SimilarityFunction;
use lmi_test_support::{Egress, Network};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::harness::functions::{PROVIDER, TEAM, conditions};
use crate::harness::{World, condition, has_condition, provider_conditions, provider_manifest};
use crate::inventory::Inventory;

/// How long the operator is watched while a bad spec stands.
const WINDOW: Duration = Duration::from_secs(10);

/// A role of the China partition, while the operator works in `us-east-1`.
const CN_ROLE: &str = "arn:aws-cn:iam::123456789012:role/lmi-e2e";
/// A role of the GovCloud partition.
const GOV_ROLE: &str = "arn:aws-us-gov:iam::123456789012:role/lmi-e2e";
/// A well-formed subnet id that does not exist.
const MISSING_SUBNET: &str = "subnet-0123456789abcdef0";

/// Lambda operations only the SimilarityFunction controller makes.
const FUNCTION_OPERATIONS: &[&str] = &[
    "GetFunction",
    "ListVersionsByFunction",
    "CreateFunction",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "PublishVersion",
    "GetFunctionScalingConfig",
    "PutFunctionScalingConfig",
    "DeleteFunction",
];

/// At most how many passes a resource refused with a slow retry gets in `WINDOW`: one per
/// retry interval (jittered down to 0.8× at the shortest), and the one under way when the window
/// opens. Its own status writes must not wake it for more.
fn passes_bound(world: &World) -> usize {
    let retry = world.config.backoff.terminal.mul_f64(0.8);
    (WINDOW.as_secs_f64() / retry.as_secs_f64()).ceil() as usize + 1
}

/// What happened during a window: the operator's AWS calls and the writes to each object.
struct Window {
    calls: Vec<String>,
    writes: BTreeMap<String, usize>,
}

/// Watches objects of kind `K` and the operator's AWS calls for [`WINDOW`].
async fn observe<K>(world: &World, api: &Api<K>) -> Window
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + 'static,
{
    let from = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list resource version");
    world.proxy.clear_log();
    let mut writes: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WINDOW;
    let mut version = from;
    // A watch the server ends early is resumed from the last version seen.
    'window: while tokio::time::Instant::now() < deadline {
        let mut stream = api
            .watch(&WatchParams::default(), &version)
            .await
            .expect("watch")
            .boxed();
        loop {
            match tokio::time::timeout_at(deadline, stream.try_next()).await {
                Err(_window_over) => break 'window,
                Ok(Ok(Some(WatchEvent::Added(object) | WatchEvent::Modified(object)))) => {
                    let meta: &ObjectMeta = object.meta();
                    version = meta.resource_version.clone().unwrap_or(version);
                    *writes
                        .entry(meta.name.clone().unwrap_or_default())
                        .or_default() += 1;
                }
                Ok(Ok(Some(WatchEvent::Bookmark(b)))) => version = b.metadata.resource_version,
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(_)) => break,
            }
        }
    }
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    tokio::time::sleep(remaining).await;
    Window {
        calls: world.operator_calls(false),
        writes,
    }
}

fn ready_message(conditions: &[Condition]) -> &str {
    condition(conditions, "Ready").map_or("", |c| c.message.as_str())
}

/// A provider whose operator role is in another partition is refused before any AWS call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_role_of_another_partition_is_refused_without_calling_aws() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "cn-role",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            CN_ROLE,
        ))
        .await;
    let cp = world
        .wait_provider("cn-role", "refused (InvalidSpec)", |cp| {
            has_condition(
                provider_conditions(cp),
                "Ready",
                "False",
                Some("InvalidSpec"),
            )
        })
        .await;
    let message = ready_message(provider_conditions(&cp));
    for part in [
        "spec.operatorRoleArn",
        CN_ROLE,
        "partition aws-cn",
        "us-east-1",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(has_condition(
        provider_conditions(&cp),
        "Synced",
        "False",
        Some("InvalidSpec")
    ));

    let window = observe(&world, &world.providers()).await;
    assert!(
        window.calls.is_empty(),
        "AWS called for a provider refused before any call: {:?}",
        window.calls
    );
    let writes = window.writes.get("cn-role").copied().unwrap_or_default();
    assert!(
        writes <= passes_bound(&world),
        "{writes} writes to cn-role in {WINDOW:?}: a hot loop"
    );
    assert!(world.operator_calls(false).is_empty());
    assert!(Inventory::read(&world).await.is_empty());

    // The role is immutable: the way out is to delete the object, which needs nothing in AWS.
    world.delete_provider("cn-role").await;
    world.wait_provider_gone("cn-role").await;
    assert!(
        world.operator_calls(true).is_empty(),
        "{:?}",
        world.operator_calls(true)
    );
    world.stop_operator().await;
}

/// Networks and instance types AWS cannot serve: each provider gets the matching condition
/// naming the culprit, nothing is created, and the slow retry bounds the calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_networks_and_instance_types_are_refused_with_bounded_calls() {
    let (mut world, net) = World::for_functions().await;
    let public = Network::builder()
        .public_subnet("us-east-1a")
        .build(&world.ec2)
        .await
        .expect("public network");
    let public_subnet = public.subnet_ids(Egress::InternetGateway)[0].clone();
    world.start_operator();

    let good_subnets = net.private_subnet_ids();
    let good_group = std::slice::from_ref(&net.security_group_id);
    let mut wrong_arch =
        provider_manifest("wrong-arch", &good_subnets, good_group, &world.role_arn);
    // arm64 instances, x86_64 instance types.
    wrong_arch["spec"]["instances"]["allowedInstanceTypes"] = json!(["c7i.large"]);
    let cases = [
        (
            provider_manifest(
                "missing-subnet",
                &[MISSING_SUBNET.to_owned()],
                good_group,
                &world.role_arn,
            ),
            "NetworkReady",
            "NetworkNotFound",
            vec![MISSING_SUBNET],
        ),
        (
            provider_manifest(
                "public-subnet",
                std::slice::from_ref(&public_subnet),
                std::slice::from_ref(&public.security_group_id),
                &world.role_arn,
            ),
            "NetworkReady",
            "PublicSubnet",
            vec![public_subnet.as_str(), "internet gateway"],
        ),
        (
            wrong_arch,
            "InstanceTypesAvailable",
            "InstanceTypeUnavailable",
            vec!["c7i.large", "x86_64", "arm64"],
        ),
    ];
    for (manifest, ..) in &cases {
        world.apply_provider(manifest.clone()).await;
    }
    for (manifest, kind, reason, culprits) in &cases {
        let name = manifest["metadata"]["name"].as_str().expect("name");
        let cp = world
            .wait_provider(name, reason, |cp| {
                has_condition(provider_conditions(cp), kind, "False", Some(reason))
            })
            .await;
        let conditions = provider_conditions(&cp);
        let ready = condition(conditions, "Ready").expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", *reason),
            "{name}"
        );
        for culprit in culprits {
            assert!(
                ready.message.contains(culprit),
                "{name}: {culprit:?} not in {:?}",
                ready.message
            );
        }
    }

    let window = observe(&world, &world.providers()).await;
    let mutating: Vec<&String> = window
        .calls
        .iter()
        .filter(|op| {
            !["Get", "List", "Describe"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .collect();
    assert!(
        mutating.is_empty(),
        "mutating calls for refused specs: {mutating:?}"
    );
    // One GetCapacityProvider per pass and provider.
    let passes = window
        .calls
        .iter()
        .filter(|op| *op == "GetCapacityProvider")
        .count();
    let bound = cases.len() * passes_bound(&world);
    assert!(
        passes <= bound,
        "{passes} passes over {} refused providers in {WINDOW:?} (at most {bound}): a hot loop",
        cases.len()
    );
    assert!(
        window.calls.len() <= passes * 12,
        "{} calls in {passes} passes: {:?}",
        window.calls.len(),
        window.calls
    );
    for (name, writes) in &window.writes {
        assert!(
            *writes <= passes_bound(&world),
            "{writes} writes to {name} in {WINDOW:?}: a hot loop"
        );
    }
    eprintln!(
        "refused providers: {} AWS calls ({passes} passes) in {WINDOW:?}; writes {:?}",
        window.calls.len(),
        window.writes
    );
    assert!(Inventory::read(&world).await.is_empty());

    for (manifest, ..) in &cases {
        let name = manifest["metadata"]["name"].as_str().expect("name");
        world.delete_provider(name).await;
        world.wait_provider_gone(name).await;
    }
    assert!(
        world.operator_calls(true).is_empty(),
        "{:?}",
        world.operator_calls(true)
    );
    assert!(Inventory::read(&world).await.is_empty());
    world.stop_operator().await;
}

/// A function whose role is in another partition is refused before any function call, and
/// deploys at once when the spec names a usable role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_role_of_another_partition_is_refused_until_the_spec_is_fixed() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    // The grant lists the role, so what refuses it is the partition check.
    let mut provider = world.function_provider(&net);
    provider["spec"]["tenants"][0]["executionRoleArns"] = json!([world.role_arn, GOV_ROLE]);
    world.apply_provider(provider).await;
    world
        .wait_provider(PROVIDER, "Ready", |cp| {
            has_condition(provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["roleArn"] = json!(GOV_ROLE);
    world.apply_function(&manifest).await;

    let sf = world
        .wait_function(TEAM, "products", "refused (InvalidSpec)", |sf| {
            has_condition(conditions(sf), "Ready", "False", Some("InvalidSpec"))
        })
        .await;
    let message = ready_message(conditions(&sf));
    for part in [
        "spec.roleArn",
        GOV_ROLE,
        "partition aws-us-gov",
        "us-east-1",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(has_condition(
        conditions(&sf),
        "Synced",
        "False",
        Some("InvalidSpec")
    ));

    let functions: Api<SimilarityFunction> = world.functions(TEAM);
    let window = observe(&world, &functions).await;
    let function_calls: Vec<&String> = window
        .calls
        .iter()
        .filter(|op| FUNCTION_OPERATIONS.contains(&op.as_str()))
        .collect();
    assert!(
        function_calls.is_empty(),
        "function calls for a function refused before any call: {function_calls:?}"
    );
    let writes = window.writes.get("products").copied().unwrap_or_default();
    assert!(
        writes <= passes_bound(&world),
        "{writes} writes to products in {WINDOW:?}: a hot loop"
    );
    let inventory = Inventory::read(&world).await;
    assert!(inventory.functions.is_empty(), "{inventory:?}");
    assert_eq!(
        inventory.providers.len(),
        1,
        "only {PROVIDER} is in AWS: {inventory:?}"
    );

    // A spec change is looked at at once, not after the slow retry.
    manifest["spec"]["roleArn"] = json!(world.role_arn);
    world.apply_function(&manifest).await;
    let sf = world.wait_function_ready(TEAM, "products").await;
    assert_eq!(sf.status.and_then(|s| s.version).as_deref(), Some("1"));
    world.stop_operator().await;
}

/// A tag key outside AWS's pattern (the schema cannot check map keys within the API server's
/// CEL budget) is refused before any AWS call, naming the key; fixed, the function deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_key_outside_awss_pattern_is_refused_without_calling_aws() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world.proxy.clear_log();
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["tags"]["cost;center"] = serde_json::json!("42");
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "products", "refused (InvalidSpec)", |sf| {
            has_condition(conditions(sf), "Ready", "False", Some("InvalidSpec"))
        })
        .await;
    let message = ready_message(conditions(&sf));
    assert!(
        message.contains("cost;center") && message.contains("spec.tags"),
        "{message}"
    );
    let lambda_calls: Vec<String> = world
        .proxy
        .log()
        .into_iter()
        .filter(|r| r.service == "lambda")
        .map(|r| r.operation)
        .collect();
    assert!(
        lambda_calls.iter().all(|o| !o.contains("Function")),
        "Lambda called for a refused function: {lambda_calls:?}"
    );
    assert!(world.aws_function(TEAM, "products").await.is_none());

    manifest["spec"]["tags"]
        .as_object_mut()
        .expect("tags")
        .remove("cost;center");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    world.stop_operator().await;
}
