//! Capacity provider operations through aws-sdk-lambda, each documented error arriving as the
//! SDK's typed variant.

use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::operation::create_capacity_provider::CreateCapacityProviderError;
use aws_sdk_lambda::operation::delete_capacity_provider::DeleteCapacityProviderError;
use aws_sdk_lambda::operation::get_capacity_provider::GetCapacityProviderError;
use aws_sdk_lambda::operation::list_capacity_providers::ListCapacityProvidersError;
use aws_sdk_lambda::operation::list_function_versions_by_capacity_provider::ListFunctionVersionsByCapacityProviderError;
use aws_sdk_lambda::operation::update_capacity_provider::UpdateCapacityProviderError;
use aws_sdk_lambda::types::{
    Architecture, CapacityProviderLoggingConfig, CapacityProviderPermissionsConfig,
    CapacityProviderPredefinedMetricType, CapacityProviderScalingConfig,
    CapacityProviderScalingMode, CapacityProviderState, CapacityProviderTelemetryConfig,
    InstanceRequirements, PropagateTags, PropagateTagsMode, SystemLogLevel,
    TargetTrackingScalingPolicy,
};
use lmi_test_support::{AwsEmulator, EmulatorOptions, Network};

use crate::common::{World, name_of, provider_request, unique, vpc_config};

#[tokio::test]
async fn a_capacity_provider_round_trips_every_member() {
    let world = World::new().await;
    let name = unique("cp");
    let created = provider_request(&world.lambda, &name, &world.network)
        .instance_requirements(
            InstanceRequirements::builder()
                .architectures(Architecture::Arm64)
                .allowed_instance_types("m8g.*")
                .allowed_instance_types("c8g.large")
                .build(),
        )
        .capacity_provider_scaling_config(
            CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(64)
                .scaling_mode(CapacityProviderScalingMode::Manual)
                .scaling_policies(
                    TargetTrackingScalingPolicy::builder()
                        .predefined_metric_type(
                            CapacityProviderPredefinedMetricType::LambdaCapacityProviderAverageCpuUtilization,
                        )
                        .target_value(55.0)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .kms_key_arn("arn:aws:kms:us-east-1:123456789012:key/abcd")
        .propagate_tags(
            PropagateTags::builder()
                .mode(PropagateTagsMode::Explicit)
                .explicit_tags("team", "search")
                .build(),
        )
        .telemetry_config(
            CapacityProviderTelemetryConfig::builder()
                .logging_config(
                    CapacityProviderLoggingConfig::builder()
                        .system_log_level(SystemLogLevel::Warn)
                        .log_group("/lmi/providers")
                        .build(),
                )
                .build(),
        )
        .tags("lmi.dev/owner", "test")
        .send()
        .await
        .unwrap()
        .capacity_provider
        .unwrap();

    assert_eq!(
        created.capacity_provider_arn(),
        format!("arn:aws:lambda:us-east-1:123456789012:capacity-provider:{name}")
    );
    assert_eq!(created.state(), &CapacityProviderState::Active);
    let requirements = created.instance_requirements().unwrap();
    assert_eq!(requirements.architectures(), [Architecture::Arm64]);
    assert_eq!(
        requirements.allowed_instance_types(),
        ["m8g.*", "c8g.large"]
    );
    let scaling = created.capacity_provider_scaling_config().unwrap();
    assert_eq!(scaling.max_v_cpu_count(), Some(64));
    assert_eq!(scaling.scaling_policies()[0].target_value(), 55.0);
    assert_eq!(
        created.propagate_tags().unwrap().explicit_tags().unwrap()["team"],
        "search"
    );
    let logging = created
        .telemetry_config()
        .unwrap()
        .logging_config()
        .unwrap();
    assert_eq!(logging.log_group(), Some("/lmi/providers"));
    assert!(created.last_modified().unwrap().ends_with("+0000"));

    // Get by name and by ARN answer the same provider.
    for key in [name.as_str(), created.capacity_provider_arn()] {
        let got = world
            .lambda
            .get_capacity_provider()
            .capacity_provider_name(key)
            .send()
            .await
            .unwrap()
            .capacity_provider
            .unwrap();
        assert_eq!(got, created);
    }
}

#[tokio::test]
async fn defaults_fill_architecture_and_scaling_mode() {
    let world = World::new().await;
    let provider = world.provider().await;
    assert_eq!(
        provider.instance_requirements().unwrap().architectures(),
        [Architecture::X8664]
    );
    assert_eq!(
        provider
            .capacity_provider_scaling_config()
            .unwrap()
            .scaling_mode(),
        Some(&CapacityProviderScalingMode::Auto)
    );
}

#[tokio::test]
async fn a_provider_is_pending_until_the_state_delay_has_passed() {
    let aws = AwsEmulator::start_with(EmulatorOptions {
        state_delay: Duration::from_secs(2),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let network = Network::good(&aws.ec2()).await.unwrap();
    let lambda = aws.lambda();
    let name = unique("cp");
    let created = provider_request(&lambda, &name, &network)
        .send()
        .await
        .unwrap()
        .capacity_provider
        .unwrap();
    assert_eq!(created.state(), &CapacityProviderState::Pending);
    let pending = lambda
        .list_capacity_providers()
        .state(CapacityProviderState::Pending)
        .send()
        .await
        .unwrap();
    assert_eq!(pending.capacity_providers().len(), 1);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let got = lambda
        .get_capacity_provider()
        .capacity_provider_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.capacity_provider.unwrap().state(),
        &CapacityProviderState::Active
    );
}

#[tokio::test]
async fn a_duplicate_name_is_a_resource_conflict() {
    let world = World::new().await;
    let name = unique("cp");
    provider_request(&world.lambda, &name, &world.network)
        .send()
        .await
        .unwrap();
    let error = provider_request(&world.lambda, &name, &world.network)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            CreateCapacityProviderError::ResourceConflictException(_)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_provider_is_not_found_for_every_operation() {
    let world = World::new().await;
    let lambda = &world.lambda;
    let error = lambda
        .get_capacity_provider()
        .capacity_provider_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            GetCapacityProviderError::ResourceNotFoundException(_)
        ),
        "{error:?}"
    );
    assert_eq!(error.message(), Some("Capacity provider not found: nope"));

    let error = lambda
        .update_capacity_provider()
        .capacity_provider_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            UpdateCapacityProviderError::ResourceNotFoundException(_)
        ),
        "{error:?}"
    );
    let error = lambda
        .delete_capacity_provider()
        .capacity_provider_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            DeleteCapacityProviderError::ResourceNotFoundException(_)
        ),
        "{error:?}"
    );
    let error = lambda
        .list_function_versions_by_capacity_provider()
        .capacity_provider_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            ListFunctionVersionsByCapacityProviderError::ResourceNotFoundException(_)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_bad_marker_for_function_versions_is_an_invalid_parameter() {
    let world = World::new().await;
    let provider = world.provider().await;
    let bad_marker = world
        .lambda
        .list_function_versions_by_capacity_provider()
        .capacity_provider_name(provider.capacity_provider_arn())
        .marker("not-a-marker")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            bad_marker,
            ListFunctionVersionsByCapacityProviderError::InvalidParameterValueException(_)
        ),
        "{bad_marker:?}"
    );
}

#[tokio::test]
async fn subnets_and_security_groups_must_exist_and_share_one_vpc() {
    let world = World::new().await;
    let other = Network::builder()
        .cidr("10.1.0.0/16")
        .isolated_subnet("us-east-1a")
        .build(&world.aws.ec2())
        .await
        .unwrap();
    let permissions = CapacityProviderPermissionsConfig::builder()
        .capacity_provider_operator_role_arn(crate::common::OPERATOR_ROLE)
        .build()
        .unwrap();
    let attempt = |subnets: Vec<String>, groups: Vec<String>| {
        world
            .lambda
            .create_capacity_provider()
            .capacity_provider_name(unique("cp"))
            .vpc_config(vpc_config(&subnets, &groups))
            .permissions_config(permissions.clone())
            .send()
    };
    let good_subnets = world.network.private_subnet_ids();
    let good_group = world.network.security_group_id.clone();

    let cases = [
        (
            vec!["subnet-0000000000".to_owned()],
            vec![good_group.clone()],
            "subnet-0000000000",
        ),
        (
            good_subnets.clone(),
            vec!["sg-0000000000".to_owned()],
            "sg-0000000000",
        ),
        (
            good_subnets.clone(),
            vec![other.security_group_id.clone()],
            "same VPC",
        ),
        (
            vec![good_subnets[0].clone(), other.subnets[0].id.clone()],
            vec![],
            "same VPC",
        ),
    ];
    for (subnets, groups, mentioned) in cases {
        let error = attempt(subnets, groups)
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(
                error,
                CreateCapacityProviderError::InvalidParameterValueException(_)
            ),
            "{error:?}"
        );
        assert!(error.message().unwrap().contains(mentioned), "{error:?}");
    }
}

#[tokio::test]
async fn model_constraints_are_answered_with_validation_exception() {
    let world = World::new().await;
    let error = provider_request(&world.lambda, &unique("cp"), &world.network)
        .capacity_provider_scaling_config(
            CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(20_000)
                .build(),
        )
        .instance_requirements(
            InstanceRequirements::builder()
                .architectures(Architecture::Arm64)
                .architectures(Architecture::X8664)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    // ValidationException is not a modelled Lambda error: the SDK keeps its code and message.
    assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
    let message = error.message().unwrap();
    assert!(
        message.starts_with("2 validation errors detected"),
        "{message}"
    );
    assert!(
        message.contains("'capacityProviderScalingConfig.maxVCpuCount'"),
        "{message}"
    );
    assert!(
        message.contains("'instanceRequirements.architectures'"),
        "{message}"
    );
}

#[tokio::test]
async fn instance_types_and_scaling_are_checked() {
    let world = World::new().await;
    let wrong_architecture = provider_request(&world.lambda, &unique("cp"), &world.network)
        .instance_requirements(
            InstanceRequirements::builder()
                .architectures(Architecture::X8664)
                .allowed_instance_types("c8g.*")
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            wrong_architecture,
            CreateCapacityProviderError::InvalidParameterValueException(_)
        ),
        "{wrong_architecture:?}"
    );
    let manual_without_policies = provider_request(&world.lambda, &unique("cp"), &world.network)
        .capacity_provider_scaling_config(
            CapacityProviderScalingConfig::builder()
                .scaling_mode(CapacityProviderScalingMode::Manual)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            manual_without_policies,
            CreateCapacityProviderError::InvalidParameterValueException(_)
        ),
        "{manual_without_policies:?}"
    );
}

#[tokio::test]
async fn listing_pages_through_every_provider_once() {
    let world = World::new().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(world.provider().await.capacity_provider_arn().to_owned());
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = world
            .lambda
            .list_capacity_providers()
            .max_items(2)
            .set_marker(marker.take())
            .send()
            .await
            .unwrap();
        assert!(page.capacity_providers().len() <= 2);
        seen.extend(
            page.capacity_providers()
                .iter()
                .map(|p| p.capacity_provider_arn().to_owned()),
        );
        pages += 1;
        match page.next_marker() {
            Some(next) => marker = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    created.sort();
    assert_eq!(seen, created);

    // The SDK's paginator walks the same pages.
    let all: Vec<_> = world
        .lambda
        .list_capacity_providers()
        .max_items(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 5);

    let too_many = world
        .lambda
        .list_capacity_providers()
        .max_items(51)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(too_many.code(), Some("ValidationException"), "{too_many:?}");
    let bad_marker = world
        .lambda
        .list_capacity_providers()
        .marker("not-a-marker")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            bad_marker,
            ListCapacityProvidersError::InvalidParameterValueException(_)
        ),
        "{bad_marker:?}"
    );
}

#[tokio::test]
async fn update_changes_scaling_tag_propagation_and_telemetry_only() {
    let world = World::new().await;
    let provider = world.provider().await;
    let updated = world
        .lambda
        .update_capacity_provider()
        .capacity_provider_name(provider.capacity_provider_arn())
        .capacity_provider_scaling_config(
            CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(256)
                .scaling_mode(CapacityProviderScalingMode::Auto)
                .build(),
        )
        .propagate_tags(
            PropagateTags::builder()
                .mode(PropagateTagsMode::None)
                .build(),
        )
        .telemetry_config(
            CapacityProviderTelemetryConfig::builder()
                .logging_config(
                    CapacityProviderLoggingConfig::builder()
                        .system_log_level(SystemLogLevel::Debug)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .capacity_provider
        .unwrap();
    assert_eq!(
        updated
            .capacity_provider_scaling_config()
            .unwrap()
            .max_v_cpu_count(),
        Some(256)
    );
    assert_eq!(
        updated.propagate_tags().unwrap().mode(),
        Some(&PropagateTagsMode::None)
    );
    assert_eq!(updated.vpc_config(), provider.vpc_config());
    assert_eq!(updated.permissions_config(), provider.permissions_config());
    assert_eq!(
        updated.instance_requirements(),
        provider.instance_requirements()
    );
}

#[tokio::test]
async fn an_update_to_manual_scaling_needs_policies() {
    let world = World::new().await;
    let provider = world.provider().await;
    let manual_without_policies = world
        .lambda
        .update_capacity_provider()
        .capacity_provider_name(provider.capacity_provider_arn())
        .capacity_provider_scaling_config(
            CapacityProviderScalingConfig::builder()
                .scaling_mode(CapacityProviderScalingMode::Manual)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            manual_without_policies,
            UpdateCapacityProviderError::InvalidParameterValueException(_)
        ),
        "{manual_without_policies:?}"
    );
}

#[tokio::test]
async fn delete_goes_through_deleting_then_the_provider_is_gone() {
    let aws = AwsEmulator::start_with(EmulatorOptions {
        state_delay: Duration::from_secs(2),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    // The lifecycle only: a delete and an update a moment apart would also meet AWS's one
    // capacity-provider write a second (enforced by the emulator), and a retried update would
    // then find the provider gone.
    aws.set_request_rates(0.0, 0.0).await.unwrap();
    let network = Network::good(&aws.ec2()).await.unwrap();
    let lambda = aws.lambda();
    let name = unique("cp");
    provider_request(&lambda, &name, &network)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let deleted = lambda
        .delete_capacity_provider()
        .capacity_provider_name(&name)
        .send()
        .await
        .unwrap()
        .capacity_provider
        .unwrap();
    assert_eq!(deleted.state(), &CapacityProviderState::Deleting);
    let update = lambda
        .update_capacity_provider()
        .capacity_provider_name(&name)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            update,
            UpdateCapacityProviderError::ResourceConflictException(_)
        ),
        "{update:?}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let gone = lambda
        .get_capacity_provider()
        .capacity_provider_name(&name)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(gone, GetCapacityProviderError::ResourceNotFoundException(_)),
        "{gone:?}"
    );
}

#[tokio::test]
async fn the_account_quota_is_capacity_provider_limit_exceeded() {
    let world = World::new().await;
    world.provider().await;
    world.aws.set_limits(1, 1000).await.unwrap();
    let error = provider_request(&world.lambda, &unique("cp"), &world.network)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            error,
            CreateCapacityProviderError::CapacityProviderLimitExceededException(_)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn capacity_providers_take_tags_through_the_lambda_tag_api() {
    let world = World::new().await;
    let name = unique("cp");
    let arn = provider_request(&world.lambda, &name, &world.network)
        .tags("lmi.dev/owner", "cluster-a")
        .send()
        .await
        .unwrap()
        .capacity_provider
        .unwrap()
        .capacity_provider_arn()
        .to_owned();
    world
        .lambda
        .tag_resource()
        .resource(&arn)
        .tags("lmi.dev/uid", "1234")
        .send()
        .await
        .unwrap();
    world
        .lambda
        .untag_resource()
        .resource(&arn)
        .tag_keys("lmi.dev/owner")
        .send()
        .await
        .unwrap();
    let tags = world
        .lambda
        .list_tags()
        .resource(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags["lmi.dev/uid"], "1234");
    assert_eq!(name_of(&arn), name);
}

#[tokio::test]
async fn a_forced_failure_is_reported_until_released() {
    let world = World::new().await;
    let provider = world.provider().await;
    let name = name_of(provider.capacity_provider_arn());
    world
        .aws
        .force_capacity_provider_state(name, Some("Failed"))
        .await
        .unwrap();
    let state = |lambda: aws_sdk_lambda::Client, name: String| async move {
        lambda
            .get_capacity_provider()
            .capacity_provider_name(name)
            .send()
            .await
            .unwrap()
            .capacity_provider
            .unwrap()
            .state()
            .clone()
    };
    assert_eq!(
        state(world.lambda.clone(), name.to_owned()).await,
        CapacityProviderState::Failed
    );
    world
        .aws
        .force_capacity_provider_state(name, None)
        .await
        .unwrap();
    assert_eq!(
        state(world.lambda.clone(), name.to_owned()).await,
        CapacityProviderState::Active
    );
}
