//! Stalls: an AWS endpoint that accepts connections and never answers. Every call is bounded by
//! the operator's AWS timeouts and every reconcile by `--reconcile-timeout`, so the operator
//! stays live (reconciles keep finishing, `/healthz` stays healthy), reports the timeouts on
//! the resources, and converges once AWS answers again.
//!
//! And credentials that expire mid-run: retried, reported as `CredentialsExpired`, and never
//! taken for a broken provider (its functions stay admitted and Ready).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lmi_operator::aws::AwsTimeouts;
use lmi_test_support::{Fault, Outcome};

use crate::harness::functions::{PROVIDER, TEAM, conditions, is_ready};
use crate::harness::{World, condition, eventually, has_condition, provider_conditions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_aws_endpoint_is_reported_and_the_operator_recovers() {
    let (mut world, net) = World::for_functions().await;
    world.config.aws_timeouts = AwsTimeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_secs(1),
        operation: Duration::from_secs(3),
    };
    world.config.reconcile_timeout = Duration::from_secs(20);
    world.config.stall_timeout = Duration::from_secs(60);
    world.start_operator();
    world.ready_provider(&net).await;
    let mut manifest = world.function(TEAM, "fn");
    world.apply_function(&manifest).await;
    world.wait_function_ready(TEAM, "fn").await;

    // AWS stops answering; a spec change gives the operator work.
    world
        .proxy
        .fail_next(None, (0..100_000).map(|_| Fault::Stall));
    manifest["spec"]["memoryMiB"] = 6144.into();
    world.apply_function(&manifest).await;
    world
        .wait_function(TEAM, "fn", "reporting the timeouts", |sf| {
            condition(conditions(sf), "Synced").is_some_and(|c| {
                c.status == "False"
                    && c.reason == "AwsUnreachable"
                    && c.message.contains("timed out")
            })
        })
        .await;

    // Still stalled a while later, and still alive: reconciles finish (with their errors), new
    // attempts keep coming, nothing hangs.
    let stalls = || {
        world
            .proxy
            .log()
            .iter()
            .filter(|r| r.outcome == Outcome::Injected(Fault::Stall))
            .count()
    };
    let before = stalls();
    let kept_trying =
        eventually(Duration::from_secs(30), || async { stalls() >= before + 5 }).await;
    assert!(
        kept_trying,
        "the operator stopped calling AWS: {before} stalled calls, no more"
    );
    let ctx = world.operator_context().expect("running");
    assert_eq!(
        ctx.liveness.check(),
        Ok(()),
        "the operator counts as stalled"
    );

    // AWS answers again: the change lands.
    world.proxy.clear_faults();
    world
        .wait_function(TEAM, "fn", "Ready with the new memory", |sf| {
            is_ready(sf) && sf.metadata.generation == Some(2)
        })
        .await;
    let memory = world
        .aws_function(TEAM, "fn")
        .await
        .and_then(|f| f.configuration().and_then(|c| c.memory_size()));
    assert_eq!(memory, Some(6144));
    world.stop_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_mid_run_are_retried_and_never_fail_the_functions() {
    const EXPIRED: usize = 40;
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world.apply_function(&world.function(TEAM, "fn")).await;
    world.wait_function_ready(TEAM, "fn").await;

    // The next calls all find the credentials expired, until the token is refreshed (the
    // queued faults run out).
    world
        .proxy
        .fail_next(None, (0..EXPIRED).map(|_| Fault::ExpiredToken));
    let expired = || {
        world
            .proxy
            .log()
            .iter()
            .filter(|r| r.outcome == Outcome::Injected(Fault::ExpiredToken))
            .count()
    };
    let reported = AtomicBool::new(false);
    let done = eventually(Duration::from_secs(60), || async {
        let cp = world.providers().get(PROVIDER).await.expect("provider");
        if has_condition(
            provider_conditions(&cp),
            "Synced",
            "False",
            Some("CredentialsExpired"),
        ) {
            reported.store(true, Ordering::SeqCst);
        }
        // Throughout: the provider stays Ready, the function admitted and Ready.
        assert!(
            has_condition(provider_conditions(&cp), "Ready", "True", None),
            "expired credentials made the provider not Ready: {:?}",
            provider_conditions(&cp)
        );
        let sf = world.functions(TEAM).get("fn").await.expect("function");
        assert!(
            is_ready(&sf),
            "expired credentials made the function not Ready: {:?}",
            conditions(&sf)
        );
        expired() == EXPIRED
    })
    .await;
    assert!(
        done,
        "only {} of {EXPIRED} expired answers were used",
        expired()
    );
    assert!(
        reported.into_inner(),
        "the provider never reported CredentialsExpired"
    );

    // Fresh credentials: everything syncs again.
    world
        .wait_provider(PROVIDER, "synced again", |cp| {
            has_condition(provider_conditions(cp), "Synced", "True", None)
        })
        .await;
    world
        .wait_function(TEAM, "fn", "synced again", |sf| {
            is_ready(sf) && has_condition(conditions(sf), "Synced", "True", None)
        })
        .await;
    world.stop_operator().await;
}
