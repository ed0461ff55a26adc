//! `/readyz` flips to ready once the leader's caches have synced.

use std::time::Duration;

use lmi_test_apiserver::Fault;

use crate::world::{Operator, Options, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_waits_for_the_cache_to_sync() {
    let world = World::start().await;
    // The controllers' first list of CapacityProviders fails for a while: their cache cannot
    // fill, and the replica must not claim to be ready.
    world.api.inject(
        Fault::status(500)
            .times(20)
            .method(lmi_test_apiserver::Method::GET)
            .path_contains("capacityproviders"),
    );
    let operator = Operator::start(&world, Options::replica("replica-a")).await;
    world
        .eventually("a to lead", Duration::from_secs(15), || async {
            world.lease_holder().await.is_some()
        })
        .await;
    world
        .eventually(
            "not ready while the cache cannot fill",
            Duration::from_secs(10),
            || async {
                let (status, body) = operator.readyz().await;
                status == 503 && body.contains("waiting for caches: CapacityProvider")
            },
        )
        .await;

    world.api.clear_faults();
    world
        .eventually(
            "ready once the cache synced",
            Duration::from_secs(30),
            || async { operator.readyz().await == (200, "ok: leader, caches synced\n".to_owned()) },
        )
        .await;
    assert_eq!(crate::world::get(operator.probes, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_leader_election_the_replica_leads_at_once() {
    let world = World::start().await;
    let mut options = Options::replica("solo");
    options.leader_election = false;
    let operator = Operator::start(&world, options).await;
    world
        .eventually("ready", Duration::from_secs(15), || async {
            operator.readyz().await.0 == 200
        })
        .await;
    assert_eq!(operator.sample("lmi_leader").await, 1.0);
    assert_eq!(world.lease_holder().await, None, "no Lease is used");
}
