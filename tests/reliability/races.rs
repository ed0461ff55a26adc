//! Races with changes made outside Git: `$LATEST` changed by someone else between the operator's
//! read and its `PublishVersion`. The publish is guarded by the code hash and revision the
//! operator read, so Lambda refuses it (found by the chaos test, where the emulator once let
//! such a publish through and the tampered configuration was served as the spec). The operator
//! must treat the refusal as a conflict — read again, repair `$LATEST`, publish — not as invalid
//! input, and never serve a version holding the other party's change.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use lmi_test_support::{Fault, FaultPlan, Outcome};

use crate::harness::functions::{TEAM, conditions, handler_zip, is_ready, version};
use crate::harness::{CONVERGE, World, eventually, has_condition};
use crate::inventory::published;

/// How long each AWS call takes through the proxy while racing: the window between the
/// operator's read and its publish.
const LATENCY: Duration = Duration::from_millis(600);

/// How `$LATEST` is changed behind the operator's back.
#[derive(Clone, Copy, Debug)]
enum Change {
    Code,
    Memory,
}

/// Makes the operator's first publish of `name` fail, waits for the pass that reads `$LATEST`
/// and its versions again, and changes `$LATEST` while that pass's publish is on its way.
async fn race_a_publish(world: &World, name: &str, change: Change) {
    world
        .proxy
        .fail_next(Some("PublishVersion"), [Fault::InternalError; 3]);
    world.apply_function(&world.function(TEAM, name)).await;
    let raced = eventually(CONVERGE, || async {
        let log = world.proxy.log();
        let refused = log
            .iter()
            .rposition(|r| r.operation == "PublishVersion" && r.outcome != Outcome::Forwarded(201));
        refused.is_some_and(|at| {
            log[at..]
                .iter()
                .any(|r| r.operation == "ListVersionsByFunction")
        })
    })
    .await;
    assert!(raced, "{name}: no second pass after the failed publish");
    let aws_name = world.function_aws_name(TEAM, name);
    match change {
        Change::Code => {
            world
                .lambda
                .update_function_code()
                .function_name(&aws_name)
                .zip_file(Blob::new(handler_zip("raced")))
                .send()
                .await
                .expect("change the code by hand");
        }
        Change::Memory => {
            world
                .lambda
                .update_function_configuration()
                .function_name(&aws_name)
                .memory_size(10240)
                .send()
                .await
                .expect("change the memory by hand");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_change_racing_a_publish_is_never_published_as_the_spec() {
    // Lambda refuses the publish for its code hash: 400 InvalidParameterValueException.
    race(Change::Code, 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_change_racing_a_publish_is_never_published_as_the_spec() {
    // Lambda refuses the publish for its revision: 412 PreconditionFailedException.
    race(Change::Memory, 412).await;
}

async fn race(change: Change, refused_with: u16) {
    let (mut world, net) = World::for_functions().await;
    world.start_operator();
    world.ready_provider(&net).await;
    world.proxy.set_plan(FaultPlan::seeded(1).latency(LATENCY));
    race_a_publish(&world, "products", change).await;

    let sf = world.wait_function_ready(TEAM, "products").await;
    let serving = version(&sf).expect("serving version").to_owned();
    let versions = published(&world, &world.function_aws_name(TEAM, "products")).await;
    assert!(
        versions
            .iter()
            .any(|v| v.number.to_string() == serving && v.memory_mib == Some(4096)),
        "{change:?}: version {serving} does not serve the spec: {versions:?}"
    );
    let spec_code = world.handlers.sha256("arm64");
    assert!(
        versions
            .iter()
            .all(|v| v.memory_mib == Some(4096) && v.code_sha256.as_ref() == Some(&spec_code)),
        "{change:?}: a version holds the raced change: {versions:?}"
    );
    assert_eq!(
        world.aws_code_sha256(TEAM, "products").await,
        Some(spec_code),
        "{change:?}: $LATEST code not restored"
    );
    // The refused publish is a conflict to retry, not invalid input.
    let reasons = world.event_reasons("products").await;
    assert!(
        !reasons.iter().any(|r| r == "InvalidRequest"),
        "{change:?}: the refused publish was reported as invalid input: {reasons:?}"
    );
    assert!(is_ready(&sf) && has_condition(conditions(&sf), "Synced", "True", None));
    let refused: Vec<u16> = world
        .proxy
        .log()
        .iter()
        .filter(|r| r.operation == "PublishVersion")
        .filter_map(|r| match r.outcome {
            Outcome::Forwarded(status) if status >= 400 => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [refused_with],
        "{change:?}: the raced publish was not refused by Lambda"
    );
    world.stop_operator().await;
}
