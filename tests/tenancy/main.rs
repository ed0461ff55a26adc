//! The tenant attack suite: what one tenant of a shared capacity provider may try against
//! another, against the real controllers, the API server and the AWS emulator. Every refusal is
//! checked three ways: the condition and its reason, the warning event, and Lambda's state
//! unchanged by the refused object while the operator kept looking at it.

#[path = "../harness/mod.rs"]
mod harness;

use aws_sdk_lambda::primitives::Blob;
use harness::functions::{OTHER, PROVIDER, TEAM, conditions, handler_zip, is_ready, version};
use harness::tenants::grant_with;
use harness::{World, has_condition};
use lmi_operator::api::SimilarityFunction;
use lmi_operator::identity;
use serde_json::{Value, json};

/// Tenant grants of the shared provider: `team` and `other`, each with its own role, code and
/// catalog folders and function-name pattern.
fn shared_provider(world: &World, net: &lmi_test_support::Network, other_role: &str) -> Value {
    let mut provider = world.function_provider(net);
    provider["spec"]["tenants"] = json!([
        grant_with(
            "team",
            &[TEAM],
            &world.role_arn,
            json!({
                "codeSources": ["s3://artifacts/team/"],
                "catalogSources": ["s3://catalogs/team/"],
                "functionNames": ["team-*"],
            })
        ),
        grant_with(
            "other",
            &[OTHER],
            other_role,
            json!({
                "codeSources": ["s3://artifacts/other/"],
                "catalogSources": ["s3://catalogs/other/"],
                "functionNames": ["other-*"],
            })
        ),
    ]);
    provider
}

/// A shared provider Ready, and a legitimate function of `team` Ready on it.
async fn shared_world() -> (World, lmi_test_support::Network, String) {
    let (mut world, net) = World::for_functions().await;
    let other_role = world
        .aws
        .create_role("lmi/other/search")
        .await
        .expect("the other tenant's role");
    world.start_operator();
    world
        .apply_provider(shared_provider(&world, &net, &other_role))
        .await;
    world
        .wait_provider(PROVIDER, "Ready", |cp| {
            has_condition(harness::provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    world
        .apply_function(&team_function(&world, "products"))
        .await;
    world.wait_function_ready(TEAM, "products").await;
    (world, net, other_role)
}

/// A function of `team` that names only what its grant allows.
fn team_function(world: &World, name: &str) -> Value {
    let mut f = world.function(TEAM, name);
    f["spec"]["catalog"]["uri"] = json!("s3://catalogs/team/products.parquet");
    f
}

/// Waits for `Ready=False` with `reason` on the function, and its warning event.
async fn wait_refused(world: &World, name: &str, reason: &str) -> SimilarityFunction {
    let sf = world
        .wait_function(TEAM, name, reason, |sf| {
            has_condition(conditions(sf), "Ready", "False", Some(reason))
        })
        .await;
    world.wait_event(name, reason).await;
    sf
}

fn ready_message(sf: &SimilarityFunction) -> String {
    harness::condition(conditions(sf), "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_role_code_catalog_or_name_is_refused_and_changes_nothing_in_aws() {
    let (mut world, _net, other_role) = shared_world().await;
    let before = world.lambda_snapshot().await;
    let since = jiff::Timestamp::now();

    let attacks: [(&str, Value, &str, &[&str]); 5] = [
        (
            "borrowed-role",
            json!({"roleArn": other_role}),
            "RoleNotAllowed",
            &[
                "spec.roleArn",
                "lmi/other/search",
                "spec.tenants[team].executionRoleArns",
            ],
        ),
        (
            "borrowed-code",
            json!({"code": {"s3": {"bucket": "artifacts", "key": "other/handler.zip"}}}),
            "CodeSourceNotAllowed",
            &[
                "spec.code.s3",
                "s3://artifacts/other/handler.zip",
                "spec.tenants[team].codeSources",
            ],
        ),
        (
            "escaping-code",
            json!({"code": {"s3": {"bucket": "artifacts", "key": "team/../other/handler.zip"}}}),
            "CodeSourceNotAllowed",
            &["spec.code.s3"],
        ),
        (
            "borrowed-catalog",
            json!({"catalog": {"uri": "s3://catalogs/other/private.parquet", "dimensions": 1024}}),
            "CatalogSourceNotAllowed",
            &[
                "spec.catalog.uri",
                "s3://catalogs/other/private.parquet",
                "spec.tenants[team].catalogSources",
            ],
        ),
        (
            "squatter",
            json!({"awsName": "other-products"}),
            "FunctionNameNotAllowed",
            &[
                "spec.awsName other-products",
                "spec.tenants[team].functionNames",
            ],
        ),
    ];
    for (name, change, _, _) in &attacks {
        let mut manifest = team_function(&world, name);
        for (field, value) in change.as_object().expect("object") {
            manifest["spec"][field] = value.clone();
        }
        world.apply_function(&manifest).await;
    }
    for (name, _, reason, in_message) in &attacks {
        let sf = wait_refused(&world, name, reason).await;
        let message = ready_message(&sf);
        for part in *in_message {
            assert!(message.contains(part), "{name}: {part:?} not in {message}");
        }
        assert!(has_condition(
            conditions(&sf),
            "CapacityProviderReady",
            "False",
            Some(reason)
        ));
        // Looked at again after the refusal was reported: the quiet window below is real.
        world.wait_resynced(TEAM, name, since).await;
    }
    assert_eq!(
        world.lambda_snapshot().await,
        before,
        "refused objects changed Lambda"
    );
    let legit = world.functions(TEAM).get("products").await.expect("get");
    assert!(is_ready(&legit), "the tenant's own function stays Ready");
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_equal_to_an_existing_foreign_function_is_a_conflict_and_leaves_it_alone() {
    let (mut world, _net, _) = shared_world().await;
    world
        .lambda
        .create_function()
        .function_name("team-legacy")
        .role(&world.role_arn)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(handler_zip("terraform's")))
                .build(),
        )
        .send()
        .await
        .expect("a function Terraform created");
    let before = world.lambda_snapshot().await;
    let since = jiff::Timestamp::now();

    let mut manifest = team_function(&world, "legacy");
    manifest["spec"]["awsName"] = json!("team-legacy");
    world.apply_function(&manifest).await;
    let sf = wait_refused(&world, "legacy", "NameConflict").await;
    assert!(
        ready_message(&sf).contains("team-legacy"),
        "{}",
        ready_message(&sf)
    );
    world.wait_resynced(TEAM, "legacy", since).await;
    assert_eq!(world.lambda_snapshot().await, before);

    // Deleting the object leaves the foreign function in place.
    world.delete_function(TEAM, "legacy").await;
    world.wait_function_gone(TEAM, "legacy").await;
    assert_eq!(world.lambda_snapshot().await, before);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_the_function_that_breaks_them_and_admit_it_when_room_is_made() {
    let (mut world, net, other_role) = shared_world().await;
    let mut provider = shared_provider(&world, &net, &other_role);
    provider["spec"]["tenants"][0]["limits"] =
        json!({"maxFunctions": 2, "maxExecutionEnvironments": 6});
    world.apply_provider(provider.clone()).await;

    // `products` (4 environments) is admitted; `second` (4 more) breaks maxExecutionEnvironments.
    let before = world.lambda_snapshot().await;
    world.apply_function(&team_function(&world, "second")).await;
    let sf = wait_refused(&world, "second", "TenantLimitExceeded").await;
    let message = ready_message(&sf);
    assert!(
        message.contains("grant team")
            && message.contains("allows 6")
            && message.contains("limits.maxExecutionEnvironments"),
        "{message}"
    );
    assert_eq!(
        world.lambda_snapshot().await,
        before,
        "nothing created for it"
    );

    // Making room on the first function admits the second (it is woken by the change).
    let mut first = team_function(&world, "products");
    first["spec"]["scaling"] =
        json!({"minExecutionEnvironments": 1, "maxExecutionEnvironments": 2});
    world.apply_function(&first).await;
    world.wait_function_ready(TEAM, "second").await;
    world.wait_function_ready(TEAM, "products").await;

    // Lowering the limit below use suspends the newest function, and only it.
    provider["spec"]["tenants"][0]["limits"] = json!({"maxFunctions": 1});
    world.apply_provider(provider).await;
    let sf = wait_refused(&world, "second", "TenantLimitExceeded").await;
    assert!(
        ready_message(&sf).contains("suspended"),
        "{}",
        ready_message(&sf)
    );
    let second = world.function_aws_name(TEAM, "second");
    let snapshot = world.lambda_snapshot().await;
    assert!(
        snapshot[&second]
            .versions
            .iter()
            .all(|(_, _, scaling)| *scaling == Some((Some(0), Some(0)))),
        "{:?}",
        snapshot[&second]
    );
    let first = world.functions(TEAM).get("products").await.expect("get");
    assert!(is_ready(&first), "the older function keeps its place");
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_grant_deactivates_every_version_and_granting_it_again_restores_them() {
    let (mut world, net, other_role) = shared_world().await;
    // Two published versions.
    let mut manifest = team_function(&world, "products");
    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    let running = world
        .wait_function(TEAM, "products", "Ready on version 2", |sf| {
            is_ready(sf) && version(sf) == Some("2")
        })
        .await;
    let name = world.function_aws_name(TEAM, "products");
    let arn = running.status.and_then(|s| s.function_arn).expect("arn");

    // Revoke: the grant no longer covers the namespace.
    let mut provider = shared_provider(&world, &net, &other_role);
    provider["spec"]["tenants"][0]["namespaces"] = json!({"names": ["someone-else"]});
    world.apply_provider(provider).await;
    let sf = wait_refused(&world, "products", "NamespaceNotAllowed").await;
    assert!(
        ready_message(&sf).contains("suspended"),
        "{}",
        ready_message(&sf)
    );
    world.wait_event("products", "SuspendedFunction").await;
    let suspended = &world.lambda_snapshot().await[&name];
    assert_eq!(
        suspended.tags.get("lmi.dev/suspended").map(String::as_str),
        Some("NamespaceNotAllowed")
    );
    assert_eq!(suspended.versions.len(), 2, "versions kept, not deleted");
    for (v, _, scaling) in &suspended.versions {
        assert_eq!(*scaling, Some((Some(0), Some(0))), "version {v}");
    }
    let (_, applied) = world.aws_scaling(TEAM, "products", "2").await;
    assert_eq!(applied, Some((Some(0), Some(0))));

    // A resync of the suspended function changes nothing more.
    let since = jiff::Timestamp::now();
    let calls = world.operator_calls(true).len();
    world.wait_resynced(TEAM, "products", since).await;
    world
        .wait_resynced(TEAM, "products", jiff::Timestamp::now())
        .await;
    assert_eq!(
        world.operator_calls(true).len(),
        calls,
        "{:?}",
        world.operator_calls(true)
    );

    // Grant again: the serving version is reactivated with the spec's scaling.
    world
        .apply_provider(shared_provider(&world, &net, &other_role))
        .await;
    let sf = world.wait_function_ready(TEAM, "products").await;
    assert_eq!(version(&sf), Some("2"));
    assert_eq!(
        sf.status.and_then(|s| s.function_arn).as_deref(),
        Some(arn.as_str()),
        "the same function, never recreated"
    );
    world.wait_event("products", "ResumedFunction").await;
    let resumed = &world.lambda_snapshot().await[&name];
    assert!(!resumed.tags.contains_key("lmi.dev/suspended"));
    let (held, applied) = world.aws_scaling(TEAM, "products", "2").await;
    assert_eq!(held, Some((Some(1), Some(4))));
    assert_eq!(applied, held);
    assert!(world.aws_versions(TEAM, "products").await.contains(&2));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_the_role_pattern_suspends_a_running_function() {
    let (mut world, net, other_role) = shared_world().await;
    let mut provider = shared_provider(&world, &net, &other_role);
    provider["spec"]["tenants"][0]["executionRoleArns"] =
        json!(["arn:aws:iam::123456789012:role/lmi/team/*"]);
    world.apply_provider(provider).await;
    let sf = wait_refused(&world, "products", "RoleNotAllowed").await;
    assert!(
        ready_message(&sf).contains("suspended"),
        "{}",
        ready_message(&sf)
    );
    let (held, _) = world.aws_scaling(TEAM, "products", "1").await;
    assert_eq!(held, Some((Some(0), Some(0))));
    assert!(
        world.aws_function(TEAM, "products").await.is_some(),
        "never deleted"
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installations_on_one_account_never_touch_each_others_resources() {
    let (mut a, net) = World::for_functions().await;
    a.start_operator();
    a.ready_provider(&net).await;
    a.apply_function(&a.function(TEAM, "products")).await;
    a.wait_function_ready(TEAM, "products").await;
    let a_snapshot = a.lambda_snapshot().await;
    let a_providers = a.aws_provider_names().await;

    // Another cluster with the same --cluster-name: its provider and function derive the same
    // AWS names as a's.
    let mut b = a.another_installation("installation-b").await;
    for ns in [TEAM, OTHER] {
        b.create_namespace(ns, &[]).await;
    }
    b.start_operator();
    b.apply_provider(b.function_provider(&net)).await;
    let cp = b
        .wait_provider(PROVIDER, "refused", |cp| {
            has_condition(
                harness::provider_conditions(cp),
                "Ready",
                "False",
                Some("NameConflict"),
            )
        })
        .await;
    let message = &harness::condition(harness::provider_conditions(&cp), "Ready")
        .expect("Ready")
        .message;
    assert!(message.contains("another installation"), "{message}");

    // b's function on a provider of its own, but the same object name as a's function.
    let mut own = b.function_provider(&net);
    own["metadata"]["name"] = json!("graviton-b");
    b.apply_provider(own).await;
    b.wait_provider("graviton-b", "Ready", |cp| {
        has_condition(harness::provider_conditions(cp), "Ready", "True", None)
    })
    .await;
    let mut f = b.function(TEAM, "products");
    f["spec"]["capacityProviderRef"]["name"] = json!("graviton-b");
    b.apply_function(&f).await;
    let sf = b
        .wait_function(TEAM, "products", "a name conflict", |sf| {
            has_condition(conditions(sf), "Ready", "False", Some("NameConflict"))
        })
        .await;
    assert!(
        ready_message(&sf).contains("another installation"),
        "{}",
        ready_message(&sf)
    );

    // Deleting b's objects removes b's provider only.
    b.delete_function(TEAM, "products").await;
    b.wait_function_gone(TEAM, "products").await;
    for name in [PROVIDER, "graviton-b"] {
        b.delete_provider(name).await;
        b.wait_provider_gone(name).await;
    }
    assert_eq!(
        a.lambda_snapshot().await,
        a_snapshot,
        "a's functions untouched"
    );
    assert_eq!(
        a.aws_provider_names().await,
        a_providers,
        "a's provider untouched"
    );
    let a_function = a.functions(TEAM).get("products").await.expect("get");
    assert!(is_ready(&a_function));
    let tags = a
        .aws_function(TEAM, "products")
        .await
        .and_then(|f| f.tags().cloned())
        .expect("tags");
    assert_eq!(tags[identity::TAG_INSTALLATION], harness::INSTALLATION);
    b.stop_operator().await;
    a.stop_operator().await;
}
