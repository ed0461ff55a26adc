//! CapacityProvider reconciler.
//!
//! One pass is a pipeline, each step in its own module:
//! 0. **validate** (pure, before any AWS call): what the schema cannot know — the operator role
//!    must be in the partition of the provider's region (`crate::partition`);
//! 1. **resolve** (`resolve`): read subnets, route tables, security groups, endpoints, instance
//!    types and the provider from AWS — and run the pure network and instance-type checks on
//!    what was read (`crate::network`, `crate::instance_types`);
//! 2. **plan** (`plan`, pure): the provider AWS should have, the drift, the calls to make;
//! 3. **apply** (`apply`): the only step that mutates AWS — owned security group, telemetry
//!    endpoints, then the provider — skipped entirely while a blocking problem stands;
//! 4. **report** (`report`): status and conditions with one server-side apply, and an event for
//!    each AWS change and each new problem.
//!
//! Deletion runs through the finalizer (`cleanup`).

mod apply;
mod cleanup;
pub mod plan;
mod report;
mod resolve;

/// An AWS change made by a reconcile (both kinds report them as events).
pub use apply::Change;

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};

use crate::api::capacity_provider::{CapacityProvider, ProviderState};
use crate::api::common::{DriftPolicy, invalid_tag_key};
use crate::api::conditions::{self as cond};
use crate::aws::ErrorClass;
use crate::controller::conditions::Conditions;
use crate::controller::context::Context;
use crate::controller::error::{Error, jitter};
use crate::identity::{self, Owner};
use crate::partition;

/// Kind name, for metrics and ownership tags.
pub const KIND: &str = "CapacityProvider";
/// The finalizer that holds deletion until AWS is cleaned up.
pub const FINALIZER: &str = "lmi.dev/capacity-provider";

/// The AWS name: fixed in status once created, else from the spec, else derived.
pub fn aws_name(cp: &CapacityProvider, ctx: &Context) -> String {
    cp.status
        .as_ref()
        .and_then(|s| s.aws_name.clone())
        .or_else(|| cp.spec.aws_name.clone())
        .unwrap_or_else(|| {
            identity::capacity_provider_name(&ctx.config.cluster_name, &cp.name_any())
        })
}

fn owner(cp: &CapacityProvider, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_name.clone(),
        installation: ctx.config.installation_id.clone(),
        kind: KIND,
        object: cp.name_any(),
        uid: cp.uid().unwrap_or_default(),
    }
}

/// Reconciles one CapacityProvider.
pub async fn reconcile(cp: Arc<CapacityProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile_timer(KIND);
    let api: Api<CapacityProvider> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, cp.clone(), |event| async {
        match event {
            Event::Apply(cp) => converge(&cp, &ctx).await,
            Event::Cleanup(cp) => cleanup::cleanup(&cp, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    timer.finish(result.is_ok());
    if result.is_ok() {
        ctx.reset_failures(&cp.name_any());
    }
    result
}

/// Requeue policy after a failed reconcile.
pub fn error_policy(cp: Arc<CapacityProvider>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.record_failure(&cp.name_any());
    ctx.metrics.failed(KIND, error.reason());
    let delay = ctx.config.backoff.delay(error, attempt);
    tracing::warn!(
        kind = KIND,
        name = %cp.name_any(),
        reason = error.reason(),
        attempt,
        retry_in = ?delay,
        error = %error,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn converge(cp: &CapacityProvider, ctx: &Context) -> Result<Action, Error> {
    let api: Api<CapacityProvider> = Api::all(ctx.client.clone());
    let result = run_pipeline(cp, ctx).await;
    match result {
        Ok(action) => Ok(action),
        Err(error) => {
            report_failure(&api, cp, ctx, &error).await;
            Err(error)
        }
    }
}

async fn run_pipeline(cp: &CapacityProvider, ctx: &Context) -> Result<Action, Error> {
    let aws = ctx.aws_for(cp.spec.region.as_deref());
    // validate: a role of another partition can never be assumed here; refused before AWS
    partition::check_role(
        "spec.operatorRoleArn",
        &cp.spec.operator_role_arn,
        &aws.region,
    )
    .map_err(Error::InvalidSpec)?;
    let explicit = cp.spec.propagate_tags.as_ref().map(|p| &p.explicit_tags);
    for (field, tags) in [
        ("spec.tags", Some(&cp.spec.tags)),
        ("spec.propagateTags.explicitTags", explicit),
    ] {
        if let Some(key) = tags.and_then(invalid_tag_key) {
            return Err(Error::InvalidSpec(format!(
                "{field}: the tag key {key:?} has a character AWS refuses: tag keys are letters, \
                 digits, spaces and _ . : / = + - @"
            )));
        }
    }
    let name = aws_name(cp, ctx);
    let owner = owner(cp, ctx);
    let ownership = owner.tags();
    let spec_changed =
        cp.status.as_ref().and_then(|s| s.observed_generation) != cp.metadata.generation;
    let may_correct = cp.spec.drift_policy == DriftPolicy::Correct || spec_changed;

    // resolve (and the pure checks on what was read)
    let mut world = resolve::read(&aws, &cp.spec, &name, &owner.lookup_tags()).await?;
    let blocked = world.network.blocks() || world.instances.problem.is_some();

    // apply: owned network first, so the provider can be created with it
    let mut changes = Vec::new();
    if !blocked {
        changes.extend(
            apply::ensure_network(&aws, &cp.spec, &name, &ownership, &mut world, may_correct)
                .await?,
        );
    }

    // plan (pure)
    let desired = plan::desired_config(
        &cp.spec,
        &name,
        &world.subnet_ids(),
        &world.security_group_ids(),
    );
    let desired_tags = plan::desired_tags(&cp.spec, &ownership);
    let provider_plan = {
        let observed = world
            .provider
            .as_ref()
            .map(|(p, tags)| (p, tags, owner.ownership(tags)));
        let mut p = plan::plan(plan::PlanInput {
            desired: &desired,
            desired_tags: &desired_tags,
            observed,
            adopt: cp.spec.adopt && cp.status.as_ref().is_none_or(|s| s.adopted_arn.is_none()),
            may_correct,
            managed_tags: cp
                .status
                .as_ref()
                .map(|s| s.managed_tags.as_slice())
                .unwrap_or_default(),
        });
        if blocked {
            // Never create or change anything while the network or instance types are wrong.
            p.steps.clear();
        }
        p
    };
    if !provider_plan.drift.is_empty() && !spec_changed {
        ctx.metrics.drift_found(KIND);
    }

    // apply: the provider
    changes.extend(
        apply::apply_provider(
            &aws,
            &name,
            &provider_plan,
            &desired,
            &desired_tags,
            &mut world,
        )
        .await?,
    );
    let attached = match &world.provider {
        Some((p, _)) if !provider_plan.conflict && p.state == ProviderState::Active => Some(
            aws.lambda
                .list_attached_versions(&name)
                .await?
                .into_iter()
                .map(|v| v.function_arn)
                .collect(),
        ),
        _ => None,
    };

    // report
    let outcome = report::Outcome {
        aws_name: &name,
        region: &aws.region,
        world: &world,
        plan: &provider_plan,
        corrected: may_correct && !changes.is_empty(),
        attached,
        version_limit: ctx.config.max_versions_per_capacity_provider,
        desired_tags: &desired_tags,
    };
    let (mut status, conditions) = report::status(cp, &outcome, crate::controller::now());
    let object = cp.object_ref(&());
    for change in &changes {
        ctx.event(
            &object,
            false,
            change.reason,
            "Apply",
            change.message.clone(),
        )
        .await;
    }
    for c in conditions.changed() {
        if c.status == "False" && c.type_ != cond::DRIFTED
            || c.type_ == cond::DRIFTED && c.status == "True"
        {
            ctx.event(&object, true, &c.reason, "Reconcile", c.message.clone())
                .await;
        }
    }
    status.conditions = conditions.into_vec();
    report::patch(&Api::all(ctx.client.clone()), cp, &status).await?;
    let pending = ctx
        .config
        .pending_delay_for(&status.conditions, &crate::controller::now());

    let state = world.provider.as_ref().map(|(p, _)| p.state);
    Ok(match state {
        _ if blocked || provider_plan.conflict => {
            Action::requeue(jitter(ctx.config.backoff.terminal))
        }
        Some(ProviderState::Active) => Action::requeue(jitter(ctx.config.resync_interval)),
        Some(ProviderState::Failed) => Action::requeue(jitter(ctx.config.backoff.terminal)),
        _ => Action::requeue(pending),
    })
}

/// Records a failed reconcile on the object: `Synced=False` with the error's reason, the other
/// conditions kept — except that an error no retry can fix (an invalid spec, access denied, a
/// parameter AWS refuses) also makes `Ready=False` with that reason, since the provider cannot
/// serve the spec until someone acts. Best effort — the error itself goes to the error policy
/// either way (slow retry for terminal errors).
async fn report_failure(
    api: &Api<CapacityProvider>,
    cp: &CapacityProvider,
    ctx: &Context,
    error: &Error,
) {
    let mut status = cp.status.clone().unwrap_or_default();
    let generation = cp.metadata.generation.unwrap_or_default();
    let mut c = Conditions::new(&status.conditions, generation, crate::controller::now());
    for t in cond::ALL_TYPES {
        c.keep(t);
    }
    c.set(cond::SYNCED, false, error.reason(), error.to_string());
    if error.class() == ErrorClass::Terminal {
        c.set(cond::READY, false, error.reason(), error.to_string());
    }
    let changed = !c.changed().is_empty();
    status.conditions = c.into_vec();
    if let Err(e) = report::patch(api, cp, &status).await {
        tracing::warn!(error = %e, "could not record the failure in status");
    }
    if changed {
        ctx.event(
            &cp.object_ref(&()),
            true,
            error.reason(),
            "Reconcile",
            error.to_string(),
        )
        .await;
    }
}
