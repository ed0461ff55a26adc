//! `/metrics` after real reconciles: every series charts/lmi-operator/README.md documents, fed
//! by the controllers, the AWS call interceptor and leader election.

use std::time::Duration;

use lmi_test_support::Fault;

use crate::harness::World;
use crate::harness::replica::{Replica, ReplicaOptions, sample};
use crate::{apply_provider, ready, wait_for};

/// The series charts/lmi-operator/README.md documents.
const DOCUMENTED: &[&str] = &[
    "lmi_reconciles_total",
    "lmi_reconcile_duration_seconds",
    "lmi_reconcile_errors_total",
    "lmi_drift_detected_total",
    "lmi_aws_calls_total",
    "lmi_leader",
];

#[test]
fn the_chart_readme_documents_every_series() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/lmi-operator/README.md"),
    )
    .expect("charts/lmi-operator/README.md");
    for series in DOCUMENTED {
        assert!(readme.contains(series), "the chart README lacks {series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_reconciles_errors_drift_aws_calls_and_leadership() {
    let world = World::start().await;
    let net = world.good_network().await;
    // The world's resyncs are short: drift is found within seconds.
    let replica = Replica::start(&world, ReplicaOptions::named("replica-a")).await;

    apply_provider(&world, &net, "primary").await;
    world.wait_provider("primary", "Ready", ready).await;
    let text = replica.scrape().await;
    // Families with no sample yet have no TYPE line: errors and drift are checked below.
    for series in [
        "lmi_reconciles_total",
        "lmi_reconcile_duration_seconds",
        "lmi_aws_calls_total",
        "lmi_leader",
    ] {
        let family = series.trim_end_matches("_total");
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{series} is not exposed:\n{text}"
        );
    }
    let count = |series: &str| sample(&text, series);
    assert!(count(r#"lmi_reconciles_total{kind="CapacityProvider",result="success"}"#) >= 1.0);
    assert!(
        count(r#"lmi_reconcile_duration_seconds_count{kind="CapacityProvider",result="success"}"#)
            >= 1.0
    );
    assert_eq!(
        count(
            r#"lmi_aws_calls_total{service="lambda",operation="CreateCapacityProvider",outcome="success"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(
        count(
            r#"lmi_aws_calls_total{service="ec2",operation="DescribeSubnets",outcome="success"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(count("lmi_leader"), 1.0);

    // Throttling: every attempt of the next reads is refused; each retry the SDK makes counts,
    // and the failed reconcile counts under its bounded reason.
    world.proxy.fail_next(
        Some("GetCapacityProvider"),
        std::iter::repeat_n(Fault::Throttle, 6),
    );
    wait_for(
        "a throttled reconcile counted",
        Duration::from_secs(30),
        || async {
            replica
                .sample(r#"lmi_reconcile_errors_total{kind="CapacityProvider",reason="Throttled"}"#)
                .await
                >= 1.0
        },
    )
    .await;
    let throttled = replica
        .sample(
            r#"lmi_aws_calls_total{service="lambda",operation="GetCapacityProvider",outcome="Throttled"}"#,
        )
        .await;
    assert!(
        throttled >= 3.0,
        "every throttled attempt counts: {throttled}"
    );
    assert!(
        replica
            .sample(r#"lmi_reconciles_total{kind="CapacityProvider",result="error"}"#)
            .await
            >= 1.0
    );

    // Drift: a change behind the operator's back is found at the next resync.
    let aws_name = world
        .providers()
        .get("primary")
        .await
        .expect("read")
        .status
        .and_then(|s| s.aws_name)
        .expect("awsName");
    world
        .lambda
        .update_capacity_provider()
        .capacity_provider_name(aws_name)
        .capacity_provider_scaling_config(
            aws_sdk_lambda::types::CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(8)
                .scaling_mode(aws_sdk_lambda::types::CapacityProviderScalingMode::Auto)
                .build(),
        )
        .send()
        .await
        .expect("change the provider in AWS");
    wait_for("drift counted", Duration::from_secs(30), || async {
        replica
            .sample(r#"lmi_drift_detected_total{kind="CapacityProvider"}"#)
            .await
            >= 1.0
    })
    .await;
    let text = replica.scrape().await;
    for series in DOCUMENTED {
        let family = series.trim_end_matches("_total");
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{series} is not exposed:\n{text}"
        );
    }
}
