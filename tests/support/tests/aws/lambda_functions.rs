//! Functions on capacity providers through aws-sdk-lambda: CapacityProviderConfig kept,
//! PublishVersion with PublishTo, versions by provider, function scaling config.

use std::time::Duration;

use aws_sdk_lambda::operation::create_function::CreateFunctionError;
use aws_sdk_lambda::operation::delete_capacity_provider::DeleteCapacityProviderError;
use aws_sdk_lambda::operation::get_function_scaling_config::GetFunctionScalingConfigError;
use aws_sdk_lambda::operation::publish_version::PublishVersionError;
use aws_sdk_lambda::operation::put_function_scaling_config::PutFunctionScalingConfigError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    CapacityProviderState, FunctionCode, FunctionScalingConfig, FunctionVersionLatestPublished,
    Runtime, State,
};
use lmi_test_support::{AwsEmulator, EmulatorOptions, Network};

use crate::common::{World, lmi_config, name_of, provider_request, unique};

#[tokio::test]
async fn a_function_keeps_its_capacity_provider_config() {
    let world = World::new().await;
    let provider = world.provider().await;
    let arn = provider.capacity_provider_arn();
    let name = world.function(arn).await;

    let configuration = world
        .lambda
        .get_function_configuration()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(configuration.state(), Some(&State::ActiveNonInvocable));
    let kept = configuration
        .capacity_provider_config()
        .unwrap()
        .lambda_managed_instances_capacity_provider_config()
        .unwrap();
    assert_eq!(kept.capacity_provider_arn(), arn);
    assert_eq!(kept.per_execution_environment_max_concurrency(), Some(16));
    assert_eq!(kept.execution_environment_memory_gib_per_v_cpu(), Some(4.0));

    let updated = world
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .capacity_provider_config(lmi_config(arn, 64, 8.0))
        .send()
        .await
        .unwrap();
    let got = world
        .lambda
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    let got = got.configuration().unwrap().capacity_provider_config();
    assert_eq!(updated.capacity_provider_config(), got);
    assert_eq!(
        got.unwrap()
            .lambda_managed_instances_capacity_provider_config()
            .unwrap()
            .per_execution_environment_max_concurrency(),
        Some(64)
    );
}

#[tokio::test]
async fn a_functions_capacity_provider_must_exist_and_be_active_and_it_can_move() {
    let world = World::new().await;
    let role = world.aws.create_role(&unique("role")).await.unwrap();
    let create = |provider_arn: String, memory_per_vcpu: f64| {
        world
            .lambda
            .create_function()
            .function_name(unique("fn"))
            .role(&role)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(b"zip".to_vec()))
                    .build(),
            )
            .capacity_provider_config(lmi_config(&provider_arn, 8, memory_per_vcpu))
            .send()
    };
    let provider = world.provider().await;
    let arn = provider.capacity_provider_arn().to_owned();

    let missing = create(format!("{arn}-missing"), 2.0)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(missing, CreateFunctionError::ResourceNotFoundException(_)),
        "{missing:?}"
    );
    let odd_ratio = create(arn.clone(), 3.0)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            odd_ratio,
            CreateFunctionError::InvalidParameterValueException(_)
        ),
        "{odd_ratio:?}"
    );
    world
        .aws
        .force_capacity_provider_state(name_of(&arn), Some("Pending"))
        .await
        .unwrap();
    let pending = create(arn.clone(), 2.0)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(pending, CreateFunctionError::ResourceConflictException(_)),
        "{pending:?}"
    );
    world
        .aws
        .force_capacity_provider_state(name_of(&arn), None)
        .await
        .unwrap();

    // A function moves to another provider (CloudFormation: "No interruption"), keeping its
    // ARN; the capacity provider config now names the new one.
    let name = world.function(&arn).await;
    let other = world.provider().await;
    let moved = world
        .lambda
        .update_function_configuration()
        .function_name(&name)
        .capacity_provider_config(lmi_config(other.capacity_provider_arn(), 8, 2.0))
        .send()
        .await
        .expect("move to the other provider");
    assert!(
        moved
            .function_arn()
            .unwrap_or_default()
            .ends_with(&format!(":function:{name}"))
    );
    assert_eq!(
        moved
            .capacity_provider_config()
            .and_then(|c| c.lambda_managed_instances_capacity_provider_config())
            .map(|c| c.capacity_provider_arn()),
        Some(other.capacity_provider_arn())
    );
}

#[tokio::test]
async fn published_versions_go_pending_to_active_and_are_listed_by_provider() {
    let aws = AwsEmulator::start_with(EmulatorOptions {
        state_delay: Duration::from_millis(500),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let world = World {
        lambda: aws.lambda(),
        network: Network::good(&aws.ec2()).await.unwrap(),
        aws,
    };
    let name = unique("cp");
    let arn = provider_request(&world.lambda, &name, &world.network)
        .send()
        .await
        .unwrap()
        .capacity_provider
        .unwrap()
        .capacity_provider_arn()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let function = world.function(&arn).await;

    let version = world
        .lambda
        .publish_version()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    assert_eq!(version.version(), Some("1"));
    assert_eq!(version.state(), Some(&State::Pending));
    // Nothing changed: publishing again returns the same version.
    let again = world
        .lambda
        .publish_version()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    assert_eq!(again.version(), Some("1"));

    tokio::time::sleep(Duration::from_millis(600)).await;
    let listed = world
        .lambda
        .list_function_versions_by_capacity_provider()
        .capacity_provider_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.capacity_provider_arn(), arn);
    let states: Vec<(String, State)> = listed
        .function_versions()
        .iter()
        .map(|v| {
            (
                v.function_arn().rsplit(':').next().unwrap().to_owned(),
                v.state().clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("$LATEST".to_owned(), State::ActiveNonInvocable),
            ("1".to_owned(), State::Active)
        ]
    );
}

#[tokio::test]
async fn publish_to_latest_published_replaces_that_version() {
    let world = World::new().await;
    let provider = world.provider().await;
    let function = world.function(provider.capacity_provider_arn()).await;
    let first = world
        .lambda
        .publish_version()
        .function_name(&function)
        .publish_to(FunctionVersionLatestPublished::LatestPublished)
        .send()
        .await
        .unwrap();
    assert_eq!(first.version(), Some("$LATEST.PUBLISHED"));
    assert!(
        first
            .function_arn()
            .unwrap()
            .ends_with(&format!("function:{function}:$LATEST.PUBLISHED"))
    );
    world
        .lambda
        .update_function_configuration()
        .function_name(&function)
        .memory_size(4096)
        .send()
        .await
        .unwrap();
    let second = world
        .lambda
        .publish_version()
        .function_name(&function)
        .publish_to(FunctionVersionLatestPublished::LatestPublished)
        .send()
        .await
        .unwrap();
    assert_eq!(second.memory_size(), Some(4096));
    let got = world
        .lambda
        .get_function_configuration()
        .function_name(&function)
        .qualifier("$LATEST.PUBLISHED")
        .send()
        .await
        .unwrap();
    assert_eq!(got.memory_size(), Some(4096));
    let versions = world
        .lambda
        .list_versions_by_function()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    let published: Vec<_> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version())
        .collect();
    assert_eq!(published, ["$LATEST", "$LATEST.PUBLISHED"]);
}

#[tokio::test]
async fn a_provider_with_function_versions_cannot_be_deleted() {
    let world = World::new().await;
    let provider = world.provider().await;
    let arn = provider.capacity_provider_arn();
    let function = world.function(arn).await;
    world
        .lambda
        .publish_version()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    let blocked = world
        .lambda
        .delete_capacity_provider()
        .capacity_provider_name(arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            blocked,
            DeleteCapacityProviderError::ResourceConflictException(_)
        ),
        "{blocked:?}"
    );
    world
        .lambda
        .delete_function()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    let deleted = world
        .lambda
        .delete_capacity_provider()
        .capacity_provider_name(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.capacity_provider.unwrap().state(),
        &CapacityProviderState::Deleting
    );
}

#[tokio::test]
async fn versions_per_provider_beyond_the_quota_are_refused() {
    let world = World::new().await;
    let provider = world.provider().await;
    let arn = provider.capacity_provider_arn();
    let function = world.function(arn).await;
    world.aws.set_limits(1000, 1).await.unwrap();
    let publish = world
        .lambda
        .publish_version()
        .function_name(&function)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            publish,
            PublishVersionError::FunctionVersionsPerCapacityProviderLimitExceededException(_)
        ),
        "{publish:?}"
    );
    let role = world.aws.create_role(&unique("role")).await.unwrap();
    let create = world
        .lambda
        .create_function()
        .function_name(unique("fn"))
        .role(role)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"zip".to_vec()))
                .build(),
        )
        .capacity_provider_config(lmi_config(arn, 8, 2.0))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            create,
            CreateFunctionError::FunctionVersionsPerCapacityProviderLimitExceededException(_)
        ),
        "{create:?}"
    );
}

#[tokio::test]
async fn function_scaling_config_reports_requested_and_applied() {
    let aws = AwsEmulator::start().await.unwrap();
    let world = World {
        lambda: aws.lambda(),
        network: Network::good(&aws.ec2()).await.unwrap(),
        aws,
    };
    let provider = world.provider().await;
    let function = world.function(provider.capacity_provider_arn()).await;
    world
        .lambda
        .publish_version()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    let put = |min: i32, max: i32| {
        world
            .lambda
            .put_function_scaling_config()
            .function_name(&function)
            .qualifier("1")
            .function_scaling_config(
                FunctionScalingConfig::builder()
                    .min_execution_environments(min)
                    .max_execution_environments(max)
                    .build(),
            )
            .send()
    };
    let first = put(3, 30).await.unwrap();
    assert_eq!(first.function_state(), Some(&State::Active));

    // A later change is requested at once and applied when the (now long) delay has passed.
    world
        .aws
        .set_state_delay(Duration::from_secs(60))
        .await
        .unwrap();
    put(5, 50).await.unwrap();
    let got = world
        .lambda
        .get_function_scaling_config()
        .function_name(&function)
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert!(
        got.function_arn()
            .unwrap()
            .ends_with(&format!("{function}:1"))
    );
    let requested = got.requested_function_scaling_config().unwrap();
    let applied = got.applied_function_scaling_config().unwrap();
    assert_eq!(
        (
            requested.min_execution_environments(),
            requested.max_execution_environments()
        ),
        (Some(5), Some(50))
    );
    assert_eq!(
        (
            applied.min_execution_environments(),
            applied.max_execution_environments()
        ),
        (Some(3), Some(30))
    );

    let inverted = put(9, 2).await.unwrap_err().into_service_error();
    assert!(
        matches!(
            inverted,
            PutFunctionScalingConfigError::InvalidParameterValueException(_)
        ),
        "{inverted:?}"
    );
}

#[tokio::test]
async fn function_scaling_config_errors_are_typed() {
    let world = World::new().await;
    let provider = world.provider().await;
    let function = world.function(provider.capacity_provider_arn()).await;
    let unknown_version = world
        .lambda
        .get_function_scaling_config()
        .function_name(&function)
        .qualifier("7")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            unknown_version,
            GetFunctionScalingConfigError::ResourceNotFoundException(_)
        ),
        "{unknown_version:?}"
    );
    let unknown_function = world
        .lambda
        .put_function_scaling_config()
        .function_name("nope")
        .qualifier("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            unknown_function,
            PutFunctionScalingConfigError::ResourceNotFoundException(_)
        ),
        "{unknown_function:?}"
    );

    let role = world.aws.create_role(&unique("role")).await.unwrap();
    let plain = unique("plain");
    world
        .lambda
        .create_function()
        .function_name(&plain)
        .role(role)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"zip".to_vec()))
                .build(),
        )
        .publish(true)
        .send()
        .await
        .unwrap();
    let not_lmi = world
        .lambda
        .get_function_scaling_config()
        .function_name(&plain)
        .qualifier("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            not_lmi,
            GetFunctionScalingConfigError::InvalidParameterValueException(_)
        ),
        "{not_lmi:?}"
    );
    let publish_to = world
        .lambda
        .publish_version()
        .function_name(&plain)
        .publish_to(FunctionVersionLatestPublished::LatestPublished)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            publish_to,
            PublishVersionError::InvalidParameterValueException(_)
        ),
        "{publish_to:?}"
    );
}

#[tokio::test]
async fn a_version_can_be_forced_to_fail() {
    let world = World::new().await;
    let provider = world.provider().await;
    let function = world.function(provider.capacity_provider_arn()).await;
    world
        .lambda
        .publish_version()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    world
        .aws
        .force_function_state(&function, "1", Some("Failed"))
        .await
        .unwrap();
    let got = world
        .lambda
        .get_function_configuration()
        .function_name(&function)
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!(got.state(), Some(&State::Failed));
}
