//! Creates whose answer is lost: AWS made the resource, the operator never heard of it, and the
//! SDK sends the request again. With a client token the retry gets the first resource back
//! (EC2's documented idempotency, which the emulator follows); without one it would make a
//! second resource that nothing records, leaked for good.

use lmi_test_support::{Egress, Fault, Network, Outcome};

use crate::harness::{World, has_condition, managed_network_manifest, provider_conditions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_vpc_endpoint_answer_leaves_no_second_endpoint() {
    let mut world = World::start().await;
    let isolated = Network::isolated(&world.ec2)
        .await
        .expect("isolated network");
    let subnets = isolated.subnet_ids(Egress::None);
    // The first endpoint's answer is lost after EC2 created it.
    world
        .proxy
        .fail_next(Some("CreateVpcEndpoint"), [Fault::LostResponse]);
    world.start_operator();
    world
        .apply_provider(managed_network_manifest(
            "endpoints",
            &subnets,
            &world.role_arn,
        ))
        .await;
    let cp = world
        .wait_provider("endpoints", "Ready with its endpoints", |cp| {
            has_condition(provider_conditions(cp), "Ready", "True", None)
                && has_condition(provider_conditions(cp), "NetworkReady", "True", None)
        })
        .await;

    // The fault fired: four creates reached EC2 (the lost one and its retry among them) for
    // three endpoints.
    let log = world.proxy.log();
    assert!(
        log.iter().any(|r| r.operation == "CreateVpcEndpoint"
            && r.outcome == Outcome::Injected(Fault::LostResponse)),
        "the lost answer was not injected"
    );
    let forwarded = log
        .iter()
        .filter(|r| r.operation == "CreateVpcEndpoint" && r.outcome == Outcome::Forwarded(200))
        .count();
    assert_eq!(forwarded, 4, "creates that reached EC2");

    // Exactly the three endpoints the provider records exist in the VPC.
    let recorded = cp
        .status
        .and_then(|s| s.network)
        .expect("network status")
        .vpc_endpoint_ids;
    assert_eq!(
        recorded.len(),
        3,
        "logs, monitoring and X-Ray: {recorded:?}"
    );
    let existing: Vec<String> = world
        .ec2
        .describe_vpc_endpoints()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&isolated.vpc_id)
                .build(),
        )
        .send()
        .await
        .expect("describe endpoints")
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().is_none_or(|s| s.as_str() != "deleted"))
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_owned))
        .collect();
    let mut existing_sorted = existing.clone();
    existing_sorted.sort();
    let mut recorded_sorted = recorded.clone();
    recorded_sorted.sort();
    assert_eq!(
        existing_sorted, recorded_sorted,
        "an endpoint exists that the provider does not record (the lost one, made twice)"
    );
    world.stop_operator().await;
}
