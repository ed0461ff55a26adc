//! Report: the status the reconcile writes (built by pure code), and the one server-side apply
//! that writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::admission::{Admitted, Refusal};
use super::plan::{Desired, Standing, World};
use super::versions;
use crate::api::common::DriftEntry;
use crate::api::conditions::{self as cond, reason};
use crate::api::similarity_function::{
    FunctionScaling, FunctionState, ScalingStatus, SimilarityFunction, SimilarityFunctionStatus,
};
use crate::aws::functions::unqualified;
use crate::aws::model::{ObservedFunction, ScalingConfig};
use crate::controller::conditions::Conditions;
use crate::controller::context::FIELD_MANAGER;
use crate::controller::error::Error;

/// What one reconcile of an admitted function found and did.
pub struct Outcome<'a> {
    /// The provider's admission.
    pub admitted: &'a Admitted,
    /// The desired state.
    pub desired: &'a Desired,
    /// What AWS holds (updated by apply).
    pub world: &'a World,
    /// Where the function stands.
    pub standing: &'a Standing,
    /// Differences found before any correction (empty while a spec change is applied).
    pub drift: Vec<DriftEntry>,
    /// Whether this reconcile changed AWS while drift was found (under `Correct`).
    pub corrected: bool,
    /// Whether the current generation is applied (status.observedGeneration advances).
    pub applied: bool,
}

/// The status after a reconcile of an admitted function, and its conditions.
pub fn status(
    sf: &SimilarityFunction,
    outcome: &Outcome<'_>,
    now: Time,
) -> (SimilarityFunctionStatus, Conditions) {
    let previous = sf.status.clone().unwrap_or_default();
    let generation = sf.metadata.generation.unwrap_or_default();
    let mut c = Conditions::new(&previous.conditions, generation, now.clone());
    let d = outcome.desired;
    let world = outcome.world;

    c.set(
        cond::CAPACITY_PROVIDER_READY,
        true,
        reason::AVAILABLE,
        format!(
            "CapacityProvider {} ({}) is Ready and admits namespace {}",
            outcome.admitted.provider,
            outcome.admitted.provider_arn,
            sf.namespace().unwrap_or_default()
        ),
    );
    let observed_generation = if outcome.applied {
        Some(generation)
    } else {
        previous.observed_generation
    };
    if observed_generation == Some(generation) {
        c.set(
            cond::SYNCED,
            true,
            reason::APPLIED,
            format!("generation {generation} applied"),
        );
    } else {
        let (why, message) = match outcome.standing {
            Standing::Stuck { reason, message } => (*reason, message.clone()),
            _ => (
                reason::PROVISIONING,
                format!("applying generation {generation}"),
            ),
        };
        c.set(cond::SYNCED, false, why, message);
    }
    set_drifted(&mut c, &outcome.drift, outcome.corrected);
    let (ready, why, message) = match outcome.standing {
        Standing::Ready => (true, reason::AVAILABLE, ready_message(d, world)),
        Standing::Waiting(message) => (false, reason::PROVISIONING, message.clone()),
        Standing::Stuck { reason, message } => (false, *reason, message.clone()),
    };
    c.set(cond::READY, ready, why, message);

    // The serving version: the one matching the spec once it runs, else the one reported
    // before while it still exists and runs (it serves until the new one is Active). A version
    // still starting, or one that failed to, never serves.
    let runs = |v: &&ObservedFunction| {
        matches!(
            v.state,
            Some(FunctionState::Active | FunctionState::Inactive)
        )
    };
    let current = d.current(world).filter(runs);
    let serving: Option<&ObservedFunction> = current.or_else(|| {
        previous
            .version
            .as_deref()
            .and_then(|p| world.versions.iter().find(|v| v.version == p))
            .filter(runs)
    });
    let is_current = serving.is_some() && serving == current;
    let scaling = serving.and_then(|v| match &world.scaling {
        Some((version, s)) if *version == v.version => Some(ScalingStatus {
            requested: s.requested.as_ref().map(api_scaling),
            applied: s.applied.as_ref().map(api_scaling),
        }),
        _ => None,
    });
    let status = SimilarityFunctionStatus {
        observed_generation,
        aws_name: Some(d.name.clone()),
        function_arn: world
            .function
            .as_ref()
            .map(|f| unqualified(&f.arn).to_owned()),
        capacity_provider_arn: Some(outcome.admitted.provider_arn.clone()),
        grant: Some(outcome.admitted.grant.clone()),
        version: serving.map(|v| v.version.clone()),
        versions: world
            .versions
            .iter()
            .filter(|v| versions::number(v).is_some())
            .map(|v| v.version.clone())
            .collect(),
        code_sha256: serving.and_then(|v| v.code_sha256.clone()),
        config_hash: if is_current {
            d.config_hash(world)
        } else {
            serving
                .and_then(|v| v.config.description.as_deref())
                .and_then(super::desired::hash_in_description)
                .map(str::to_owned)
        },
        state: serving.and_then(|v| v.state),
        last_update_status: world
            .function
            .as_ref()
            .and_then(|f| f.last_update_status.clone()),
        scaling,
        retired_versions: world
            .versions
            .iter()
            .filter(|v| world.retired.contains(&v.version))
            .map(|v| v.version.clone())
            .collect(),
        managed_tags: d
            .tags
            .iter()
            .filter(|(k, v)| world.tags.get(*k) == Some(*v))
            .map(|(k, _)| k.clone())
            .collect(),
        drift: outcome.drift.clone(),
        last_sync_time: Some(now),
        conditions: Vec::new(),
    };
    (status, c)
}

/// Conditions for a function the provider does not admit (yet): the rest of the status is kept
/// as it was. `suspended`: how many published versions a suspension holds deactivated (`None`
/// when the function was not suspended: it never ran, or the refusal only delays it).
pub fn refused(
    sf: &SimilarityFunction,
    refusal: &Refusal,
    suspended: Option<usize>,
    now: Time,
) -> (SimilarityFunctionStatus, Conditions) {
    let mut status = sf.status.clone().unwrap_or_default();
    let generation = sf.metadata.generation.unwrap_or_default();
    let mut c = Conditions::new(&status.conditions, generation, now.clone());
    let mut refusal = refusal.clone();
    if let Some(n) = suspended {
        refusal.message = format!(
            "{}; the function is suspended: its {n} published version(s) are deactivated (0 \
             execution environments) until a grant admits it again",
            refusal.message
        );
        status.state = None;
    }
    status.last_sync_time = Some(now);
    c.keep(cond::DRIFTED);
    c.set(
        cond::CAPACITY_PROVIDER_READY,
        false,
        refusal.reason,
        refusal.message.clone(),
    );
    c.set(cond::READY, false, refusal.reason, refusal.message.clone());
    if status.observed_generation == Some(generation) {
        c.keep(cond::SYNCED);
    } else {
        c.set(cond::SYNCED, false, refusal.reason, refusal.message.clone());
    }
    status.conditions = Vec::new();
    (status, c)
}

fn set_drifted(c: &mut Conditions, drift: &[DriftEntry], corrected: bool) {
    if drift.is_empty() {
        c.set(
            cond::DRIFTED,
            false,
            reason::IN_SYNC,
            "AWS matches the spec",
        );
        return;
    }
    let fields: Vec<&str> = drift.iter().map(|d| d.field.as_str()).collect();
    let all_fixed = corrected && drift.iter().all(|d| d.correctable);
    let (why, what) = if all_fixed {
        (reason::DRIFT_CORRECTED, "changed outside Git; corrected")
    } else {
        (
            reason::DRIFT_DETECTED,
            "changed outside Git; see status.drift (driftPolicy Report, or fields Lambda fixes at \
             creation, are not corrected)",
        )
    };
    c.set(
        cond::DRIFTED,
        true,
        why,
        format!("{}: {what}", fields.join(", ")),
    );
}

fn ready_message(d: &Desired, world: &World) -> String {
    match d.current(world) {
        Some(v) => format!(
            "version {} of {} serves the spec{}",
            v.version,
            d.name,
            v.state.map(|s| format!(" ({s:?})")).unwrap_or_default()
        ),
        None => format!("function {} serves the spec", d.name),
    }
}

fn api_scaling(s: &ScalingConfig) -> FunctionScaling {
    FunctionScaling {
        min_execution_environments: s.min,
        max_execution_environments: s.max,
    }
}

/// Writes the status with server-side apply (one field manager, forced: the operator is the
/// only writer of status).
pub async fn patch(
    api: &Api<SimilarityFunction>,
    sf: &SimilarityFunction,
    status: &SimilarityFunctionStatus,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "SimilarityFunction",
        "status": status,
    });
    api.patch_status(
        &sf.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(Error::kube("PatchStatus"))?;
    Ok(())
}
