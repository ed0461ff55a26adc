//! Two replicas, one Lease: only the holder reconciles; when it dies the other takes over
//! within the lease duration; SIGTERM releases the lease.

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::world::{LEASE_DURATION, Operator, Options, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let world = World::start().await;
    let mut a = Operator::start(&world, Options::replica("replica-a")).await;
    let mut b = Operator::start(&world, Options::replica("replica-b")).await;

    world
        .eventually("a leader", Duration::from_secs(15), || async {
            world.lease_holder().await.is_some()
        })
        .await;
    let holder = world.lease_holder().await.expect("holder");
    let (leader, standby) = if holder == a.identity {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    world
        .eventually(
            "the standby ready as standby",
            Duration::from_secs(10),
            || async { standby.readyz().await == (200, "ok: standby\n".to_owned()) },
        )
        .await;
    assert_eq!(leader.sample("lmi_leader").await, 1.0);
    assert_eq!(standby.sample("lmi_leader").await, 0.0);

    world.create_provider("primary").await;
    world
        .eventually("the provider Ready", Duration::from_secs(30), || async {
            world.provider_ready("primary").await
        })
        .await;
    assert!(leader.reconciles().await >= 1.0);
    assert!(leader.aws_calls().await >= 1.0);
    assert_eq!(standby.reconciles().await, 0.0, "the standby reconciled");
    assert_eq!(standby.aws_calls().await, 0.0, "the standby called AWS");

    // The leader dies without releasing the lease; the standby takes over once it expires.
    let died = Instant::now();
    leader.kill();
    world
        .eventually("the standby to take over", LEASE_DURATION * 3, || async {
            world.lease_holder().await.as_deref() == Some(standby.identity.as_str())
        })
        .await;
    let took = died.elapsed();
    assert!(
        took <= LEASE_DURATION + Duration::from_secs(2),
        "takeover took {took:?}, the lease lasts {LEASE_DURATION:?}"
    );
    world
        .eventually(
            "the new leader to lead",
            Duration::from_secs(10),
            || async { standby.sample("lmi_leader").await == 1.0 },
        )
        .await;

    // The new leader reconciles: a spec change reaches status.
    world
        .providers()
        .patch(
            "primary",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"scaling": {"maxVCpuCount": 128}}})),
        )
        .await
        .expect("patch spec");
    world
        .eventually(
            "the change applied by the new leader",
            Duration::from_secs(30),
            || async { world.provider_ready("primary").await },
        )
        .await;
    assert!(standby.reconciles().await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_stops_the_leader_and_releases_the_lease() {
    let world = World::start().await;
    let mut a = Operator::start(&world, Options::replica("replica-a")).await;
    world
        .eventually("a to lead", Duration::from_secs(15), || async {
            world.lease_holder().await.as_deref() == Some("replica-a")
        })
        .await;
    world.create_provider("primary").await;
    world
        .eventually("the provider Ready", Duration::from_secs(30), || async {
            world.provider_ready("primary").await
        })
        .await;

    a.terminate().await.expect("a clean stop");
    assert_eq!(
        world.lease_holder().await,
        None,
        "the lease was not released"
    );

    // A replica started afterwards leads at once: it need not wait for the lease to expire.
    let started = Instant::now();
    let b = Operator::start(&world, Options::replica("replica-b")).await;
    world
        .eventually("b to lead", Duration::from_secs(10), || async {
            world.lease_holder().await.as_deref() == Some("replica-b")
        })
        .await;
    assert!(
        started.elapsed() < LEASE_DURATION,
        "b waited {:?} for a released lease",
        started.elapsed()
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_loses_its_lease_stops_reconciling() {
    let world = World::start().await;
    let a = Operator::start(&world, Options::replica("replica-a")).await;
    world
        .eventually("a to lead", Duration::from_secs(15), || async {
            world.lease_holder().await.as_deref() == Some("replica-a")
        })
        .await;

    // Someone else takes the lease (as a standby would after a partition healed): a must notice
    // at its next renewal and step down.
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(world.api.client(), crate::world::NAMESPACE);
    leases
        .patch(
            crate::world::LEASE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "holderIdentity": "intruder",
                "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::now()),
                "leaseDurationSeconds": 600,
            }})),
        )
        .await
        .expect("take the lease");
    // The intruder keeps renewing, as a live leader would.
    let renewing = {
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = leases
                    .patch(
                        crate::world::LEASE,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {
                            "holderIdentity": "intruder",
                            "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                                k8s_openapi::jiff::Timestamp::now()),
                            "leaseDurationSeconds": 600,
                        }})),
                    )
                    .await;
            }
        })
    };
    world
        .eventually("a to step down", LEASE_DURATION * 2, || async {
            a.sample("lmi_leader").await == 0.0
        })
        .await;
    assert_eq!(a.readyz().await.0, 200, "a stands by, ready");

    // It does not reconcile any more.
    let before = a.reconciles().await;
    world.create_provider("ignored").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.reconciles().await, before);
    assert!(
        world
            .providers()
            .get("ignored")
            .await
            .expect("read")
            .status
            .is_none(),
        "a stood-down leader wrote status"
    );
    renewing.abort();
}
