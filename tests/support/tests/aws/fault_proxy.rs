//! The fault proxy between the SDK and the emulator: the SDK's own retries and the operation log
//! are observable, and the injected errors arrive as the SDK's typed variants.

use std::time::{Duration, Instant};

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::operation::create_capacity_provider::CreateCapacityProviderError;
use aws_sdk_lambda::operation::get_capacity_provider::GetCapacityProviderError;
use aws_sdk_lambda::operation::list_capacity_providers::ListCapacityProvidersError;
use lmi_test_support::{
    AwsEmulator, Fault, FaultPlan, FaultProxy, Network, OperationRecord, Outcome,
};

use crate::common::{name_of, provider_request, unique};

/// The SDK's standard retry mode (3 attempts), with a short backoff so tests stay fast.
fn quick_retries() -> RetryConfig {
    RetryConfig::standard().with_initial_backoff(Duration::from_millis(5))
}

struct Setup {
    aws: AwsEmulator,
    proxy: FaultProxy,
    network: Network,
}

impl Setup {
    async fn new() -> Setup {
        let aws = AwsEmulator::start().await.expect("emulator starts");
        let network = Network::good(&aws.ec2()).await.expect("good network");
        let proxy = FaultProxy::start(aws.endpoint())
            .await
            .expect("proxy starts");
        Setup {
            aws,
            proxy,
            network,
        }
    }

    fn lambda(&self, retries: RetryConfig) -> aws_sdk_lambda::Client {
        let config = aws_sdk_lambda::config::Builder::from(&self.proxy.sdk_config())
            .retry_config(retries)
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    fn ec2(&self, retries: RetryConfig) -> aws_sdk_ec2::Client {
        let config = aws_sdk_ec2::config::Builder::from(&self.proxy.sdk_config())
            .retry_config(retries)
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }
}

fn attempts_and_outcomes(log: &[OperationRecord], operation: &str) -> Vec<(Option<u32>, Outcome)> {
    log.iter()
        .filter(|r| r.operation == operation)
        .map(|r| (r.attempt, r.outcome))
        .collect()
}

#[tokio::test]
async fn lambda_throttling_is_retried_by_the_sdk_and_every_attempt_is_logged() {
    let setup = Setup::new().await;
    let lambda = setup.lambda(quick_retries());
    let name = unique("cp");
    setup.proxy.fail_next(
        Some("CreateCapacityProvider"),
        [Fault::Throttle, Fault::InternalError],
    );
    let created = provider_request(&lambda, &name, &setup.network)
        .send()
        .await
        .expect("the third attempt gets through");
    assert_eq!(
        name_of(created.capacity_provider.unwrap().capacity_provider_arn()),
        name
    );
    let log = setup.proxy.log();
    assert_eq!(
        attempts_and_outcomes(&log, "CreateCapacityProvider"),
        [
            (Some(1), Outcome::Injected(Fault::Throttle)),
            (Some(2), Outcome::Injected(Fault::InternalError)),
            (Some(3), Outcome::Forwarded(202)),
        ]
    );
    assert!(log.iter().all(|r| r.service == "lambda"));
    assert_eq!(setup.proxy.calls("lambda", "CreateCapacityProvider"), 3);
}

#[tokio::test]
async fn injected_errors_arrive_as_typed_variants_when_not_retried() {
    let setup = Setup::new().await;
    let lambda = setup.lambda(RetryConfig::disabled());
    setup.proxy.fail_next(None, [Fault::Throttle]);
    let throttled = provider_request(&lambda, &unique("cp"), &setup.network)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            throttled,
            CreateCapacityProviderError::TooManyRequestsException(_)
        ),
        "{throttled:?}"
    );
    setup.proxy.fail_next(None, [Fault::InternalError]);
    let internal = lambda
        .get_capacity_provider()
        .capacity_provider_name("any")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(internal, GetCapacityProviderError::ServiceException(_)),
        "{internal:?}"
    );
    assert_eq!(setup.proxy.log().len(), 2);
}

#[tokio::test]
async fn ec2_request_limit_exceeded_and_resets_are_retried() {
    let setup = Setup::new().await;
    let ec2 = setup.ec2(quick_retries());
    setup.proxy.fail_next(
        Some("DescribeSubnets"),
        [Fault::Throttle, Fault::ConnectionReset],
    );
    let subnets = ec2
        .describe_subnets()
        .subnet_ids(&setup.network.private_subnet_ids()[0])
        .send()
        .await
        .expect("the third attempt gets through");
    assert_eq!(subnets.subnets().len(), 1);
    let log = setup.proxy.log();
    assert_eq!(
        attempts_and_outcomes(&log, "DescribeSubnets"),
        [
            (Some(1), Outcome::Injected(Fault::Throttle)),
            (Some(2), Outcome::Injected(Fault::ConnectionReset)),
            (Some(3), Outcome::Forwarded(200)),
        ]
    );
    assert!(log.iter().all(|r| r.service == "ec2"));
}

#[tokio::test]
async fn a_stalled_request_is_never_answered_and_the_attempt_timeout_retries_it() {
    let setup = Setup::new().await;
    let config = aws_sdk_lambda::config::Builder::from(&setup.proxy.sdk_config())
        .retry_config(quick_retries())
        .timeout_config(
            aws_sdk_lambda::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .build();
    let lambda = aws_sdk_lambda::Client::from_conf(config);
    setup
        .proxy
        .fail_next(Some("ListCapacityProviders"), [Fault::Stall]);
    lambda
        .list_capacity_providers()
        .send()
        .await
        .expect("the second attempt gets through");
    assert_eq!(
        attempts_and_outcomes(&setup.proxy.log(), "ListCapacityProviders"),
        [
            (Some(1), Outcome::Injected(Fault::Stall)),
            (Some(2), Outcome::Forwarded(200)),
        ]
    );
}

#[tokio::test]
async fn the_sdk_gives_up_after_its_attempts_and_surfaces_the_last_error() {
    let setup = Setup::new().await;
    let lambda = setup.lambda(quick_retries());
    setup.proxy.fail_next(None, [Fault::Unavailable; 3]);
    let error = lambda.list_capacity_providers().send().await.unwrap_err();
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(503));
    assert_eq!(setup.proxy.calls("lambda", "ListCapacityProviders"), 3);
}

#[tokio::test]
async fn a_seeded_plan_repeats_the_same_faults() {
    let setup = Setup::new().await;
    // Only the proxy's faults: sixty reads in a few seconds would otherwise also meet AWS's
    // 15 capacity-provider reads a second, which the emulator enforces.
    setup
        .aws
        .set_request_rates(0.0, 0.0)
        .await
        .expect("lift the rates");
    let lambda = setup.lambda(RetryConfig::disabled());
    let run = || async {
        setup.proxy.clear_log();
        setup
            .proxy
            .set_plan(FaultPlan::seeded(42).throttle(0.3).unavailable(0.2));
        for _ in 0..30 {
            let _ = lambda.list_capacity_providers().send().await;
        }
        setup
            .proxy
            .log()
            .into_iter()
            .map(|r| r.outcome)
            .collect::<Vec<_>>()
    };
    let first = run().await;
    let second = run().await;
    assert_eq!(first, second);
    let faulted = first
        .iter()
        .filter(|o| matches!(o, Outcome::Injected(_)))
        .count();
    // 50% of 30 draws; anything far from that means the shares are not applied.
    assert!((6..=24).contains(&faulted), "{faulted} of 30 faulted");
    assert!(first.contains(&Outcome::Injected(Fault::Throttle)));
    assert!(first.contains(&Outcome::Injected(Fault::Unavailable)));
}

#[tokio::test]
async fn faults_can_be_limited_to_some_operations() {
    let setup = Setup::new().await;
    let lambda = setup.lambda(RetryConfig::disabled());
    setup.proxy.set_plan(
        FaultPlan::seeded(1)
            .throttle(1.0)
            .only(["ListCapacityProviders"]),
    );
    let listed = lambda.list_capacity_providers().send().await.unwrap_err();
    assert!(matches!(
        listed.into_service_error(),
        ListCapacityProvidersError::TooManyRequestsException(_)
    ),);
    let got = lambda
        .get_capacity_provider()
        .capacity_provider_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(got, GetCapacityProviderError::ResourceNotFoundException(_)),
        "{got:?}"
    );
    setup.proxy.clear_faults();
    lambda.list_capacity_providers().send().await.unwrap();
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let setup = Setup::new().await;
    let lambda = setup.lambda(RetryConfig::disabled());
    setup
        .proxy
        .set_plan(FaultPlan::none().latency(Duration::from_millis(300)));
    let started = Instant::now();
    lambda.list_capacity_providers().send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_log_tells_reads_from_writes_and_can_be_cleared() {
    let setup = Setup::new().await;
    let lambda = setup.lambda(RetryConfig::disabled());
    let name = unique("cp");
    provider_request(&lambda, &name, &setup.network)
        .send()
        .await
        .unwrap();
    lambda
        .get_capacity_provider()
        .capacity_provider_name(&name)
        .send()
        .await
        .unwrap();
    let log = setup.proxy.log();
    let operations: Vec<_> = log.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        operations,
        ["CreateCapacityProvider", "GetCapacityProvider"]
    );
    assert_eq!(
        log.iter()
            .map(OperationRecord::is_read_only)
            .collect::<Vec<_>>(),
        [false, true]
    );
    setup.proxy.clear_log();
    assert!(setup.proxy.log().is_empty());
    // The emulator itself is still reachable directly, bypassing the proxy and its log.
    setup
        .aws
        .lambda()
        .list_capacity_providers()
        .send()
        .await
        .unwrap();
    assert!(setup.proxy.log().is_empty());
}

/// Asserts that `$call` (a fluent builder ending in `.send()`) fails with the typed variant.
macro_rules! assert_typed {
    ($call:expr, $pattern:pat) => {{
        let error = $call.await.unwrap_err().into_service_error();
        assert!(matches!(error, $pattern), "{error:?}");
    }};
}

#[tokio::test]
async fn every_lmi_operation_maps_throttling_and_service_errors_to_typed_variants() {
    use CreateCapacityProviderError as Create;
    use GetCapacityProviderError as Get;
    use ListCapacityProvidersError as List;
    use aws_sdk_lambda::operation::delete_capacity_provider::DeleteCapacityProviderError as Delete;
    use aws_sdk_lambda::operation::get_function_scaling_config::GetFunctionScalingConfigError as GetScaling;
    use aws_sdk_lambda::operation::list_function_versions_by_capacity_provider::ListFunctionVersionsByCapacityProviderError as ListVersions;
    use aws_sdk_lambda::operation::put_function_scaling_config::PutFunctionScalingConfigError as PutScaling;
    use aws_sdk_lambda::operation::update_capacity_provider::UpdateCapacityProviderError as Update;

    let setup = Setup::new().await;
    let lambda = setup.lambda(RetryConfig::disabled());
    for fault in [Fault::Throttle, Fault::InternalError] {
        // Each call below meets exactly one injected fault.
        setup.proxy.fail_next(None, [fault; 8]);
        let throttled = fault == Fault::Throttle;
        let create = provider_request(&lambda, "cp", &setup.network).send().await;
        let create = create.unwrap_err().into_service_error();
        assert!(
            if throttled {
                matches!(create, Create::TooManyRequestsException(_))
            } else {
                matches!(create, Create::ServiceException(_))
            },
            "{create:?}"
        );
        let get = lambda.get_capacity_provider().capacity_provider_name("cp");
        let list = lambda.list_capacity_providers();
        let update = lambda
            .update_capacity_provider()
            .capacity_provider_name("cp");
        let delete = lambda
            .delete_capacity_provider()
            .capacity_provider_name("cp");
        let versions = lambda
            .list_function_versions_by_capacity_provider()
            .capacity_provider_name("cp");
        let put_scaling = lambda
            .put_function_scaling_config()
            .function_name("fn")
            .qualifier("1");
        let get_scaling = lambda
            .get_function_scaling_config()
            .function_name("fn")
            .qualifier("1");
        if throttled {
            assert_typed!(get.send(), Get::TooManyRequestsException(_));
            assert_typed!(list.send(), List::TooManyRequestsException(_));
            assert_typed!(update.send(), Update::TooManyRequestsException(_));
            assert_typed!(delete.send(), Delete::TooManyRequestsException(_));
            assert_typed!(versions.send(), ListVersions::TooManyRequestsException(_));
            assert_typed!(put_scaling.send(), PutScaling::TooManyRequestsException(_));
            assert_typed!(get_scaling.send(), GetScaling::TooManyRequestsException(_));
        } else {
            assert_typed!(get.send(), Get::ServiceException(_));
            assert_typed!(list.send(), List::ServiceException(_));
            assert_typed!(update.send(), Update::ServiceException(_));
            assert_typed!(delete.send(), Delete::ServiceException(_));
            assert_typed!(versions.send(), ListVersions::ServiceException(_));
            assert_typed!(put_scaling.send(), PutScaling::ServiceException(_));
            assert_typed!(get_scaling.send(), GetScaling::ServiceException(_));
        }
    }
    // Sixteen calls, each answered by the proxy; none reached the emulator.
    let log = setup.proxy.log();
    assert_eq!(log.len(), 16);
    assert!(
        log.iter()
            .all(|r| matches!(r.outcome, Outcome::Injected(_)))
    );
}
