//! The operator runtime end to end: leader election between replicas on one real API
//! server, readiness, the metrics endpoint after real reconciles against the AWS emulator, the
//! `lmi-operator run` process as the chart configures it, and least privilege (the chart's RBAC
//! and the IAM policy against what the operator really does).

#[path = "../harness/mod.rs"]
mod harness;

mod leader;
mod lifecycles;
mod metrics;
mod permissions;
mod process;
mod readiness;

use std::time::Duration;

use harness::chart::{NAMESPACE, lease_name};
use harness::{World, eventually, has_condition, provider_conditions, provider_manifest};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use lmi_test_support::Network;

/// The Lease holder, if any.
pub async fn lease_holder(world: &World) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(world.kube.clone(), NAMESPACE);
    leases
        .get_opt(&lease_name())
        .await
        .expect("read the lease")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Waits until `check` holds; fails naming `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        eventually(timeout, check).await,
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Applies a provider on the good network.
pub async fn apply_provider(world: &World, net: &Network, name: &str) {
    world
        .apply_provider(provider_manifest(
            name,
            &net.private_subnet_ids(),
            std::slice::from_ref(&net.security_group_id),
            &world.role_arn,
        ))
        .await;
}

/// Whether the provider is Ready for its current generation.
pub fn ready(cp: &lmi_operator::api::CapacityProvider) -> bool {
    cp.status.as_ref().is_some_and(|s| {
        s.observed_generation == cp.metadata.generation
            && has_condition(provider_conditions(cp), "Ready", "True", None)
    })
}
