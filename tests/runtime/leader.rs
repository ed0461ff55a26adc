//! Two replicas, one Lease: only the holder reconciles; when it dies the other takes over
//! within the lease duration; a leader that loses the lease stops; SIGTERM lets in-flight
//! reconciles finish and then releases the lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams};
use lmi_test_support::FaultPlan;
use serde_json::json;

use crate::harness::World;
use crate::harness::chart::{NAMESPACE, lease_name};
use crate::harness::replica::{LEASE_DURATION, Replica, ReplicaOptions};
use crate::{apply_provider, lease_holder, ready, wait_for};

/// The Lease's spec.
async fn lease(world: &World) -> k8s_openapi::api::coordination::v1::LeaseSpec {
    let leases: Api<Lease> = Api::namespaced(world.kube.clone(), NAMESPACE);
    leases
        .get(&lease_name())
        .await
        .expect("read the lease")
        .spec
        .expect("a lease spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let world = World::start().await;
    let net = world.good_network().await;
    let mut a = Replica::start(&world, ReplicaOptions::named("replica-a")).await;
    let mut b = Replica::start(&world, ReplicaOptions::named("replica-b")).await;
    wait_for("a leader", Duration::from_secs(15), || async {
        lease_holder(&world).await.is_some()
    })
    .await;
    let holder = lease_holder(&world).await.expect("holder");
    let (leader, standby) = if holder == a.identity {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    wait_for("the standby ready", Duration::from_secs(10), || async {
        standby.readyz().await == (200, "ok: standby\n".to_owned())
    })
    .await;
    assert_eq!(leader.sample("lmi_leader").await, 1.0);
    assert_eq!(standby.sample("lmi_leader").await, 0.0);

    apply_provider(&world, &net, "primary").await;
    world.wait_provider("primary", "Ready", ready).await;
    // A reconcile is counted when it returns, just after its status write.
    wait_for(
        "the leader to count its reconcile",
        Duration::from_secs(10),
        || async { leader.reconciles().await >= 1.0 },
    )
    .await;
    assert!(leader.aws_calls().await >= 1.0);
    assert_eq!(standby.reconciles().await, 0.0, "the standby reconciled");
    assert_eq!(standby.aws_calls().await, 0.0, "the standby called AWS");

    // The leader dies without releasing the lease; the standby takes it over once it has
    // expired, never before (the Lease's own times say when: renewTime + duration of the dead
    // holder, acquireTime of the new one), and promptly (waited for, not timed: a loaded machine
    // may be slow, the lease must still never be stolen early).
    leader.kill().await;
    let dead = lease(&world).await;
    let expired_at = dead.renew_time.as_ref().expect("renewTime").0
        + Duration::from_secs(
            u64::try_from(dead.lease_duration_seconds.expect("leaseDurationSeconds"))
                .expect("a positive duration"),
        );
    wait_for("the standby to take over", LEASE_DURATION * 10, || async {
        lease_holder(&world).await.as_deref() == Some(standby.identity.as_str())
    })
    .await;
    let taken = lease(&world).await;
    let acquired = taken.acquire_time.as_ref().expect("acquireTime").0;
    assert!(
        acquired >= expired_at,
        "the standby took the lease at {acquired}, before it expired at {expired_at}"
    );
    assert_eq!(
        taken.lease_transitions,
        dead.lease_transitions.map(|t| t + 1),
        "one transition"
    );
    wait_for(
        "the new leader to lead",
        Duration::from_secs(10),
        || async { standby.sample("lmi_leader").await == 1.0 },
    )
    .await;

    // The new leader reconciles: a spec change reaches AWS and status.
    world
        .providers()
        .patch(
            "primary",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"scaling": {"maxVCpuCount": 128}}})),
        )
        .await
        .expect("patch the spec");
    world
        .wait_provider("primary", "Ready for the new spec", ready)
        .await;
    // A reconcile is counted when it returns, just after its status write.
    wait_for(
        "the new leader to count its reconcile",
        Duration::from_secs(10),
        || async { standby.reconciles().await >= 1.0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_reconciles_then_releases_the_lease() {
    let world = World::start().await;
    let net = world.good_network().await;
    let mut a = Replica::start(
        &world,
        ReplicaOptions {
            lease_duration: Duration::from_secs(60),
            ..ReplicaOptions::named("replica-a")
        },
    )
    .await;
    wait_for("a to lead", Duration::from_secs(15), || async {
        lease_holder(&world).await.as_deref() == Some("replica-a")
    })
    .await;

    // Every AWS call takes 500 ms: a reconcile is in flight for seconds.
    world
        .proxy
        .set_plan(FaultPlan::none().latency(Duration::from_millis(500)));
    apply_provider(&world, &net, "primary").await;
    let user = world.identity.user.clone();
    wait_for(
        "a reconcile to be under way",
        Duration::from_secs(15),
        || async {
            // The first AWS read is done; the create and the status write are still to come.
            world.proxy.log().iter().any(|r| r.service == "ec2")
        },
    )
    .await;
    assert!(
        world.aws_provider_names().await.is_empty(),
        "too late: the provider exists already"
    );

    a.terminate().await.expect("a clean stop");
    assert_eq!(
        lease_holder(&world).await,
        None,
        "the lease was not released"
    );
    // The reconcile in flight ran to its end: AWS has the provider and status says so.
    let cp = world.providers().get("primary").await.expect("read");
    let status = cp.status.expect("the in-flight reconcile wrote status");
    assert!(status.arn.is_some(), "{status:?}");
    assert_eq!(world.aws_provider_names().await.len(), 1);
    // ... and its status write came before the lease was released.
    let audit = world.api.audit();
    let position = |pred: &dyn Fn(&lmi_test_support::kube::AuditEvent) -> bool| {
        audit.iter().rposition(|e| e.user == user && pred(e))
    };
    let last_status = position(&|e| e.subresource == "status").expect("a status write");
    let release = position(&|e| e.resource == "leases" && e.verb == "patch").expect("the release");
    assert!(
        last_status < release,
        "the lease was released mid-reconcile"
    );

    // A replica started afterwards leads at once: it need not wait for the lease to expire.
    // a's lease lasted a minute, so b leading within 30 s cannot have waited for its expiry,
    // however slow the machine.
    world.proxy.clear_faults();
    let _b = Replica::start(&world, ReplicaOptions::named("replica-b")).await;
    wait_for("b to lead", Duration::from_secs(30), || async {
        lease_holder(&world).await.as_deref() == Some("replica-b")
    })
    .await;
    world.wait_provider("primary", "Ready", ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_reconciling() {
    let world = World::start().await;
    let net = world.good_network().await;
    let a = Replica::start(&world, ReplicaOptions::named("replica-a")).await;
    wait_for("a to lead", Duration::from_secs(15), || async {
        lease_holder(&world).await.as_deref() == Some("replica-a")
    })
    .await;

    // Another replica holds the lease now (as after a partition healed) and keeps renewing it:
    // a must notice at its next renewal and stand down.
    let leases: Api<Lease> = Api::namespaced(world.kube.clone(), NAMESPACE);
    let take = move |leases: Api<Lease>| async move {
        leases
            .patch(
                &lease_name(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {
                    "holderIdentity": "intruder",
                    "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
                    "leaseDurationSeconds": 600,
                }})),
            )
            .await
    };
    take(leases.clone()).await.expect("take the lease");
    let renewing = tokio::spawn({
        let leases = leases.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = take(leases.clone()).await;
            }
        }
    });
    wait_for("a to stand down", LEASE_DURATION * 2, || async {
        a.sample("lmi_leader").await == 0.0
    })
    .await;
    wait_for("a ready as a standby", Duration::from_secs(10), || async {
        a.readyz().await == (200, "ok: standby\n".to_owned())
    })
    .await;

    // It does not reconcile any more.
    let before = a.reconciles().await;
    apply_provider(&world, &net, "ignored").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.reconciles().await, before);
    let cp = world.providers().get("ignored").await.expect("read");
    assert!(cp.status.is_none(), "a stood-down leader wrote status");
    assert!(
        cp.metadata.finalizers.is_none(),
        "a stood-down leader added its finalizer"
    );
    renewing.abort();
}
