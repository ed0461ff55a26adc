//! SimilarityFunction end to end: the real controllers against a real kube-apiserver and the
//! AWS emulator (through the fault proxy).

#[path = "../harness/mod.rs"]
mod harness;

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::FunctionScalingConfig;
use harness::functions::{OTHER, PROVIDER, TEAM, conditions, handler_zip, is_ready, version};
use harness::{CONVERGE, World, eventually, has_condition};
use lmi_operator::api::similarity_function::FunctionState;
use lmi_operator::controller::similarity_function::desired::code_sha256;
use lmi_operator::identity;
use lmi_test_support::{Fault, FaultPlan};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_on_a_ready_provider_serves_version_1_with_its_scaling() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    let cp = world.ready_provider(&net).await;
    world
        .apply_function(&world.function(TEAM, "products"))
        .await;

    let sf = world.wait_function_ready(TEAM, "products").await;
    let status = sf.status.clone().expect("status");
    let arm_sha = &world.handlers.sha256("arm64");
    assert_eq!(status.version.as_deref(), Some("1"));
    assert_eq!(status.versions, vec!["1"]);
    assert_eq!(status.state, Some(FunctionState::Active));
    assert_eq!(status.code_sha256.as_ref(), Some(arm_sha));
    assert_eq!(status.config_hash.as_ref().map(String::len), Some(16));
    assert_eq!(
        status.capacity_provider_arn,
        cp.status.as_ref().and_then(|s| s.arn.clone())
    );
    assert_eq!(status.observed_generation, sf.metadata.generation);
    let scaling = status.scaling.expect("scaling");
    // settled as AWS reports it: the values are applied, no request is pending
    assert_eq!(scaling.requested, None);
    assert_eq!(
        scaling.applied.and_then(|s| s.max_execution_environments),
        Some(4)
    );
    for (t, s) in [
        ("CapacityProviderReady", "True"),
        ("Synced", "True"),
        ("Drifted", "False"),
    ] {
        assert!(has_condition(conditions(&sf), t, s, None), "{t}");
    }

    // What Lambda holds is what the manifest asked for.
    let f = world
        .aws_function(TEAM, "products")
        .await
        .expect("function");
    let c = f.configuration().expect("configuration");
    assert_eq!(c.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(c.handler(), Some("bootstrap"));
    assert_eq!(c.architectures()[0].as_str(), "arm64");
    assert_eq!(c.memory_size(), Some(4096));
    assert_eq!(c.code_sha256(), Some(arm_sha.as_str()));
    let env = c.environment().and_then(|e| e.variables()).expect("env");
    assert_eq!(env["LMI_CATALOG_URI"], "s3://catalogs/products.parquet");
    assert_eq!(env["LMI_EMBEDDING_DIMENSIONS"], "1024");
    assert_eq!(
        env["LMI_EMBEDDING_MODEL_ID"],
        "amazon.nova-2-multimodal-embeddings-v1:0"
    );
    assert_eq!(env["LMI_MAX_TOP_K"], "100");
    assert_eq!(env["LMI_INT8"], "false");
    let lmi = c
        .capacity_provider_config()
        .and_then(|p| p.lambda_managed_instances_capacity_provider_config())
        .expect("capacity provider config");
    assert_eq!(
        Some(lmi.capacity_provider_arn()),
        status.capacity_provider_arn.as_deref()
    );
    assert_eq!(lmi.per_execution_environment_max_concurrency(), Some(32));
    assert_eq!(lmi.execution_environment_memory_gib_per_v_cpu(), Some(2.0));
    let tags = f.tags().expect("tags");
    assert_eq!(tags["team"], "search");
    assert_eq!(tags[identity::TAG_OBJECT], "team/products");
    assert_eq!(tags.get(identity::TAG_UID), sf.metadata.uid.as_ref());
    assert_eq!(world.aws_versions(TEAM, "products").await, [1]);
    let (held, applied) = world.aws_scaling(TEAM, "products", "1").await;
    assert_eq!(held, Some((Some(1), Some(4))));
    assert_eq!(applied, held);
    assert_eq!(world.lambda_calls("CreateFunction"), 1);
    assert_eq!(world.lambda_calls("PublishVersion"), 1);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_publish_new_versions_and_old_ones_are_pruned_to_retain() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;

    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "products", "Ready on version 2", |sf| {
            is_ready(sf) && sf.status.as_ref().and_then(|s| s.version.as_deref()) == Some("2")
        })
        .await;
    assert_eq!(sf.status.expect("status").versions, vec!["1", "2"]);
    let f = world
        .aws_function(TEAM, "products")
        .await
        .expect("function");
    assert_eq!(f.configuration().and_then(|c| c.memory_size()), Some(8192));

    manifest["spec"]["timeoutSeconds"] = json!(60);
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "products", "Ready on version 3", |sf| {
            is_ready(sf)
                && sf.status.as_ref().map(|s| s.versions.clone())
                    == Some(vec!["2".into(), "3".into()])
        })
        .await;
    assert_eq!(sf.status.and_then(|s| s.version).as_deref(), Some("3"));
    assert_eq!(world.aws_versions(TEAM, "products").await, [2, 3]);
    let (held, _) = world.aws_scaling(TEAM, "products", "3").await;
    assert_eq!(held, Some((Some(1), Some(4))));
    assert_eq!(world.lambda_calls("PublishVersion"), 3);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_the_provider_does_not_admit_is_refused_and_nothing_is_created() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let provider_calls = world.operator_calls(true);
    world
        .apply_function(&world.function(OTHER, "intruder"))
        .await;

    let sf = world
        .wait_function(OTHER, "intruder", "refused", |sf| {
            has_condition(
                conditions(sf),
                "CapacityProviderReady",
                "False",
                Some("NamespaceNotAllowed"),
            )
        })
        .await;
    assert!(has_condition(
        conditions(&sf),
        "Ready",
        "False",
        Some("NamespaceNotAllowed")
    ));
    let message = &conditions(&sf)
        .iter()
        .find(|c| c.type_ == "CapacityProviderReady")
        .expect("condition")
        .message;
    assert!(
        message.contains(OTHER) && message.contains("spec.tenants"),
        "{message}"
    );
    world.quiet_window(Duration::from_secs(3)).await;
    assert!(world.aws_function_names().await.is_empty());
    assert_eq!(world.lambda_calls("CreateFunction"), 0);
    assert_eq!(
        world.operator_calls(true),
        provider_calls,
        "a refused function changes nothing in AWS"
    );

    // A provider that selects namespaces by label admits a namespace once it is labelled.
    let mut provider = world.function_provider(&net);
    provider["spec"]["tenants"] = json!([harness::grant(
        "production",
        json!({"selector": {"matchLabels": {"lmi.dev/environment": "production"}}}),
        &world.role_arn,
    )]);
    world.apply_provider(provider).await;
    world
        .create_namespace("prod", &[("lmi.dev/environment", "production")])
        .await;
    world
        .apply_function(&world.function("prod", "products"))
        .await;
    world.wait_function_ready("prod", "products").await;
    assert!(
        world
            .aws_function_names()
            .await
            .iter()
            .all(|n| !n.contains("intruder"))
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_waits_for_its_provider_then_proceeds() {
    let (mut world, net) = World::for_functions().await;
    world
        .aws
        .set_state_delay(Duration::from_secs(3))
        .await
        .expect("state delay");
    world.start_operator();
    world
        .apply_function(&world.function(TEAM, "products"))
        .await;
    world
        .wait_function(TEAM, "products", "waiting for a missing provider", |sf| {
            has_condition(
                conditions(sf),
                "CapacityProviderReady",
                "False",
                Some("ProviderNotFound"),
            )
        })
        .await;

    world.apply_provider(world.function_provider(&net)).await;
    world
        .wait_function(TEAM, "products", "waiting for a Pending provider", |sf| {
            has_condition(
                conditions(sf),
                "CapacityProviderReady",
                "False",
                Some("ProviderNotReady"),
            )
        })
        .await;
    assert!(world.aws_function_names().await.is_empty());
    let sf = world.wait_function_ready(TEAM, "products").await;
    assert!(has_condition(
        conditions(&sf),
        "CapacityProviderReady",
        "True",
        None
    ));
    assert_eq!(sf.status.and_then(|s| s.version).as_deref(), Some("1"));
    world.stop_operator().await;
}

/// Changes the function's code and its version's scaling behind the operator's back.
async fn tamper(world: &World, name: &str) {
    let aws_name = world.function_aws_name(TEAM, name);
    world
        .lambda
        .update_function_code()
        .function_name(&aws_name)
        .zip_file(Blob::new(handler_zip("changed by hand")))
        .send()
        .await
        .expect("update code by hand");
    world
        .lambda
        .put_function_scaling_config()
        .function_name(&aws_name)
        .qualifier("1")
        .function_scaling_config(
            FunctionScalingConfig::builder()
                .min_execution_environments(0)
                .max_execution_environments(40)
                .build(),
        )
        .send()
        .await
        .expect("put scaling by hand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_and_scaling_changed_outside_git_are_corrected() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world
        .apply_function(&world.function(TEAM, "products"))
        .await;
    world.wait_function_ready(TEAM, "products").await;
    let arm_sha = world.handlers.sha256("arm64");

    tamper(&world, "products").await;
    let repaired = eventually(CONVERGE, || async {
        let code = world.aws_function(TEAM, "products").await.and_then(|f| {
            f.configuration()
                .and_then(|c| c.code_sha256().map(str::to_owned))
        });
        let (held, _) = world.aws_scaling(TEAM, "products", "1").await;
        code.as_deref() == Some(arm_sha.as_str()) && held == Some((Some(1), Some(4)))
    })
    .await;
    assert!(repaired, "the operator did not restore code and scaling");
    world.wait_event("products", "DriftCorrected").await;
    world.wait_event("products", "UpdatedFunctionCode").await;
    // The serving version still holds the spec's code: nothing new to publish.
    let sf = world
        .wait_function(TEAM, "products", "back in sync", |sf| {
            is_ready(sf) && has_condition(conditions(sf), "Drifted", "False", Some("InSync"))
        })
        .await;
    assert_eq!(sf.status.and_then(|s| s.version).as_deref(), Some("1"));
    assert_eq!(world.aws_versions(TEAM, "products").await, [1]);
    assert_eq!(world.lambda_calls("PublishVersion"), 1);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_report_drift_is_only_reported() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["driftPolicy"] = json!("Report");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;

    tamper(&world, "products").await;
    world.proxy.clear_log();
    let sf = world
        .wait_function(TEAM, "products", "Drifted in code and scaling", |sf| {
            has_condition(conditions(sf), "Drifted", "True", Some("DriftDetected"))
                && sf.status.as_ref().is_some_and(|s| {
                    s.drift.iter().any(|d| d.field == "code.sha256")
                        && s.drift.iter().any(|d| d.field.starts_with("scaling."))
                })
        })
        .await;
    let drift = sf.status.expect("status").drift;
    let fields: Vec<&str> = drift.iter().map(|d| d.field.as_str()).collect();
    for field in [
        "code.sha256",
        "scaling.minExecutionEnvironments",
        "scaling.maxExecutionEnvironments",
    ] {
        assert!(fields.contains(&field), "{fields:?}");
    }
    let max = drift
        .iter()
        .find(|d| d.field == "scaling.maxExecutionEnvironments")
        .expect("max drift");
    assert_eq!((max.desired.as_str(), max.observed.as_str()), ("4", "40"));
    // Several resyncs later AWS is still as it was changed.
    world.quiet_window(Duration::from_secs(5)).await;
    assert!(
        world.operator_calls(true).is_empty(),
        "{:?}",
        world.operator_calls(true)
    );
    let (held, _) = world.aws_scaling(TEAM, "products", "1").await;
    assert_eq!(held, Some((Some(0), Some(40))));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_function_then_the_provider_leaves_nothing_in_aws() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    world
        .wait_function(TEAM, "products", "on version 2", |sf| {
            is_ready(sf) && sf.status.as_ref().and_then(|s| s.version.as_deref()) == Some("2")
        })
        .await;
    let provider_name = identity::capacity_provider_name(harness::CLUSTER, PROVIDER);
    assert_eq!(world.aws_versions(TEAM, "products").await, [1, 2]);
    let attached = world.attached_versions(&provider_name).await;
    for version in [":1", ":2"] {
        assert!(
            attached.iter().any(|arn| arn.ends_with(version)),
            "{attached:?}"
        );
    }

    world.delete_function(TEAM, "products").await;
    world.wait_function_gone(TEAM, "products").await;
    // The function and every version are gone before the provider is touched.
    assert!(world.aws_function_names().await.is_empty());
    assert!(world.aws_versions(TEAM, "products").await.is_empty());
    assert!(world.attached_versions(&provider_name).await.is_empty());
    assert_eq!(world.lambda_calls("DeleteFunction"), 1);

    world.delete_provider(PROVIDER).await;
    world.wait_provider_gone(PROVIDER).await;
    assert!(world.aws_function_names().await.is_empty());
    assert!(
        world.aws_provider_names().await.is_empty(),
        "{provider_name} remains"
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_leaves_the_function_and_its_versions_in_aws() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["deletionPolicy"] = json!("Retain");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;

    world.delete_function(TEAM, "products").await;
    world.wait_function_gone(TEAM, "products").await;
    assert_eq!(
        world.aws_function_names().await,
        [world.function_aws_name(TEAM, "products")]
    );
    assert_eq!(world.aws_versions(TEAM, "products").await, [1]);
    assert_eq!(world.lambda_calls("DeleteFunction"), 0);
    let reasons = world.event_reasons("products").await;
    assert!(reasons.iter().any(|r| r == "Retained"), "{reasons:?}");
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_publishing_publishes_no_duplicate() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    // Every call after PublishVersion fails, so the version gets published but nothing about it
    // is recorded in Kubernetes; then the operator dies.
    world.proxy.fail_next(
        Some("GetFunctionScalingConfig"),
        (0..10_000).map(|_| Fault::InternalError),
    );
    world
        .apply_function(&world.function(TEAM, "products"))
        .await;
    let published = eventually(CONVERGE, || async {
        world.lambda_calls("PublishVersion") > 0
            && world.lambda_calls("GetFunctionScalingConfig") > 0
    })
    .await;
    assert!(published, "no PublishVersion was made");
    world.kill_operator().await;
    let sf = world
        .functions(TEAM)
        .get("products")
        .await
        .expect("function");
    assert_eq!(sf.status.and_then(|s| s.version), None);
    assert_eq!(world.aws_versions(TEAM, "products").await, [1]);

    world.proxy.clear_faults();
    world.start_operator();
    let sf = world.wait_function_ready(TEAM, "products").await;
    assert_eq!(sf.status.and_then(|s| s.version).as_deref(), Some("1"));
    assert_eq!(world.aws_versions(TEAM, "products").await, [1]);
    assert_eq!(
        world.lambda_calls("PublishVersion"),
        1,
        "published again after the restart"
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_through_throttling_server_errors_and_resets() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world.proxy.set_plan(
        FaultPlan::seeded(7)
            .throttle(0.15)
            .internal_error(0.05)
            .connection_reset(0.03)
            .latency(Duration::from_millis(20)),
    );
    world.proxy.fail_next(
        Some("PublishVersion"),
        [Fault::Throttle, Fault::InternalError, Fault::Throttle],
    );
    for name in ["products", "catalog"] {
        world.apply_function(&world.function(TEAM, name)).await;
    }
    for name in ["products", "catalog"] {
        let sf = world.wait_function_ready(TEAM, name).await;
        assert_eq!(sf.status.and_then(|s| s.version).as_deref(), Some("1"));
        assert_eq!(world.aws_versions(TEAM, name).await, [1]);
    }
    let mut names = world.aws_function_names().await;
    names.sort();
    assert_eq!(
        names,
        vec![
            world.function_aws_name(TEAM, "catalog"),
            world.function_aws_name(TEAM, "products")
        ]
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_ready_functions_resync_without_a_single_mutating_call() {
    let (mut world, net) = World::for_functions().await;
    // The test world resyncs every 2 s instead of every 5 min: fifty functions ask for 25
    // reconciles a second, the load of thousands in production. With the production
    // concurrency (4) a loaded CI machine queues them for longer than a test waits, so this
    // test scales the concurrency with the compressed time; it checks what a resync calls,
    // not how fast a queue drains.
    world.config.similarity_function_concurrency = 16;
    world.start_operator();
    world.ready_provider(&net).await;
    // AWS allows 100 function versions per provider; each function holds 4 ($LATEST, retain 2,
    // one rolled out), so 25 fit on a provider and the fifty take two.
    world
        .apply_provider(harness::provider_manifest(
            "second",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
    world
        .wait_provider("second", "Ready", |cp| {
            has_condition(harness::provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    let names: Vec<String> = (0..50).map(|i| format!("fn-{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        let mut manifest = world.function(TEAM, name);
        if i % 2 == 1 {
            manifest["spec"]["capacityProviderRef"]["name"] = json!("second");
        }
        world.apply_function(&manifest).await;
    }
    for name in &names {
        world.wait_function_ready(TEAM, name).await;
    }
    // Let in-flight reconciles finish, then count a few resync intervals.
    tokio::time::sleep(Duration::from_secs(3)).await;
    world.proxy.clear_log();
    tokio::time::sleep(world.config.resync_interval * 4).await;
    let mutating = world.operator_calls(true);
    assert!(
        mutating.is_empty(),
        "steady state made mutating calls: {mutating:?}"
    );
    let reads = world.lambda_calls("GetFunction");
    assert!(
        reads >= 50,
        "only {reads} GetFunction calls: did the resyncs run?"
    );
    assert_eq!(world.aws_function_names().await.len(), 50);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changed_or_function_deleted_outside_git_is_restored() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world
        .apply_function(&world.function(TEAM, "products"))
        .await;
    world.wait_function_ready(TEAM, "products").await;
    let aws_name = world.function_aws_name(TEAM, "products");

    world
        .lambda
        .update_function_configuration()
        .function_name(&aws_name)
        .memory_size(1024)
        .send()
        .await
        .expect("change memory by hand");
    let restored = eventually(CONVERGE, || async {
        let f = world.aws_function(TEAM, "products").await;
        f.and_then(|f| f.configuration().and_then(|c| c.memory_size())) == Some(4096)
    })
    .await;
    assert!(restored, "the operator did not restore the memory size");
    world
        .wait_event("products", "UpdatedFunctionConfiguration")
        .await;
    // Version 1 never changed: it still serves the spec, nothing is published.
    let sf = world
        .wait_function(TEAM, "products", "back in sync", |sf| {
            is_ready(sf) && has_condition(conditions(sf), "Drifted", "False", Some("InSync"))
        })
        .await;
    assert_eq!(version(&sf), Some("1"));
    assert_eq!(world.lambda_calls("PublishVersion"), 1);

    // Deleted by hand: created again, published, scaled.
    world
        .lambda
        .delete_function()
        .function_name(&aws_name)
        .send()
        .await
        .expect("delete by hand");
    let recreated = eventually(CONVERGE, || async {
        world.lambda_calls("PublishVersion") == 2
    })
    .await;
    assert!(recreated, "the deleted function was not published again");
    let sf = world
        .wait_function(TEAM, "products", "recreated and in sync", |sf| {
            is_ready(sf) && has_condition(conditions(sf), "Drifted", "False", Some("InSync"))
        })
        .await;
    assert_eq!(version(&sf), Some("1"));
    assert_eq!(world.lambda_calls("CreateFunction"), 2);
    assert_eq!(world.aws_versions(TEAM, "products").await, [1]);
    let (held, _) = world.aws_scaling(TEAM, "products", "1").await;
    assert_eq!(held, Some((Some(1), Some(4))));
    world.wait_event("products", "DriftCorrected").await;
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_from_s3_waits_slowly_for_a_missing_object_then_deploys_it() {
    let (mut world, net) = World::for_functions().await;
    world
        .aws
        .put_object("artifacts", "README", b"handler builds live here")
        .await
        .expect("create the bucket");
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["code"] = json!({"s3": {"bucket": "artifacts", "key": "handler/v2.zip"}});
    world.apply_function(&manifest).await;

    let sf = world
        .wait_function(TEAM, "products", "refused for the missing object", |sf| {
            has_condition(conditions(sf), "Ready", "False", Some("InvalidRequest"))
        })
        .await;
    assert!(has_condition(
        conditions(&sf),
        "Synced",
        "False",
        Some("InvalidRequest")
    ));
    let message = &harness::condition(conditions(&sf), "Ready")
        .expect("Ready")
        .message;
    assert!(
        message.contains("CreateFunction") && message.contains("S3"),
        "{message}"
    );
    assert!(world.aws_function_names().await.is_empty());
    // Retried slowly (every ~2 s in tests), not in a hot loop.
    let before = world.lambda_calls("CreateFunction");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let attempts = world.lambda_calls("CreateFunction") - before;
    assert!(attempts <= 4, "{attempts} CreateFunction attempts in 5 s");

    let zip = handler_zip("uploaded to s3");
    world
        .aws
        .put_object("artifacts", "handler/v2.zip", &zip)
        .await
        .expect("upload the code");
    let sf = world.wait_function_ready(TEAM, "products").await;
    let sha = code_sha256(&zip);
    let status = sf.status.expect("status");
    assert_eq!(status.code_sha256.as_ref(), Some(&sha));
    assert_eq!(status.version.as_deref(), Some("1"));
    assert_eq!(world.aws_code_sha256(TEAM, "products").await, Some(sha));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_architecture_without_a_handler_build_gets_a_clear_condition() {
    let (mut world, net) = World::for_functions().await;
    world.handlers.remove("x86_64");
    world.start_operator();
    let mut provider = world.function_provider(&net);
    provider["metadata"]["name"] = json!("intel");
    provider["spec"]["instances"]["architecture"] = json!("x86_64");
    world.apply_provider(provider).await;
    world
        .wait_provider("intel", "Ready", |cp| {
            has_condition(harness::provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["capacityProviderRef"]["name"] = json!("intel");
    world.apply_function(&manifest).await;

    let sf = world
        .wait_function(TEAM, "products", "refused for the missing build", |sf| {
            has_condition(
                conditions(sf),
                "Ready",
                "False",
                Some("HandlerBuildUnavailable"),
            )
        })
        .await;
    let message = &harness::condition(conditions(&sf), "Ready")
        .expect("Ready")
        .message;
    assert!(
        message.contains("bootstrap-x86_64.zip") && message.contains("--handler-dir"),
        "{message}"
    );
    world.quiet_window(Duration::from_secs(3)).await;
    assert!(world.aws_function_names().await.is_empty());
    assert_eq!(
        world.lambda_calls("GetFunction") + world.lambda_calls("CreateFunction"),
        0,
        "nothing is looked up or created without a build"
    );

    // The build shows up (a fixed image): the function deploys on the next slow retry.
    world.handlers.restore("x86_64");
    let sf = world.wait_function_ready(TEAM, "products").await;
    let status = sf.status.expect("status");
    assert_eq!(status.code_sha256, Some(world.handlers.sha256("x86_64")));
    let f = world
        .aws_function(TEAM, "products")
        .await
        .expect("function");
    let c = f.configuration().expect("configuration");
    assert_eq!(c.architectures()[0].as_str(), "x86_64");
    world.stop_operator().await;
}

// --- AWS's own behaviour (issue 17): quotas, moves, failed versions ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_provider_gets_old_versions_pruned_first_then_publishes() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["versions"] = json!({"retain": 3});
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    for (memory, version) in [(8192, "2"), (6144, "3")] {
        manifest["spec"]["memoryMiB"] = json!(memory);
        world.apply_function(&manifest).await;
        world
            .wait_function(TEAM, "products", "Ready on the new version", |sf| {
                is_ready(sf)
                    && sf.status.as_ref().and_then(|s| s.version.as_deref()) == Some(version)
            })
            .await;
    }
    // $LATEST and versions 1, 2, 3: the provider is full once AWS allows 4.
    world
        .aws
        .set_limits(1000, 4)
        .await
        .expect("lower the limit");
    manifest["spec"]["memoryMiB"] = json!(12288);
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "products", "Ready on version 4", |sf| {
            is_ready(sf) && sf.status.as_ref().and_then(|s| s.version.as_deref()) == Some("4")
        })
        .await;
    world
        .aws
        .set_limits(1000, 100)
        .await
        .expect("restore the limit");
    // AWS refused the first publish; the oldest version made room; retain 3 holds after
    assert_eq!(world.lambda_calls("PublishVersion"), 5);
    assert_eq!(world.aws_versions(TEAM, "products").await, [2, 3, 4]);
    assert_eq!(sf.status.expect("status").versions, vec!["2", "3", "4"]);
    let cp = world.providers().get(PROVIDER).await.expect("provider");
    let quota = cp
        .status
        .and_then(|s| s.function_version_quota)
        .expect("status.functionVersionQuota");
    assert_eq!(quota.limit, 100);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_function_keeps_its_arn_and_leaves_no_version_on_the_old_provider() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    let old = world.ready_provider(&net).await;
    world
        .apply_provider(harness::provider_manifest(
            "second",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
    let new = world
        .wait_provider("second", "Ready", |cp| {
            has_condition(harness::provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    let before = world.wait_function_ready(TEAM, "products").await;
    let arn = before.status.and_then(|s| s.function_arn).expect("arn");

    manifest["spec"]["capacityProviderRef"]["name"] = json!("second");
    world.apply_function(&manifest).await;
    let new_arn = new.status.as_ref().and_then(|s| s.arn.clone());
    let sf = world
        .wait_function(TEAM, "products", "Ready on the second provider", |sf| {
            is_ready(sf)
                && sf
                    .status
                    .as_ref()
                    .and_then(|s| s.capacity_provider_arn.clone())
                    == new_arn
                && sf.status.as_ref().map(|s| s.versions.clone()) == Some(vec!["2".into()])
        })
        .await;
    let status = sf.status.expect("status");
    assert_eq!(
        status.function_arn.as_deref(),
        Some(arn.as_str()),
        "moved, not recreated"
    );
    assert_eq!(status.version.as_deref(), Some("2"));
    let aws_name = |cp: &lmi_operator::api::CapacityProvider| {
        cp.status
            .as_ref()
            .and_then(|s| s.aws_name.clone())
            .expect("aws name")
    };
    assert!(world.attached_versions(&aws_name(&old)).await.is_empty());
    let mut on_new = world.attached_versions(&aws_name(&new)).await;
    on_new.sort();
    assert_eq!(on_new, [format!("{arn}:$LATEST"), format!("{arn}:2")]);
    assert_eq!(world.lambda_calls("CreateFunction"), 1);
    // the old provider can go now
    world.delete_provider(PROVIDER).await;
    world.wait_provider_gone(PROVIDER).await;
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_version_is_reported_with_awss_code_and_published_again_later() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;

    // Version 2 never starts: AWS has no capacity for it.
    world
        .aws
        .set_state_delay(Duration::from_secs(3600))
        .await
        .expect("slow states");
    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    let aws_name = world.function_aws_name(TEAM, "products");
    let published = eventually(CONVERGE, || async {
        world.aws_versions(TEAM, "products").await.contains(&2)
    })
    .await;
    assert!(published, "version 2 was not published");
    world
        .aws
        .fail_function_version(&aws_name, "2", "InsufficientCapacity", "No capacity left.")
        .await
        .expect("fail version 2");
    world
        .aws
        .set_state_delay(Duration::ZERO)
        .await
        .expect("fast states");
    let sf = world
        .wait_function(TEAM, "products", "reported as InsufficientCapacity", |sf| {
            has_condition(
                conditions(sf),
                "Ready",
                "False",
                Some("InsufficientCapacity"),
            )
        })
        .await;
    assert_eq!(version(&sf), Some("1"), "a failed version never serves");
    // after the slow retry (2 s here) it is deleted and published again as version 3
    let sf = world
        .wait_function(TEAM, "products", "Ready on version 3", |sf| {
            is_ready(sf) && version(sf) == Some("3")
        })
        .await;
    // retain 2: version 1 stays for rollback, the failed one is gone
    assert_eq!(sf.status.expect("status").versions, vec!["1", "3"]);
    world.wait_event("products", "DeletedFailedVersion").await;
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_created_together_converge_within_awss_write_rate_without_throttling() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    // The emulator allows AWS's one capacity-provider write per second; five providers ask
    // for at least five creates at once.
    let names: Vec<String> = (0..5).map(|i| format!("rate-{i}")).collect();
    for name in &names {
        world
            .apply_provider(harness::provider_manifest(
                name,
                &net.private_subnet_ids(),
                std::slice::from_ref(&net.security_group_id),
                &world.role_arn,
            ))
            .await;
    }
    for name in &names {
        world
            .wait_provider(name, "Ready", |cp| {
                has_condition(harness::provider_conditions(cp), "Ready", "True", None)
            })
            .await;
    }
    let throttled: Vec<_> = world
        .proxy
        .log()
        .into_iter()
        .filter(|r| r.outcome == lmi_test_support::Outcome::Forwarded(429))
        .map(|r| r.operation)
        .collect();
    assert!(
        throttled.is_empty(),
        "the operator throttled itself: {throttled:?}"
    );
    assert_eq!(world.lambda_calls("CreateCapacityProvider"), 5);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_tag_and_scaling_bound_return_aws_to_its_defaults() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    manifest["spec"]["tags"]["cost-center"] = json!("42");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    let tags = |f: Option<aws_sdk_lambda::operation::get_function::GetFunctionOutput>| {
        f.and_then(|f| f.tags().cloned()).unwrap_or_default()
    };
    assert_eq!(
        tags(world.aws_function(TEAM, "products").await)
            .get("cost-center")
            .map(String::as_str),
        Some("42")
    );

    // Git drops the tag and the maximum: AWS goes back to no tag and Lambda's default.
    manifest["spec"]["tags"]
        .as_object_mut()
        .expect("tags")
        .remove("cost-center");
    manifest["spec"]["scaling"] = json!({"minExecutionEnvironments": 1});
    world.apply_function(&manifest).await;
    let reverted = eventually(CONVERGE, || async {
        let (held, _) = world.aws_scaling(TEAM, "products", "1").await;
        !tags(world.aws_function(TEAM, "products").await).contains_key("cost-center")
            && held == Some((Some(1), None))
    })
    .await;
    assert!(
        reverted,
        "AWS kept what Git removed: {:?}",
        world.aws_scaling(TEAM, "products", "1").await
    );
    world.wait_event("products", "UntaggedFunction").await;
    assert_eq!(
        world.lambda_calls("PublishVersion"),
        1,
        "tags and scaling need no version"
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_kept_for_rollback_hold_no_capacity_until_rolled_back_to() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;

    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "products", "version 1 retired", |sf| {
            is_ready(sf)
                && version(sf) == Some("2")
                && sf.status.as_ref().map(|s| s.retired_versions.clone()) == Some(vec!["1".into()])
        })
        .await;
    assert_eq!(sf.status.expect("status").versions, vec!["1", "2"]);
    assert_eq!(
        world.aws_scaling(TEAM, "products", "1").await.0,
        Some((Some(0), Some(0)))
    );
    assert_eq!(
        world.aws_scaling(TEAM, "products", "2").await.0,
        Some((Some(1), Some(4)))
    );

    // Roll back: version 1 serves the spec again and gets its capacity back; 2 gives its up.
    manifest["spec"]["memoryMiB"] = json!(4096);
    world.apply_function(&manifest).await;
    world
        .wait_function(TEAM, "products", "rolled back to version 1", |sf| {
            is_ready(sf)
                && version(sf) == Some("1")
                && sf.status.as_ref().map(|s| s.retired_versions.clone()) == Some(vec!["2".into()])
        })
        .await;
    assert_eq!(
        world.aws_scaling(TEAM, "products", "1").await.0,
        Some((Some(1), Some(4)))
    );
    assert_eq!(
        world.aws_scaling(TEAM, "products", "2").await.0,
        Some((Some(0), Some(0)))
    );
    assert_eq!(
        world.lambda_calls("PublishVersion"),
        2,
        "a rollback publishes nothing"
    );
    world.wait_event("products", "ReactivatedVersion").await;
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_request_bursts_could_exhaust_its_memory_is_warned_about_once() {
    // 100 slots x 6 MiB (the largest event) = 600 MiB, more than a quarter of 2,048 MiB: the
    // published version is warned about once; the harness function (32 slots, 4,096 MiB) is not.
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world.apply_function(&world.function(TEAM, "roomy")).await;
    let mut tight = world.function(TEAM, "tight");
    tight["spec"]["memoryMiB"] = json!(2048);
    tight["spec"]["maxConcurrencyPerEnvironment"] = json!(100);
    world.apply_function(&tight).await;
    world.wait_function_ready(TEAM, "roomy").await;
    let ready = world.wait_function_ready(TEAM, "tight").await;

    // A pass records its events before its status: Ready means they are there.
    let warned = world.warnings("tight", "RequestMemoryHeadroom").await;
    assert_eq!(warned.len(), 1, "{warned:?}");
    let note = warned[0].note.as_deref().unwrap_or_default();
    assert!(
        note.starts_with("100 invocation slots (maxConcurrencyPerEnvironment) × 6 MiB")
            && note.contains("= 600 MiB")
            && note.contains("memoryMiB 2048"),
        "{note}"
    );
    assert!(
        world
            .warnings("roomy", "RequestMemoryHeadroom")
            .await
            .is_empty()
    );

    // Resyncs that publish nothing do not repeat it.
    let synced = ready
        .status
        .and_then(|s| s.last_sync_time)
        .expect("lastSyncTime")
        .0;
    world.wait_resynced(TEAM, "tight", synced).await;
    let again = world.warnings("tight", "RequestMemoryHeadroom").await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].series, warned[0].series,
        "the warning was repeated"
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_removed_from_the_spec_returns_to_lambdas_default_in_a_new_version() {
    // The harness function sets 32 invocations per environment; Git drops the field: $LATEST
    // leaves it to Lambda again (the update leaves the member out), a version with Lambda's
    // default is published and served, and resyncs find nothing more to do.
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    let concurrency = |f: Option<aws_sdk_lambda::operation::get_function::GetFunctionOutput>| {
        f.and_then(|f| f.configuration().cloned())
            .and_then(|c| c.capacity_provider_config().cloned())
            .and_then(|c| {
                c.lambda_managed_instances_capacity_provider_config()
                    .and_then(|l| l.per_execution_environment_max_concurrency())
            })
    };
    assert_eq!(
        concurrency(world.aws_function(TEAM, "products").await),
        Some(32)
    );

    manifest["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("maxConcurrencyPerEnvironment");
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "products", "serving version 2", |sf| {
            is_ready(sf) && version(sf) == Some("2")
        })
        .await;
    assert_eq!(
        concurrency(world.aws_function(TEAM, "products").await),
        None
    );
    let published = world
        .lambda
        .get_function_configuration()
        .function_name(world.function_aws_name(TEAM, "products"))
        .qualifier("2")
        .send()
        .await
        .expect("version 2");
    assert_eq!(
        published
            .capacity_provider_config()
            .and_then(|c| c.lambda_managed_instances_capacity_provider_config())
            .and_then(|l| l.per_execution_environment_max_concurrency()),
        None,
        "version 2 still holds the removed concurrency"
    );
    assert!(!has_condition(conditions(&sf), "Drifted", "True", None));
    let calls = world.quiet_window(Duration::from_secs(5)).await;
    let mutating: Vec<_> = calls.iter().filter(|r| !r.is_read_only()).collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_is_put_only_on_an_active_version_so_lambda_never_refuses_it() {
    // Lambda answers a scaling put on a version still stabilising (Pending) with a conflict;
    // with versions Pending 2 s, the operator waits for Active and is never refused.
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world
        .aws
        .set_state_delay(Duration::from_secs(2))
        .await
        .expect("state delay");
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    manifest["spec"]["memoryMiB"] = json!(8192);
    manifest["spec"]["scaling"] =
        json!({"minExecutionEnvironments": 2, "maxExecutionEnvironments": 3});
    world.apply_function(&manifest).await;
    world
        .wait_function(TEAM, "products", "Ready on version 2", |sf| {
            is_ready(sf) && version(sf) == Some("2")
        })
        .await;
    let (held, _) = world.aws_scaling(TEAM, "products", "2").await;
    assert_eq!(held, Some((Some(2), Some(3))));
    let puts: Vec<_> = world
        .proxy
        .log()
        .into_iter()
        .filter(|r| r.operation == "PutFunctionScalingConfig")
        .collect();
    assert!(!puts.is_empty(), "no scaling was put");
    assert!(
        puts.iter()
            .all(|r| !matches!(r.outcome, lmi_test_support::Outcome::Forwarded(s) if s >= 400)),
        "Lambda refused a scaling put: {puts:?}"
    );
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_past_its_providers_version_budget_is_refused_until_room_is_made() {
    // The provider holds 8 versions here; the first function needs retain 4 + $LATEST + one
    // being rolled out = 6, the second 2 + 2 = 4: the second is refused before any AWS call,
    // and admitted once the first keeps fewer versions.
    let (mut world, net) = World::for_functions().await;
    world.config.max_versions_per_capacity_provider = 8;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut first = world.function(TEAM, "first");
    first["spec"]["versions"] = json!({"retain": 4});
    world.apply_function(&first).await;
    world.wait_function_ready(TEAM, "first").await;
    world.apply_function(&world.function(TEAM, "second")).await;
    let refused = world
        .wait_function(TEAM, "second", "refused for its version budget", |sf| {
            has_condition(
                conditions(sf),
                "Ready",
                "False",
                Some("VersionBudgetExceeded"),
            )
        })
        .await;
    let message = &harness::condition(conditions(&refused), "Ready")
        .expect("Ready")
        .message;
    assert!(
        message.contains("hold 6 of its 8") && message.contains("needs 4"),
        "{message}"
    );
    assert!(world.aws_function(TEAM, "second").await.is_none());

    first["spec"]["versions"] = json!({"retain": 1});
    world.apply_function(&first).await;
    world.wait_function_ready(TEAM, "second").await;
    // The provider counts what AWS holds at its next pass: $LATEST and the serving version of
    // each function, within its limit.
    let attached = world
        .attached_versions(&identity::capacity_provider_name(
            harness::CLUSTER,
            PROVIDER,
        ))
        .await
        .len();
    assert!((4..=8).contains(&attached), "{attached} versions attached");
    world
        .wait_provider(PROVIDER, "counting the versions AWS holds", |cp| {
            cp.status
                .as_ref()
                .and_then(|s| s.function_version_quota.as_ref())
                .is_some_and(|q| q.limit == 8 && q.used == attached as i64)
        })
        .await;
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_non_invocable_version_is_not_ready_until_it_can_be_invoked() {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "products").await;
    let aws_name = world.function_aws_name(TEAM, "products");
    // The next version is published (Pending 3 s, time to catch it) and held ActiveNonInvocable:
    // version 1 keeps serving.
    world
        .aws
        .set_state_delay(Duration::from_secs(3))
        .await
        .expect("state delay");
    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    assert!(
        eventually(CONVERGE, || async {
            world.aws_versions(TEAM, "products").await.contains(&2)
        })
        .await,
        "version 2 was never published"
    );
    world
        .aws
        .force_function_state(&aws_name, "2", Some("ActiveNonInvocable"))
        .await
        .expect("force the state");
    let sf = world
        .wait_function(
            TEAM,
            "products",
            "waiting for version 2 to be invocable",
            |sf| {
                !is_ready(sf)
                    && harness::condition(conditions(sf), "Ready").is_some_and(|c| {
                        c.message.contains("version 2") && c.message.contains("ActiveNonInvocable")
                    })
            },
        )
        .await;
    assert_eq!(
        version(&sf),
        Some("1"),
        "a version that cannot be invoked was served"
    );
    world
        .aws
        .force_function_state(&aws_name, "2", None)
        .await
        .expect("release the state");
    world
        .wait_function(TEAM, "products", "Ready on version 2", |sf| {
            is_ready(sf) && version(sf) == Some("2")
        })
        .await;
    world.stop_operator().await;
}
