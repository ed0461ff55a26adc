//! `/readyz` flips to ready once the leader's caches have synced; `/healthz` answers throughout.

use std::time::Duration;

use lmi_test_support::kube::{ApiFault as Fault, Method};

use crate::harness::World;
use crate::harness::replica::{Replica, ReplicaOptions, get};
use crate::{lease_holder, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_caches_to_sync() {
    let world = World::start().await;
    // The controllers' first lists of CapacityProviders fail for a while: their cache cannot
    // fill, and the replica must not claim to be ready.
    world.api.inject(
        Fault::status(500)
            .times(1000)
            .method(Method::GET)
            .path_contains("capacityproviders"),
    );
    let replica = Replica::start(&world, ReplicaOptions::named("replica-a")).await;
    wait_for("a to lead", Duration::from_secs(15), || async {
        lease_holder(&world).await.is_some()
    })
    .await;
    wait_for(
        "not ready while the cache cannot fill",
        Duration::from_secs(10),
        || async {
            let (status, body) = replica.readyz().await;
            status == 503 && body.contains("waiting for caches: CapacityProvider")
        },
    )
    .await;
    assert_eq!(
        get(replica.probes, "/healthz").await.0,
        200,
        "alive all along"
    );

    world.api.clear_faults();
    wait_for(
        "ready once the cache synced",
        Duration::from_secs(30),
        || async { replica.readyz().await == (200, "ok: leader, caches synced\n".to_owned()) },
    )
    .await;
    assert_eq!(get(replica.probes, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leader_election_the_replica_leads_at_once() {
    let world = World::start().await;
    let mut options = ReplicaOptions::named("solo");
    options.leader_election = false;
    let replica = Replica::start(&world, options).await;
    wait_for("ready", Duration::from_secs(15), || async {
        replica.readyz().await.0 == 200
    })
    .await;
    assert_eq!(replica.sample("lmi_leader").await, 1.0);
    assert_eq!(lease_holder(&world).await, None, "no Lease is used");
}
