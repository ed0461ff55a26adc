//! CapacityProvider end to end: the real controller against a real kube-apiserver and the
//! AWS emulator (through the fault proxy).

#[path = "../harness/mod.rs"]
mod harness;

use std::collections::HashMap;
use std::time::Duration;

use harness::{
    CLUSTER, World, eventually, has_condition, managed_network_manifest, provider_conditions,
    provider_manifest,
};
use lmi_operator::api::capacity_provider::{Egress, ProviderState};
use lmi_operator::identity;
use lmi_test_support::{FaultPlan, Network, Outcome};

fn aws_name(name: &str) -> String {
    identity::capacity_provider_name(CLUSTER, name)
}

fn ready(cp: &lmi_operator::api::CapacityProvider) -> bool {
    has_condition(provider_conditions(cp), "Ready", "True", None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_provider_becomes_active_and_ready_with_the_right_aws_request() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    let mut manifest = provider_manifest(
        "graviton",
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    manifest["spec"]["instances"]["allowedInstanceTypes"] = serde_json::json!(["m7g.*"]);
    manifest["spec"]["tags"] = serde_json::json!({"team": "search"});
    world.apply_provider(manifest).await;

    let cp = world.wait_provider("graviton", "Ready", ready).await;
    let status = cp.status.expect("status");
    assert_eq!(status.state, Some(ProviderState::Active));
    assert_eq!(
        status.aws_name.as_deref(),
        Some(aws_name("graviton").as_str())
    );
    assert_eq!(status.observed_generation, cp.metadata.generation);
    let network = status.network.expect("network");
    assert_eq!(network.vpc_id.as_deref(), Some(net.vpc_id.as_str()));
    assert_eq!(network.subnets.len(), 2);
    assert!(
        network
            .subnets
            .iter()
            .all(|s| s.egress == Egress::NatGateway)
    );
    assert!(
        network
            .subnets
            .iter()
            .any(|s| s.availability_zone == "us-east-1b")
    );
    assert!(!status.instance_types.is_empty());
    assert!(status.instance_types.iter().all(|t| t.starts_with("m7g.")));
    for ready_type in ["NetworkReady", "InstanceTypesAvailable", "Synced"] {
        assert!(
            has_condition(&status.conditions, ready_type, "True", None),
            "{ready_type}"
        );
    }
    assert!(has_condition(
        &status.conditions,
        "Drifted",
        "False",
        Some("InSync")
    ));

    // What AWS holds is what the manifest asked for.
    let got = world
        .lambda
        .get_capacity_provider()
        .capacity_provider_name(aws_name("graviton"))
        .send()
        .await
        .expect("provider in AWS");
    let p = got.capacity_provider.expect("provider");
    assert_eq!(Some(p.capacity_provider_arn().to_owned()), status.arn);
    let vpc = p.vpc_config().expect("vpc config");
    let mut subnets = vpc.subnet_ids().to_vec();
    subnets.sort();
    let mut expected = net.private_subnet_ids();
    expected.sort();
    assert_eq!(subnets, expected);
    assert_eq!(
        vpc.security_group_ids(),
        std::slice::from_ref(&net.security_group_id)
    );
    assert_eq!(
        p.permissions_config()
            .expect("permissions")
            .capacity_provider_operator_role_arn(),
        world.role_arn
    );
    let req = p.instance_requirements().expect("instance requirements");
    assert_eq!(req.architectures()[0].as_str(), "arm64");
    assert_eq!(req.allowed_instance_types(), ["m7g.*"]);
    let scaling = p.capacity_provider_scaling_config().expect("scaling");
    assert_eq!(scaling.max_v_cpu_count(), Some(64));
    let tags = world
        .lambda
        .list_tags()
        .resource(p.capacity_provider_arn())
        .send()
        .await
        .expect("tags")
        .tags
        .unwrap_or_default();
    assert_eq!(tags.get("team").map(String::as_str), Some("search"));
    assert_eq!(
        tags.get(identity::TAG_CLUSTER).map(String::as_str),
        Some(CLUSTER)
    );
    assert_eq!(tags.get(identity::TAG_UID), cp.metadata.uid.as_ref());
    assert_eq!(
        world
            .operator_calls(false)
            .iter()
            .filter(|o| *o == "CreateCapacityProvider")
            .count(),
        1
    );
    world.stop_operator().await;
}

/// A broken network is refused with the matching condition before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_networks_get_the_matching_condition_and_no_provider() {
    let mut world = World::start().await;
    let good = world.good_network().await;
    let public = Network::builder()
        .public_subnet("us-east-1a")
        .build(&world.ec2)
        .await
        .expect("public");
    let other_vpc = Network::builder()
        .cidr("10.9.0.0/16")
        .private_subnet("us-east-1b")
        .build(&world.ec2)
        .await
        .expect("second VPC");
    world.start_operator();
    let cases = [
        (
            "public",
            public.subnet_ids(lmi_test_support::Egress::InternetGateway),
            public.security_group_id.clone(),
            "PublicSubnet",
            "internet gateway",
        ),
        (
            "two-vpcs",
            vec![
                good.private_subnet_ids()[0].clone(),
                other_vpc.private_subnet_ids()[0].clone(),
            ],
            good.security_group_id.clone(),
            "MultipleVpcs",
            "more than one VPC",
        ),
        (
            "missing",
            vec!["subnet-0123456789abcdef0".to_owned()],
            good.security_group_id.clone(),
            "NetworkNotFound",
            "subnet-0123456789abcdef0 not found",
        ),
    ];
    for (name, subnets, group, _, _) in &cases {
        world
            .apply_provider(provider_manifest(
                name,
                subnets,
                std::slice::from_ref(group),
                &world.role_arn,
            ))
            .await;
    }
    for (name, _, _, reason, text) in &cases {
        let cp = world
            .wait_provider(name, reason, |cp| {
                has_condition(
                    provider_conditions(cp),
                    "NetworkReady",
                    "False",
                    Some(reason),
                )
            })
            .await;
        let conditions = provider_conditions(&cp);
        let ready = harness::condition(conditions, "Ready").expect("Ready");
        assert_eq!(ready.status, "False", "{name}");
        assert_eq!(ready.reason, *reason, "{name}");
        let message = &harness::condition(conditions, "NetworkReady")
            .expect("NetworkReady")
            .message;
        assert!(message.contains(text), "{name}: {message}");
    }
    assert!(
        world.aws_provider_names().await.is_empty(),
        "nothing may be created in AWS"
    );
    assert!(
        !world
            .operator_calls(true)
            .iter()
            .any(|o| o.starts_with("Create")),
        "no mutating call: {:?}",
        world.operator_calls(true)
    );
    // No hot loop: a blocked provider is looked at again only slowly.
    world.proxy.clear_log();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = world.operator_calls(false).len();
    assert!(
        calls < 120,
        "{calls} AWS calls in 4 s for 3 blocked providers"
    );
    world.stop_operator().await;
}

/// Subnets without any egress work but lose telemetry: a visible warning, not a block; with
/// `telemetryEndpoints: Create` the operator creates the endpoints and the warning clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_subnets_warn_and_telemetry_endpoints_fix_them() {
    let mut world = World::start().await;
    let isolated = Network::isolated(&world.ec2)
        .await
        .expect("isolated network");
    let subnets = isolated.subnet_ids(lmi_test_support::Egress::None);
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "warned",
            &subnets,
            std::slice::from_ref(&isolated.security_group_id),
            &world.role_arn,
        ))
        .await;
    let cp = world
        .wait_provider("warned", "created with a warning", |cp| {
            has_condition(
                provider_conditions(cp),
                "NetworkReady",
                "False",
                Some("NoTelemetryEgress"),
            ) && cp.status.as_ref().and_then(|s| s.arn.as_ref()).is_some()
        })
        .await;
    let message = &harness::condition(provider_conditions(&cp), "NetworkReady")
        .expect("cond")
        .message;
    assert!(message.contains("logs and traces are lost"), "{message}");

    world
        .apply_provider(managed_network_manifest(
            "endpoints",
            &subnets,
            &world.role_arn,
        ))
        .await;
    let cp = world
        .wait_provider("endpoints", "Ready with endpoints", |cp| {
            ready(cp) && has_condition(provider_conditions(cp), "NetworkReady", "True", None)
        })
        .await;
    let network = cp.status.and_then(|s| s.network).expect("network");
    assert_eq!(
        network.vpc_endpoint_ids.len(),
        3,
        "logs, monitoring and X-Ray endpoints"
    );
    assert!(
        network
            .subnets
            .iter()
            .all(|s| s.egress == Egress::VpcEndpoints)
    );
    let sg = network
        .managed_security_group_id
        .expect("managed security group");
    assert_eq!(network.security_group_ids, vec![sg.clone()]);
    let groups = world
        .ec2
        .describe_security_groups()
        .group_ids(&sg)
        .send()
        .await
        .expect("describe sg");
    let group = &groups.security_groups()[0];
    let egress: Vec<(Option<i32>, Vec<String>)> = group
        .ip_permissions_egress()
        .iter()
        .map(|p| {
            (
                p.from_port(),
                p.ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_owned))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        egress,
        vec![(Some(443), vec!["0.0.0.0/0".to_owned()])],
        "HTTPS egress only"
    );

    // Deleting removes the provider, the endpoints and both security groups.
    world.delete_provider("endpoints").await;
    world.wait_provider_gone("endpoints").await;
    let endpoints = world
        .ec2
        .describe_vpc_endpoints()
        .send()
        .await
        .expect("endpoints");
    let left: Vec<_> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            network
                .vpc_endpoint_ids
                .iter()
                .any(|id| Some(id.as_str()) == e.vpc_endpoint_id())
        })
        .filter(|e| !matches!(e.state().map(|s| s.as_str()), Some("deleted" | "deleting")))
        .collect();
    assert!(left.is_empty(), "endpoints left: {left:?}");
    let sgs = world
        .ec2
        .describe_security_groups()
        .send()
        .await
        .expect("sgs");
    assert!(
        !sgs.security_groups()
            .iter()
            .any(|g| g.group_id() == Some(sg.as_str()))
    );
    assert_eq!(world.aws_provider_names().await, vec![aws_name("warned")]);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaling_change_is_applied_in_place() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    let manifest = provider_manifest(
        "scaled",
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    world.apply_provider(manifest.clone()).await;
    let before = world.wait_provider("scaled", "Ready", ready).await;

    let mut changed = manifest;
    changed["spec"]["scaling"] =
        serde_json::json!({"mode": "Manual", "maxVCpuCount": 128, "targetCpuUtilization": 55.0});
    world.apply_provider(changed).await;
    let after = world
        .wait_provider("scaled", "updated", |cp| {
            ready(cp)
                && cp.status.as_ref().and_then(|s| s.observed_generation) == cp.metadata.generation
        })
        .await;
    assert_eq!(
        after.status.as_ref().and_then(|s| s.arn.clone()),
        before.status.and_then(|s| s.arn)
    );
    let p = world
        .lambda
        .get_capacity_provider()
        .capacity_provider_name(aws_name("scaled"))
        .send()
        .await
        .expect("get")
        .capacity_provider
        .expect("provider");
    let scaling = p.capacity_provider_scaling_config().expect("scaling");
    assert_eq!(scaling.max_v_cpu_count(), Some(128));
    assert_eq!(scaling.scaling_mode().map(|m| m.as_str()), Some("Manual"));
    assert_eq!(scaling.scaling_policies()[0].target_value(), 55.0);
    let calls = world.operator_calls(true);
    assert_eq!(
        calls
            .iter()
            .filter(|o| *o == "CreateCapacityProvider")
            .count(),
        1
    );
    assert!(calls.iter().any(|o| o == "UpdateCapacityProvider"));
    world.stop_operator().await;
}

async fn set_max_vcpu_out_of_band(world: &World, name: &str, value: i32) {
    world
        .lambda
        .update_capacity_provider()
        .capacity_provider_name(aws_name(name))
        .capacity_provider_scaling_config(
            aws_sdk_lambda::types::CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(value)
                .build(),
        )
        .send()
        .await
        .expect("out-of-band update");
}

async fn aws_max_vcpu(world: &World, name: &str) -> Option<i32> {
    world
        .lambda
        .get_capacity_provider()
        .capacity_provider_name(aws_name(name))
        .send()
        .await
        .expect("get")
        .capacity_provider
        .and_then(|p| {
            p.capacity_provider_scaling_config()
                .and_then(|s| s.max_v_cpu_count())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_changes_are_corrected_or_only_reported_by_policy() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    let subnets = net.private_subnet_ids();
    let sg = [net.security_group_id.clone()];
    world
        .apply_provider(provider_manifest(
            "corrected",
            &subnets,
            &sg,
            &world.role_arn,
        ))
        .await;
    let mut reported = provider_manifest("reported", &subnets, &sg, &world.role_arn);
    reported["spec"]["driftPolicy"] = "Report".into();
    world.apply_provider(reported).await;
    world.wait_provider("corrected", "Ready", ready).await;
    world.wait_provider("reported", "Ready", ready).await;

    set_max_vcpu_out_of_band(&world, "corrected", 999).await;
    set_max_vcpu_out_of_band(&world, "reported", 999).await;

    let restored = eventually(harness::CONVERGE, || async {
        aws_max_vcpu(&world, "corrected").await == Some(64)
    })
    .await;
    assert!(restored, "Correct restores maxVCpuCount");
    let cp = world
        .wait_provider("reported", "Drifted", |cp| {
            has_condition(
                provider_conditions(cp),
                "Drifted",
                "True",
                Some("DriftDetected"),
            )
        })
        .await;
    let drift = cp.status.expect("status").drift;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].field, "scaling.maxVCpuCount");
    assert_eq!(
        (drift[0].desired.as_str(), drift[0].observed.as_str()),
        ("64", "999")
    );
    // Several resyncs later, Report has still not touched AWS.
    world.quiet_window(Duration::from_secs(5)).await;
    assert_eq!(aws_max_vcpu(&world, "reported").await, Some(999));
    // The corrected one settles back to in sync.
    world
        .wait_provider("corrected", "in sync", |cp| {
            has_condition(provider_conditions(cp), "Drifted", "False", Some("InSync"))
        })
        .await;
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_state_resync_makes_no_mutating_call() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    let mut manifest = provider_manifest(
        "steady",
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    manifest["spec"]["logging"] = serde_json::json!({"systemLogLevel": "WARN"});
    manifest["spec"]["propagateTags"] =
        serde_json::json!({"mode": "Explicit", "explicitTags": {"team": "search"}});
    world.apply_provider(manifest).await;
    world.wait_provider("steady", "Ready", ready).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    world.proxy.clear_log();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let all = world.operator_calls(false);
    let resyncs = all.iter().filter(|o| *o == "GetCapacityProvider").count();
    assert!(
        resyncs >= 2,
        "expected at least two resyncs, saw {resyncs}: {all:?}"
    );
    assert_eq!(
        world.operator_calls(true),
        Vec::<String>::new(),
        "mutating calls in steady state"
    );
    world.stop_operator().await;
}

async fn attach_function(world: &World, provider_arn: &str) -> String {
    let zip = {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file(
            "bootstrap",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .expect("zip");
        z.write_all(b"#!/bin/sh\n").expect("zip");
        z.finish().expect("zip");
        buf.into_inner()
    };
    let config = aws_sdk_lambda::types::CapacityProviderConfig::builder()
        .lambda_managed_instances_capacity_provider_config(
            aws_sdk_lambda::types::LambdaManagedInstancesCapacityProviderConfig::builder()
                .capacity_provider_arn(provider_arn)
                .build()
                .expect("lmi config"),
        )
        .build();
    world
        .lambda
        .create_function()
        .function_name("attached")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(&world.role_arn)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(zip.into())
                .build(),
        )
        .capacity_provider_config(config)
        .memory_size(2048)
        .send()
        .await
        .expect("create function");
    let v = world
        .lambda
        .publish_version()
        .function_name("attached")
        .send()
        .await
        .expect("publish");
    v.function_arn().expect("arn").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_is_blocked_while_versions_are_attached_then_completes() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "busy",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
    let cp = world.wait_provider("busy", "Ready", ready).await;
    let arn = cp.status.and_then(|s| s.arn).expect("arn");
    let version = attach_function(&world, &arn).await;

    world.delete_provider("busy").await;
    let blocked = world
        .wait_provider("busy", "DeletionBlocked", |cp| {
            has_condition(
                provider_conditions(cp),
                "DeletionBlocked",
                "True",
                Some("VersionsAttached"),
            )
        })
        .await;
    let message = &harness::condition(provider_conditions(&blocked), "DeletionBlocked")
        .expect("cond")
        .message;
    assert!(
        message.contains(&version),
        "{message} should list {version}"
    );
    assert_eq!(world.aws_provider_names().await, vec![aws_name("busy")]);

    world
        .lambda
        .delete_function()
        .function_name("attached")
        .send()
        .await
        .expect("delete function");
    world.wait_provider_gone("busy").await;
    assert!(world.aws_provider_names().await.is_empty());
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_leaves_the_aws_provider_in_place() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    let mut manifest = provider_manifest(
        "kept",
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    manifest["spec"]["deletionPolicy"] = "Retain".into();
    world.apply_provider(manifest).await;
    world.wait_provider("kept", "Ready", ready).await;
    world.delete_provider("kept").await;
    world.wait_provider_gone("kept").await;
    assert_eq!(world.aws_provider_names().await, vec![aws_name("kept")]);
    assert!(
        !world
            .operator_calls(true)
            .iter()
            .any(|o| o.starts_with("Delete"))
    );
    world.stop_operator().await;
}

async fn create_foreign_provider(world: &World, name: &str, net: &Network) {
    world
        .lambda
        .create_capacity_provider()
        .capacity_provider_name(name)
        .vpc_config(
            aws_sdk_lambda::types::CapacityProviderVpcConfig::builder()
                .set_subnet_ids(Some(net.private_subnet_ids()))
                .security_group_ids(&net.security_group_id)
                .build()
                .expect("vpc"),
        )
        .permissions_config(
            aws_sdk_lambda::types::CapacityProviderPermissionsConfig::builder()
                .capacity_provider_operator_role_arn(&world.role_arn)
                .build()
                .expect("perms"),
        )
        .tags("owner", "someone-else")
        .send()
        .await
        .expect("foreign provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_same_named_provider_is_never_touched_unless_adopted() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    create_foreign_provider(&world, "shared-name", &net).await;
    world.start_operator();
    let mut manifest = provider_manifest(
        "intruder",
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    manifest["spec"]["awsName"] = "shared-name".into();
    world.apply_provider(manifest.clone()).await;
    let cp = world
        .wait_provider("intruder", "NameConflict", |cp| {
            has_condition(
                provider_conditions(cp),
                "Ready",
                "False",
                Some("NameConflict"),
            )
        })
        .await;
    let message = &harness::condition(provider_conditions(&cp), "Ready")
        .expect("Ready")
        .message;
    assert!(message.contains("spec.adopt: true"), "{message}");
    assert!(
        world.operator_calls(true).is_empty(),
        "touched a foreign provider: {:?}",
        world.operator_calls(true)
    );

    // Deleting the object leaves the foreign provider alone.
    world.delete_provider("intruder").await;
    world.wait_provider_gone("intruder").await;
    assert_eq!(
        world.aws_provider_names().await,
        vec!["shared-name".to_owned()]
    );
    assert!(world.operator_calls(true).is_empty());

    // Asked to adopt, the operator takes it over and tags it as its own.
    manifest["metadata"]["name"] = "adopter".into();
    manifest["spec"]["adopt"] = true.into();
    world.apply_provider(manifest).await;
    let cp = world.wait_provider("adopter", "Ready", ready).await;
    let tags: HashMap<String, String> = world
        .lambda
        .list_tags()
        .resource(cp.status.and_then(|s| s.arn).expect("arn"))
        .send()
        .await
        .expect("tags")
        .tags
        .unwrap_or_default();
    assert_eq!(
        tags.get(identity::TAG_OBJECT).map(String::as_str),
        Some("adopter")
    );
    assert_eq!(tags.get("owner").map(String::as_str), Some("someone-else"));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_create_converges_without_a_duplicate() {
    let mut world = World::start().await;
    world
        .aws
        .set_state_delay(Duration::from_secs(2))
        .await
        .expect("delay");
    let net = world.good_network().await;
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "crashy",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
    // Kill the operator as soon as the create reached AWS, before it could record anything.
    let created = eventually(Duration::from_secs(30), || async {
        world
            .operator_calls(true)
            .iter()
            .any(|o| o == "CreateCapacityProvider")
    })
    .await;
    assert!(created);
    world.kill_operator().await;
    world.start_operator();
    world.wait_provider("crashy", "Ready", ready).await;
    assert_eq!(world.aws_provider_names().await, vec![aws_name("crashy")]);
    let creates = world
        .operator_calls(true)
        .iter()
        .filter(|o| *o == "CreateCapacityProvider")
        .count();
    assert_eq!(creates, 1, "{:?}", world.operator_calls(true));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_converges_through_throttling_server_errors_and_latency() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.proxy.set_plan(
        FaultPlan::seeded(7)
            .throttle(0.10)
            .internal_error(0.05)
            .latency(Duration::from_millis(20)),
    );
    world.start_operator();
    for name in ["flaky-a", "flaky-b"] {
        world
            .apply_provider(provider_manifest(
                name,
                &net.private_subnet_ids(),
                std::slice::from_ref(&net.security_group_id),
                &world.role_arn,
            ))
            .await;
    }
    for name in ["flaky-a", "flaky-b"] {
        world.wait_provider(name, "Ready", ready).await;
    }
    assert_eq!(
        world.aws_provider_names().await,
        vec![aws_name("flaky-a"), aws_name("flaky-b")]
    );
    let log = world.proxy.log();
    assert!(
        log.iter()
            .any(|r| !matches!(r.outcome, lmi_test_support::Outcome::Forwarded { .. })),
        "the fault plan injected nothing"
    );
    world.proxy.set_plan(FaultPlan::none());
    world.delete_provider("flaky-a").await;
    world.wait_provider_gone("flaky-a").await;
    assert_eq!(world.aws_provider_names().await, vec![aws_name("flaky-b")]);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_tags_removed_from_the_spec_return_aws_to_its_defaults() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    let mut manifest = provider_manifest(
        "reverted",
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    manifest["spec"]["tags"] = serde_json::json!({"team": "search", "cost-center": "42"});
    manifest["spec"]["logging"] = serde_json::json!({"systemLogLevel": "DEBUG"});
    manifest["spec"]["propagateTags"] =
        serde_json::json!({"mode": "Explicit", "explicitTags": {"owner": "search"}});
    world.apply_provider(manifest.clone()).await;
    world.wait_provider("reverted", "Ready", ready).await;
    assert_eq!(aws_max_vcpu(&world, "reverted").await, Some(64));

    // Git drops the bound, the logging and propagation settings and one tag.
    let spec = manifest["spec"].as_object_mut().expect("spec");
    spec.remove("logging");
    spec.remove("propagateTags");
    spec["scaling"] = serde_json::json!({"mode": "Auto"});
    spec["tags"] = serde_json::json!({"team": "search"});
    world.apply_provider(manifest).await;
    let reverted = eventually(Duration::from_secs(60), || async {
        let p = world
            .lambda
            .get_capacity_provider()
            .capacity_provider_name(aws_name("reverted"))
            .send()
            .await
            .expect("get")
            .capacity_provider
            .expect("provider");
        let tags = world
            .lambda
            .list_tags()
            .resource(p.capacity_provider_arn())
            .send()
            .await
            .expect("tags")
            .tags
            .unwrap_or_default();
        let level = p
            .telemetry_config()
            .and_then(|t| t.logging_config())
            .and_then(|l| l.system_log_level())
            .map(|l| l.as_str().to_owned());
        let propagation = p
            .propagate_tags()
            .and_then(|t| t.mode())
            .map(|m| m.as_str().to_owned());
        p.capacity_provider_scaling_config()
            .and_then(|s| s.max_v_cpu_count())
            .is_none()
            && !tags.contains_key("cost-center")
            && tags.get("team").map(String::as_str) == Some("search")
            && level.as_deref() == Some("INFO")
            && propagation.as_deref() != Some("Explicit")
    })
    .await;
    assert!(reverted, "AWS kept a setting or tag Git removed");
    let cp = world.wait_provider("reverted", "in sync", ready).await;
    let managed = cp.status.expect("status").managed_tags;
    assert!(managed.contains(&"team".to_owned()));
    assert!(!managed.contains(&"cost-center".to_owned()));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_role_created_moments_ago_is_retried_until_iam_has_propagated_it() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    world
        .aws
        .set_role_propagation(Duration::from_secs(4))
        .await
        .expect("propagation delay");
    let fresh = world
        .aws
        .create_role("operator-created-just-now")
        .await
        .expect("role");
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "fresh-role",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &fresh,
        ))
        .await;
    world.wait_provider("fresh-role", "Ready", ready).await;
    // refused while IAM propagated, then created once, without waiting for the slow retry
    let attempts = world.lambda_calls("CreateCapacityProvider");
    assert!(attempts >= 2, "{attempts} CreateCapacityProvider calls");
    world
        .aws
        .set_role_propagation(Duration::ZERO)
        .await
        .expect("no delay");
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_reported_once_retried_slowly_and_cleared_once_iam_allows() {
    // IAM refuses the create (the emulator answers 403 AccessDeniedException as AWS does): the
    // provider is not Ready for AccessDenied with AWS's message, the refusal is a single Warning
    // event however often the slow retry meets it, and the SDK does not retry it within a call.
    let mut world = World::start().await;
    let net = world.good_network().await;
    world
        .aws
        .deny_actions(&["lambda:CreateCapacityProvider"])
        .await
        .expect("deny");
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "denied",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
    let cp = world
        .wait_provider("denied", "AccessDenied", |cp| {
            has_condition(
                provider_conditions(cp),
                "Ready",
                "False",
                Some("AccessDenied"),
            )
        })
        .await;
    let not_ready = harness::condition(provider_conditions(&cp), "Ready").expect("Ready");
    assert!(
        not_ready
            .message
            .contains("not authorized to perform: lambda:CreateCapacityProvider"),
        "{}",
        not_ready.message
    );
    assert!(has_condition(
        provider_conditions(&cp),
        "Synced",
        "False",
        Some("AccessDenied")
    ));

    // Let the operator meet the refusal three more times (terminal retries, 2 s apart here).
    let first = world.lambda_calls("CreateCapacityProvider");
    assert!(
        eventually(Duration::from_secs(30), || async {
            world.lambda_calls("CreateCapacityProvider") >= first + 3
        })
        .await,
        "the operator stopped retrying a denied create"
    );
    let objects = world.warnings("denied", "AccessDenied").await.len();
    assert_eq!(objects, 1, "one Warning event for one unchanged refusal");
    let creates: Vec<_> = world
        .proxy
        .log()
        .into_iter()
        .filter(|r| r.operation == "CreateCapacityProvider")
        .collect();
    assert!(
        creates
            .iter()
            .all(|r| r.attempt == Some(1) && r.outcome == Outcome::Forwarded(403)),
        "a refusal is not retried within a call: {creates:?}"
    );
    assert!(world.aws_provider_names().await.is_empty());

    // IAM allows it now: the next retry creates it, and the refusal is not reported again.
    world.aws.deny_actions(&[]).await.expect("allow");
    world.wait_provider("denied", "Ready", ready).await;
    assert_eq!(world.warnings("denied", "AccessDenied").await.len(), 1);
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_provider_is_reported_left_alone_and_deleted_cleanly() {
    // AWS can report a capacity provider Failed (a role or network it cannot use). The operator
    // says so — Ready=False AwsFailed, one Warning event — changes nothing while it stays Failed,
    // and deleting the object deletes it in AWS, as the message advises before recreating.
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "broken",
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
    world.wait_provider("broken", "Ready", ready).await;
    world
        .aws
        .force_capacity_provider_state(&aws_name("broken"), Some("Failed"))
        .await
        .expect("fail the provider");
    let cp = world
        .wait_provider("broken", "AwsFailed", |cp| {
            has_condition(provider_conditions(cp), "Ready", "False", Some("AwsFailed"))
        })
        .await;
    assert_eq!(
        cp.status.as_ref().and_then(|s| s.state),
        Some(ProviderState::Failed)
    );
    world.wait_event("broken", "AwsFailed").await;

    // While it stays Failed: polled (the window proves the operator reads AWS), never changed.
    let calls = world.quiet_window(Duration::from_secs(5)).await;
    let mutating: Vec<_> = calls.iter().filter(|r| !r.is_read_only()).collect();
    assert!(mutating.is_empty(), "{mutating:?}");
    assert_eq!(world.warnings("broken", "AwsFailed").await.len(), 1);

    world.delete_provider("broken").await;
    world.wait_provider_gone("broken").await;
    assert!(world.aws_provider_names().await.is_empty());
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_with_no_security_group_of_its_own_is_created_as_the_api_allows() {
    // The Lambda API takes 0–5 security groups; with none, EC2 attaches the VPC's default group.
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    world
        .apply_provider(provider_manifest(
            "no-groups",
            &net.private_subnet_ids(),
            &[],
            &world.role_arn,
        ))
        .await;
    let cp = world.wait_provider("no-groups", "Ready", ready).await;
    // Nothing described for an empty list (a filter without values would match every group
    // of the account, and the groups of other VPCs would block the provider).
    let network = cp.status.and_then(|s| s.network).expect("network");
    assert!(network.security_group_ids.is_empty(), "{network:?}");
    let aws = world
        .lambda
        .get_capacity_provider()
        .capacity_provider_name(aws_name("no-groups"))
        .send()
        .await
        .expect("the provider in AWS");
    let vpc = aws
        .capacity_provider()
        .and_then(|p| p.vpc_config())
        .expect("vpc config");
    assert!(vpc.security_group_ids().is_empty());
    assert_eq!(vpc.subnet_ids().len(), 2);
    world.stop_operator().await;
}
