//! `/metrics` after real reconciles: every documented series, fed by the controllers, the AWS
//! interceptor and leader election.

use std::time::Duration;

use lmi_test_support::Fault;

use crate::world::{Operator, Options, World};

/// The series charts/lmi-operator/README.md documents.
const DOCUMENTED: &[&str] = &[
    "lmi_reconciles_total",
    "lmi_reconcile_duration_seconds",
    "lmi_reconcile_errors_total",
    "lmi_drift_detected_total",
    "lmi_aws_calls_total",
    "lmi_leader",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_expose_reconciles_errors_drift_aws_calls_and_leadership() {
    let world = World::start().await;
    let mut options = Options::replica("replica-a");
    // Short resyncs, so that drift is found within the test.
    options.resync_interval = Duration::from_secs(2);
    let operator = Operator::start(&world, options).await;

    world.create_provider("primary").await;
    world
        .eventually("the provider Ready", Duration::from_secs(30), || async {
            world.provider_ready("primary").await
        })
        .await;
    let text = operator.scrape().await;
    for series in DOCUMENTED {
        assert!(
            text.contains(&format!("# TYPE {series} ")),
            "{series} is not exposed:\n{text}"
        );
    }
    assert!(
        crate::world::sample(
            &text,
            r#"lmi_reconciles_total{kind="CapacityProvider",result="success"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(
        crate::world::sample(
            &text,
            r#"lmi_reconcile_duration_seconds_count{kind="CapacityProvider",result="success"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        crate::world::sample(
            &text,
            r#"lmi_aws_calls_total{service="lambda",operation="CreateCapacityProvider",outcome="success"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(
        crate::world::sample(
            &text,
            r#"lmi_aws_calls_total{service="ec2",operation="DescribeSubnets",outcome="success"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(crate::world::sample(&text, "lmi_leader"), 1.0);

    // Throttling: every attempt of the next reads is refused; the SDK's retries are counted
    // one by one, and the failed reconcile under its bounded reason.
    world.proxy.fail_next(
        Some("GetCapacityProvider"),
        std::iter::repeat_n(Fault::Throttle, 6),
    );
    world
        .eventually(
            "a throttled reconcile counted",
            Duration::from_secs(30),
            || async {
                operator
                    .sample(
                        r#"lmi_reconcile_errors_total{kind="CapacityProvider",reason="Throttled"}"#,
                    )
                    .await
                    >= 1.0
            },
        )
        .await;
    let throttled = operator
        .sample(r#"lmi_aws_calls_total{service="lambda",operation="GetCapacityProvider",outcome="Throttled"}"#)
        .await;
    assert!(
        throttled >= 3.0,
        "every throttled attempt counts: {throttled}"
    );
    assert!(
        operator
            .sample(r#"lmi_reconciles_total{kind="CapacityProvider",result="error"}"#)
            .await
            >= 1.0
    );

    // Drift: AWS changed behind the operator's back is found at the next resync.
    world
        .aws
        .lambda()
        .update_capacity_provider()
        .capacity_provider_name("test-primary")
        .capacity_provider_scaling_config(
            aws_sdk_lambda::types::CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(8)
                .scaling_mode(aws_sdk_lambda::types::CapacityProviderScalingMode::Auto)
                .build(),
        )
        .send()
        .await
        .expect("change the provider in AWS");
    world
        .eventually("drift counted", Duration::from_secs(30), || async {
            operator
                .sample(r#"lmi_drift_detected_total{kind="CapacityProvider"}"#)
                .await
                >= 1.0
        })
        .await;
}
