//! Report: the status the reconcile writes (built by pure code), and the one server-side apply
//! that writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::plan::ProviderPlan;
use super::resolve::World;
use crate::api::capacity_provider::{
    CapacityProvider, CapacityProviderStatus, ProviderState, VersionQuota,
};
use crate::api::conditions::{self as cond, reason};
use crate::controller::conditions::Conditions;
use crate::controller::context::FIELD_MANAGER;
use crate::controller::error::Error;

/// What one reconcile found and did.
pub struct Outcome<'a> {
    /// Name in AWS.
    pub aws_name: &'a str,
    /// Region.
    pub region: &'a str,
    /// What resolve read (updated by apply).
    pub world: &'a World,
    /// The provider plan.
    pub plan: &'a ProviderPlan,
    /// Whether drift was corrected in this reconcile.
    pub corrected: bool,
    /// Function versions attached to the provider (`None`: not read, the provider is not
    /// Active).
    pub attached: Option<Vec<String>>,
    /// AWS's limit of function versions per provider.
    pub version_limit: usize,
    /// The tags the provider must carry.
    pub desired_tags: &'a std::collections::BTreeMap<String, String>,
}

/// The status for `cp` after a successful reconcile, and the conditions that changed.
pub fn status(
    cp: &CapacityProvider,
    outcome: &Outcome<'_>,
    now: Time,
) -> (CapacityProviderStatus, Conditions) {
    let previous = cp.status.clone().unwrap_or_default();
    let generation = cp.metadata.generation.unwrap_or_default();
    let world = outcome.world;
    let mut c = Conditions::new(&previous.conditions, generation, now.clone());

    match &world.network.problem {
        None => c.set(
            cond::NETWORK_READY,
            true,
            reason::AVAILABLE,
            network_summary(world),
        ),
        Some(p) => c.set(cond::NETWORK_READY, false, p.reason, p.message.clone()),
    }
    match &world.instances.problem {
        Some(p) => c.set(
            cond::INSTANCE_TYPES_AVAILABLE,
            false,
            p.reason,
            p.message.clone(),
        ),
        None if world.instances.resolved.is_empty() => c.set(
            cond::INSTANCE_TYPES_AVAILABLE,
            true,
            reason::AVAILABLE,
            "Lambda chooses the instance types",
        ),
        None => c.set(
            cond::INSTANCE_TYPES_AVAILABLE,
            true,
            reason::AVAILABLE,
            format!(
                "offered in the subnets' zones: {}",
                world.instances.resolved.join(", ")
            ),
        ),
    }
    c.set(
        cond::SYNCED,
        true,
        reason::APPLIED,
        format!("generation {generation} applied"),
    );
    let drift = &outcome.plan.drift;
    if drift.is_empty() {
        c.set(
            cond::DRIFTED,
            false,
            reason::IN_SYNC,
            "AWS matches the spec",
        );
    } else {
        let fields: Vec<&str> = drift.iter().map(|d| d.field.as_str()).collect();
        let all_fixed = outcome.corrected && drift.iter().all(|d| d.correctable);
        let (why, what) = if all_fixed {
            (reason::DRIFT_CORRECTED, "changed outside Git; corrected")
        } else {
            (
                reason::DRIFT_DETECTED,
                "changed outside Git; see status.drift (fields AWS fixes at creation, or \
                 driftPolicy Report, are not corrected)",
            )
        };
        c.set(
            cond::DRIFTED,
            true,
            why,
            format!("{}: {what}", fields.join(", ")),
        );
    }

    let provider = world.provider.as_ref().map(|(p, _)| p);
    let blocking = world
        .network
        .problem
        .iter()
        .chain(world.instances.problem.iter())
        .find(|p| p.blocking);
    let (ready, why, message) = if outcome.plan.other_installation {
        (
            false,
            reason::NAME_CONFLICT,
            format!(
                "a capacity provider named {} exists in AWS and belongs to another installation \
                 of the operator (tag lmi.dev/installation); it is never adopted or changed: \
                 choose another spec.awsName, or give the clusters different --cluster-name \
                 values",
                outcome.aws_name
            ),
        )
    } else if outcome.plan.conflict {
        (
            false,
            reason::NAME_CONFLICT,
            format!(
                "a capacity provider named {} exists in AWS and was not created for this \
                 object; set spec.adopt: true to take it over, or choose another spec.awsName",
                outcome.aws_name
            ),
        )
    } else if let (Some(p), None) = (blocking, provider) {
        (false, p.reason, p.message.clone())
    } else {
        match provider.map(|p| p.state) {
            None => (
                false,
                reason::PROVISIONING,
                "creating the capacity provider".into(),
            ),
            Some(ProviderState::Pending) => (
                false,
                reason::PROVISIONING,
                "the capacity provider is Pending in AWS".into(),
            ),
            Some(ProviderState::Failed) => (
                false,
                reason::AWS_FAILED,
                "AWS reports the capacity provider Failed: check the operator role and the \
                 network, then recreate it"
                    .into(),
            ),
            Some(ProviderState::Deleting) => (
                false,
                reason::PROVISIONING,
                "the capacity provider is being deleted in AWS".into(),
            ),
            Some(ProviderState::Active) => match blocking {
                Some(p) => (false, p.reason, p.message.clone()),
                None => (
                    true,
                    reason::AVAILABLE,
                    "the capacity provider is Active".into(),
                ),
            },
        }
    };
    c.set(cond::READY, ready, why, message);

    let status = CapacityProviderStatus {
        observed_generation: Some(generation),
        aws_name: Some(outcome.aws_name.to_owned()),
        arn: provider.map(|p| p.arn.clone()),
        region: Some(outcome.region.to_owned()),
        state: provider.map(|p| p.state),
        network: Some(world.network.status.clone()),
        instance_types: world.instances.resolved.clone(),
        function_versions: outcome.attached.clone().unwrap_or_default(),
        function_version_quota: outcome.attached.as_ref().map(|a| VersionQuota {
            used: i64::try_from(a.len()).unwrap_or(i64::MAX),
            limit: i64::try_from(outcome.version_limit).unwrap_or(i64::MAX),
        }),
        managed_tags: match &world.provider {
            Some((_, held)) => outcome
                .desired_tags
                .iter()
                .filter(|(k, v)| held.get(*k) == Some(*v))
                .map(|(k, _)| k.clone())
                .collect(),
            // nothing read: keep what was recorded
            None => previous.managed_tags.clone(),
        },
        adopted_arn: if outcome.plan.adopting {
            provider.map(|p| p.arn.clone())
        } else {
            previous.adopted_arn.clone()
        },
        drift: drift.clone(),
        last_sync_time: Some(now),
        conditions: Vec::new(),
    };
    (status, c)
}

fn network_summary(world: &World) -> String {
    let s = &world.network.status;
    let subnets: Vec<String> = s
        .subnets
        .iter()
        .map(|x| format!("{} ({}, {:?})", x.id, x.availability_zone, x.egress))
        .collect();
    format!(
        "{} in {}",
        subnets.join(", "),
        s.vpc_id.as_deref().unwrap_or("<no VPC>")
    )
}

/// Writes the status with server-side apply (one field manager, forced: the operator is the
/// only writer of status).
pub async fn patch(
    api: &Api<CapacityProvider>,
    cp: &CapacityProvider,
    status: &CapacityProviderStatus,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "CapacityProvider",
        "status": status,
    });
    api.patch_status(
        &cp.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("PatchStatus"))?;
    Ok(())
}
