//! SimilarityFunction reconciler.
//!
//! One pass is a pipeline, each step in its own module:
//! 1. **resolve** (`resolve`): the referenced CapacityProvider and the namespace's labels, then
//!    — only for an admitted function — the function, its versions and scaling from Lambda;
//! 2. **validate** (`admission`, pure): the provider exists, one of its grants admits the
//!    namespace and everything the function names within the grant's limits (`crate::tenancy`),
//!    and it is Ready; otherwise `CapacityProviderReady=False` and nothing is written to AWS —
//!    but a function a grant stops admitting after it ran is suspended (`suspension`). The role
//!    must be in the partition of the provider's region (`crate::partition`); otherwise
//!    `InvalidSpec`, again before any AWS call;
//! 3. **plan** (`desired`, `drift`, `versions`, `plan`, pure): the configuration, tags and
//!    scaling the spec asks for, the drift, and the next call — one at a time;
//! 4. **apply** (`apply`): the only step that mutates AWS, one call per planned step, the world
//!    updated from AWS's answer before the next step is planned;
//! 5. **report** (`report`): status and conditions with one server-side apply, and an event for
//!    each AWS change and each new problem.
//!
//! Deletion runs through the finalizer (`cleanup`). The bundled handler builds are read by
//! `code`.

pub mod admission;
mod apply;
mod cleanup;
pub mod code;
pub mod desired;
pub mod drift;
pub mod plan;
mod report;
mod resolve;
pub mod suspension;
pub mod versions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Api, Resource, ResourceExt};

use self::admission::Admitted;
use self::desired::DesiredCode;
use self::plan::{Desired, Input, Next, Standing, Step};
use crate::api::common::{DriftPolicy, invalid_tag_key};
use crate::api::conditions::{self as cond, reason};
use crate::api::similarity_function::{SimilarityFunction, SimilarityFunctionStatus};
use crate::aws::ErrorClass;
use crate::aws::model::CodeSource;
use crate::controller::capacity_provider::Change;
use crate::controller::conditions::Conditions;
use crate::controller::context::Context;
use crate::controller::error::{Error, jitter};
use crate::identity::Owner;
use crate::partition;

/// Kind name, for metrics and ownership tags.
pub const KIND: &str = "SimilarityFunction";
/// The finalizer that holds deletion until AWS is cleaned up.
pub const FINALIZER: &str = "lmi.dev/similarity-function";
/// Most calls one reconcile makes before it looks again (a full deployment takes about five:
/// update, publish, read scaling, put scaling, prune).
const MAX_STEPS: usize = 12;

/// The AWS name: fixed in status once created, else from the spec, else derived.
pub fn aws_name(sf: &SimilarityFunction, ctx: &Context) -> String {
    sf.status
        .as_ref()
        .and_then(|s| s.aws_name.clone())
        .or_else(|| sf.spec.aws_name.clone())
        .unwrap_or_else(|| admission::derived_name(&ctx.config.cluster_name, sf))
}

fn owner(sf: &SimilarityFunction, ctx: &Context) -> Owner {
    Owner {
        cluster: ctx.config.cluster_name.clone(),
        installation: ctx.config.installation_id.clone(),
        kind: KIND,
        object: key(sf),
        uid: sf.uid().unwrap_or_default(),
    }
}

/// `namespace/name`: ownership tag value and retry-count key.
fn key(sf: &SimilarityFunction) -> String {
    format!("{}/{}", sf.namespace().unwrap_or_default(), sf.name_any())
}

fn api(sf: &SimilarityFunction, ctx: &Context) -> Api<SimilarityFunction> {
    Api::namespaced(ctx.client.clone(), &sf.namespace().unwrap_or_default())
}

/// Reconciles one SimilarityFunction.
pub async fn reconcile(sf: Arc<SimilarityFunction>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.reconcile_timer(KIND);
    let result = finalizer(&api(&sf, &ctx), FINALIZER, sf.clone(), |event| async {
        match event {
            Event::Apply(sf) => converge(&sf, &ctx).await,
            Event::Cleanup(sf) => cleanup::cleanup(&sf, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    timer.finish(result.is_ok());
    if result.is_ok() {
        ctx.reset_failures(&key(&sf));
    }
    result
}

/// Requeue policy after a failed reconcile.
pub fn error_policy(sf: Arc<SimilarityFunction>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.record_failure(&key(&sf));
    ctx.metrics.failed(KIND, error.reason());
    let delay = ctx.config.backoff.delay(error, attempt);
    tracing::warn!(
        kind = KIND,
        name = %key(&sf),
        reason = error.reason(),
        attempt,
        retry_in = ?delay,
        error = %error,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn converge(sf: &SimilarityFunction, ctx: &Context) -> Result<Action, Error> {
    match run_pipeline(sf, ctx).await {
        Ok(action) => Ok(action),
        Err(error) => {
            report_failure(sf, ctx, &error).await;
            Err(error)
        }
    }
}

async fn run_pipeline(sf: &SimilarityFunction, ctx: &Context) -> Result<Action, Error> {
    let generation = sf.metadata.generation;
    let status = sf.status.clone().unwrap_or_default();
    let spec_changed = status.observed_generation != generation;
    let may_correct = sf.spec.drift_policy == DriftPolicy::Correct || spec_changed;

    // resolve + validate: admission decides before anything in AWS is written
    let admitted = match resolve::admission(&ctx.client, sf, &ctx.config).await? {
        Ok(admitted) => admitted,
        Err(refusal) => return refuse(sf, ctx, &refusal).await,
    };
    let aws = ctx.aws_for(admitted.region.as_deref());
    // validate: a role of another partition can never be passed to Lambda here
    partition::check_role("spec.roleArn", &sf.spec.role_arn, &aws.region)
        .map_err(Error::InvalidSpec)?;
    if let Some(key) = invalid_tag_key(&sf.spec.tags) {
        return Err(Error::InvalidSpec(format!(
            "spec.tags: the tag key {key:?} has a character AWS refuses: tag keys are letters, \
             digits, spaces and _ . : / = + - @"
        )));
    }
    let owner = owner(sf, ctx);

    // plan: the desired state (and the code, with its hash known before any call)
    let (code, desired) = desired_state(sf, ctx, &admitted, &owner)?;

    // resolve: AWS
    let mut world = resolve::read(&aws, &desired.name).await?;
    world.retired = status.retired_versions.iter().cloned().collect();
    if let Some(v) = desired.current(&world).map(|v| v.version.clone()) {
        let scaling = resolve::read_scaling(&aws, &desired.name, &v).await?;
        world.scaling = Some((v, scaling));
    }
    let drift = if spec_changed {
        Vec::new()
    } else {
        plan::drift(
            &desired,
            &world,
            status.version.as_deref(),
            &status.managed_tags,
        )
    };
    if !drift.is_empty() {
        ctx.metrics.drift_found(KIND);
    }

    // plan + apply, one call at a time
    let retry_failed_update = retry_failed_update(sf, &world, ctx.config.backoff.terminal);
    let retry_failed_version = desired
        .current(&world)
        .is_some_and(|v| older_than(v.last_modified.as_deref(), ctx.config.backoff.terminal));
    let mut changes = Vec::new();
    let mut standing = Standing::Waiting(format!("still converging function {}", desired.name));
    let mut last_step = None;
    for _ in 0..MAX_STEPS {
        let next = plan::next(&Input {
            desired: &desired,
            world: &world,
            owner: &owner,
            may_correct,
            previously_created: status.function_arn.is_some(),
            retry_failed_update,
            retry_failed_version,
            managed_tags: &status.managed_tags,
        });
        match next {
            // A call whose answer left the plan unchanged is not made again in this pass:
            // repeating it would only be a hot loop of writes.
            Next::Do(step) if last_step.as_ref() == Some(&step) => {
                standing = Standing::Stuck {
                    reason: reason::AWS_FAILED,
                    message: format!(
                        "Lambda accepted {} on function {} but still differs from the spec \
                         afterwards; retrying slowly",
                        step.operation(),
                        desired.name
                    ),
                };
                break;
            }
            Next::Do(step) => {
                if step == Step::Create {
                    record_target(sf, ctx, &desired.name, &admitted.provider_arn).await?;
                }
                match apply::run(&aws, &step, &desired, &code, &mut world).await {
                    Ok(change) => changes.push(change),
                    // The provider is full: the plan makes room (old versions first) and
                    // publishes again.
                    Err(e) if matches!(step, Step::Publish { .. }) && e.is_version_limit() => {
                        tracing::info!(function = %desired.name, error = %e, "provider full");
                        world.provider_full = true;
                    }
                    Err(e) => return Err(e.into()),
                }
                last_step = Some(step);
            }
            Next::ReadScaling(v) => {
                let scaling = resolve::read_scaling(&aws, &desired.name, &v).await?;
                world.scaling = Some((v, scaling));
            }
            Next::Settled(s) => {
                standing = s;
                break;
            }
        }
    }

    // report
    let applied = plan::spec_applied(&desired, &world);
    let outcome = report::Outcome {
        admitted: &admitted,
        desired: &desired,
        world: &world,
        standing: &standing,
        corrected: !drift.is_empty() && !changes.is_empty(),
        drift,
        applied: applied || !spec_changed,
    };
    let (status, conditions) = report::status(sf, &outcome, crate::controller::now());
    let written = publish(sf, ctx, &changes, "Apply", status, conditions).await?;

    Ok(match standing {
        Standing::Ready => Action::requeue(jitter(ctx.config.resync_interval)),
        Standing::Waiting(_) => Action::requeue(
            ctx.config
                .pending_delay_for(&written, &crate::controller::now()),
        ),
        Standing::Stuck { reason, .. } if reason == reason::DRIFT_DETECTED => {
            Action::requeue(jitter(ctx.config.resync_interval))
        }
        Standing::Stuck { .. } => Action::requeue(jitter(ctx.config.backoff.terminal)),
    })
}

/// A function the provider does not admit: nothing is created or changed in AWS for it —
/// except that one a grant refuses after it ran is suspended (`suspension`). The refusal is
/// reported; a change of the provider, the namespace or a sibling function wakes it again.
async fn refuse(
    sf: &SimilarityFunction,
    ctx: &Context,
    refusal: &admission::Refusal,
) -> Result<Action, Error> {
    let mut changes = Vec::new();
    let mut suspended = None;
    if refusal.suspend {
        let aws = ctx.aws_for(refusal.region.as_deref());
        let name = aws_name(sf, ctx);
        let owner = owner(sf, ctx);
        let world = resolve::read(&aws, &name).await?;
        if suspension::owns(&world, &owner) {
            let mut scalings = BTreeMap::new();
            for v in &world.versions {
                let scaling = resolve::read_scaling(&aws, &name, &v.version).await?;
                scalings.insert(v.version.clone(), scaling);
            }
            let steps = suspension::steps(&world, &scalings, &owner, refusal.reason);
            changes = apply::suspend(&aws, &name, &steps, &world).await?;
            suspended = Some(world.versions.len());
        }
    }
    let (status, conditions) = report::refused(sf, refusal, suspended, crate::controller::now());
    publish(sf, ctx, &changes, "Suspend", status, conditions).await?;
    Ok(Action::requeue(jitter(ctx.config.backoff.terminal)))
}

/// Report: an event for each AWS change of the pass (`action`: `Apply` notices, `Suspend`
/// warnings), one for each condition that turned bad, then the status.
async fn publish(
    sf: &SimilarityFunction,
    ctx: &Context,
    changes: &[Change],
    action: &str,
    mut status: SimilarityFunctionStatus,
    conditions: Conditions,
) -> Result<Vec<Condition>, Error> {
    let object = sf.object_ref(&());
    let warning = action == "Suspend";
    for change in changes {
        ctx.event(
            &object,
            warning,
            change.reason,
            action,
            change.message.clone(),
        )
        .await;
    }
    // A new version whose request bursts could exhaust its memory: said once, when it is
    // published (the handler's README, "Limits, and what a request costs").
    if changes.iter().any(|c| c.reason == "PublishedVersion")
        && let Some(warning) = desired::request_memory_warning(&sf.spec)
    {
        ctx.event(&object, true, "RequestMemoryHeadroom", action, warning)
            .await;
    }
    publish_condition_events(sf, ctx, &conditions).await;
    status.conditions = conditions.into_vec();
    report::patch(&api(sf, ctx), sf, &status).await?;
    Ok(status.conditions)
}

/// The desired state, and the code source apply sends.
fn desired_state(
    sf: &SimilarityFunction,
    ctx: &Context,
    admitted: &Admitted,
    owner: &Owner,
) -> Result<(CodeSource, Desired), Error> {
    let (code, desired_code) = match sf.spec.code.as_ref().and_then(|c| c.s3.as_ref()) {
        Some(s3) => (
            CodeSource::S3 {
                bucket: s3.bucket.clone(),
                key: s3.key.clone(),
                object_version: s3.object_version.clone(),
            },
            DesiredCode::S3 {
                source_id: desired::s3_source_id(s3),
            },
        ),
        None => {
            let bundle = ctx.handlers.get(admitted.architecture)?;
            (
                CodeSource::Zip(bundle.zip),
                DesiredCode::Bundled {
                    sha256: bundle.sha256,
                },
            )
        }
    };
    let desired = Desired {
        name: aws_name(sf, ctx),
        config: desired::config(&sf.spec, admitted),
        tags: desired::tags(&sf.spec, &owner.tags()),
        code: desired_code,
        scaling: desired::scaling(&sf.spec),
        retain: usize::try_from(sf.spec.versions.retain).unwrap_or(1).max(1),
    };
    Ok((code, desired))
}

/// Whether a failed update of `$LATEST` may be tried again now: at once for a new generation
/// (the spec changed since the failure was reported), else only after the slow retry delay.
fn retry_failed_update(sf: &SimilarityFunction, world: &plan::World, delay: Duration) -> bool {
    let conditions = sf
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let reported_for_this_generation = conditions.iter().any(|c| {
        c.type_ == cond::READY
            && c.reason == reason::AWS_FAILED
            && c.observed_generation == sf.metadata.generation
    });
    !reported_for_this_generation
        || older_than(
            world
                .function
                .as_ref()
                .and_then(|f| f.last_modified.as_deref()),
            delay,
        )
}

/// Whether Lambda's `LastModified` text is at least `delay` ago (or absent or unreadable).
fn older_than(last_modified: Option<&str>, delay: Duration) -> bool {
    last_modified
        .and_then(parse_lambda_time)
        .is_none_or(|t| jiff::Timestamp::now().duration_since(t).unsigned_abs() >= delay)
}

/// Lambda's `LastModified` (`2024-05-01T12:34:56.789+0000`, ISO 8601 without the offset's
/// colon), or RFC 3339.
pub fn parse_lambda_time(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok().or_else(|| {
        jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", text)
            .and_then(|t| t.to_timestamp())
            .ok()
    })
}

/// An event for each condition that turned bad (and for drift found).
async fn publish_condition_events(sf: &SimilarityFunction, ctx: &Context, c: &Conditions) {
    let object = sf.object_ref(&());
    for c in c.changed() {
        if c.status == "False" && c.type_ != cond::DRIFTED
            || c.type_ == cond::DRIFTED && c.status == "True"
        {
            ctx.event(&object, true, &c.reason, "Reconcile", c.message.clone())
                .await;
        }
    }
}

/// Records a failed reconcile on the object: `Synced=False` with the error's reason, the other
/// conditions kept — except that an error no retry can fix (a code object missing from S3, a
/// handler build missing for the provider's architecture, a parameter Lambda refuses) also
/// makes `Ready=False` with that reason, since the function cannot serve the spec until someone
/// acts. Best effort — the error itself goes to the error policy either way (slow retry).
/// Records where the function is about to be created (its AWS name, and its provider's ARN,
/// which names the region) before CreateFunction: a crash after the create but before the
/// status report must not leave a function the cleanup cannot find (it looks in the region of
/// the recorded ARNs).
async fn record_target(
    sf: &SimilarityFunction,
    ctx: &Context,
    name: &str,
    provider_arn: &str,
) -> Result<(), Error> {
    let status = sf.status.as_ref();
    if status.and_then(|s| s.aws_name.as_deref()) == Some(name)
        && status.and_then(|s| s.capacity_provider_arn.as_deref()) == Some(provider_arn)
    {
        return Ok(());
    }
    let patch = serde_json::json!({
        "status": {"awsName": name, "capacityProviderArn": provider_arn}
    });
    api(sf, ctx)
        .patch_status(
            &sf.name_any(),
            &PatchParams {
                field_manager: Some(crate::controller::context::FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::kube("RecordTarget"))?;
    Ok(())
}

async fn report_failure(sf: &SimilarityFunction, ctx: &Context, error: &Error) {
    let mut status = sf.status.clone().unwrap_or_default();
    let generation = sf.metadata.generation.unwrap_or_default();
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
    if let Err(e) = report::patch(&api(sf, ctx), sf, &status).await {
        tracing::warn!(error = %e, "could not record the failure in status");
    }
    if changed {
        ctx.event(
            &sf.object_ref(&()),
            true,
            error.reason(),
            "Reconcile",
            error.to_string(),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_timestamps_parse_in_both_spellings() {
        let a = parse_lambda_time("2024-05-01T12:34:56.789+0000").expect("lambda form");
        let b = parse_lambda_time("2024-05-01T12:34:56.789Z").expect("rfc 3339");
        assert_eq!(a, b);
        assert!(parse_lambda_time("yesterday").is_none());
    }
}
