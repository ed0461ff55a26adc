//! Apply: the only step that changes AWS. It makes the one call the plan chose, and updates
//! the world with what AWS answered so the plan can choose the next. Every call is guarded by
//! what was read (PublishVersion by code hash and revision), so a crash between two calls
//! converges on the next reconcile without duplicates.

use super::desired::{self, CODE_TAG, DEACTIVATED, DesiredCode, SUSPENDED_TAG};
use super::plan::{Desired, Step, World};
use super::suspension::SuspendStep;
use super::{drift, versions};
use crate::aws::functions::unqualified;
use crate::aws::model::{CodeSource, ObservedScaling, ScalingConfig};
use crate::aws::{AwsClients, AwsError};
use crate::controller::capacity_provider::Change;

fn change(reason: &'static str, message: String) -> Change {
    Change { reason, message }
}

/// Makes the call of `step`.
pub async fn run(
    aws: &AwsClients,
    step: &Step,
    d: &Desired,
    code: &CodeSource,
    world: &mut World,
) -> Result<Change, AwsError> {
    let name = d.name.as_str();
    let lambda = &aws.lambda;
    Ok(match step {
        Step::Create => {
            let created = lambda
                .create_function(name, &d.config, code, &d.tags)
                .await?;
            let message = format!("created function {name} ({})", created.arn);
            world.tags = d.tags.clone().into_iter().collect();
            world.versions.clear();
            world.scaling = None;
            record_s3_code(aws, d, &created.arn, created.code_sha256.as_deref(), world).await?;
            world.function = Some(created);
            change("CreatedFunction", message)
        }
        Step::Untag(keys) => {
            lambda.untag_resource(&function_arn(world), keys).await?;
            for k in keys {
                world.tags.remove(k);
            }
            change(
                "UntaggedFunction",
                format!(
                    "removed tags {} from function {name} (no longer in the spec)",
                    keys.join(", ")
                ),
            )
        }
        Step::Retire(version) => {
            lambda
                .put_scaling_config(name, version, &DEACTIVATED)
                .await?;
            world.retired.insert(version.clone());
            change(
                "RetiredVersion",
                format!(
                    "scaled version {version} of {name}, kept for rollback, to 0 execution \
                     environments"
                ),
            )
        }
        Step::Reactivate(version) => {
            lambda.put_scaling_config(name, version, &d.scaling).await?;
            world.retired.remove(version);
            record_scaling(world, version, &d.scaling);
            change(
                "ReactivatedVersion",
                format!(
                    "version {version} of {name} serves the spec again: asked for {} to {} \
                     execution environments",
                    show(d.scaling.min),
                    show(d.scaling.max)
                ),
            )
        }
        Step::Tag(tags) => {
            lambda.tag_resource(&function_arn(world), tags).await?;
            world.tags.extend(tags.clone());
            let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
            change(
                "TaggedFunction",
                format!("set tags {} on function {name}", keys.join(", ")),
            )
        }
        Step::UpdateCode => {
            let updated = lambda
                .update_function_code(name, code, d.config.architecture.as_deref())
                .await?;
            let message = format!(
                "updated the code of function {name} (CodeSha256 {})",
                updated.code_sha256.as_deref().unwrap_or("?")
            );
            record_s3_code(aws, d, &updated.arn, updated.code_sha256.as_deref(), world).await?;
            world.function = Some(updated);
            change("UpdatedFunctionCode", message)
        }
        Step::UpdateConfig => {
            let fields: Vec<String> = match &world.function {
                Some(f) => drift::latest(&d.config, None, f)
                    .into_iter()
                    .map(|e| e.field)
                    .collect(),
                None => Vec::new(),
            };
            let updated = lambda
                .update_function_configuration(name, &d.config)
                .await?;
            world.function = Some(updated);
            change(
                "UpdatedFunctionConfiguration",
                format!("updated {} of function {name}", fields.join(", ")),
            )
        }
        Step::Publish {
            code_sha256,
            revision_id,
            description,
        } => {
            let published = lambda
                .publish_version(name, code_sha256, revision_id.as_deref(), description)
                .await?;
            let message = format!(
                "published version {} of function {name} ({description})",
                published.version
            );
            world.versions.retain(|v| v.version != published.version);
            world.versions.push(published);
            world
                .versions
                .sort_by_key(|v| versions::number(v).unwrap_or_default());
            change("PublishedVersion", message)
        }
        Step::PutScaling(version) => {
            lambda.put_scaling_config(name, version, &d.scaling).await?;
            record_scaling(world, version, &d.scaling);
            change(
                "PutScalingConfig",
                format!(
                    "asked for {} to {} execution environments on version {version} of {name}",
                    show(d.scaling.min),
                    show(d.scaling.max),
                ),
            )
        }
        Step::Resume(version) => {
            // the desired scaling names a minimum (`desired::scaling`): it reactivates
            let scaling = d.scaling.clone();
            lambda.put_scaling_config(name, version, &scaling).await?;
            lambda
                .untag_resource(&function_arn(world), &[SUSPENDED_TAG.to_owned()])
                .await?;
            world.tags.remove(SUSPENDED_TAG);
            record_scaling(world, version, &scaling);
            // the suspension deactivated every other version: they stay so, kept for rollback
            world.retired = world
                .versions
                .iter()
                .map(|v| v.version.clone())
                .filter(|v| v != version)
                .collect();
            change(
                "ResumedFunction",
                format!(
                    "a grant admits function {name} again: reactivated version {version} with {} \
                     to {} execution environments",
                    show(scaling.min),
                    show(scaling.max)
                ),
            )
        }
        Step::DropFailed(version) => {
            lambda.delete_function(name, Some(version)).await?;
            world.versions.retain(|v| v.version != *version);
            change(
                "DeletedFailedVersion",
                format!(
                    "deleted version {version} of function {name}, which failed to start, to \
                     publish it again"
                ),
            )
        }
        Step::Prune(old) => {
            for version in old {
                lambda.delete_function(name, Some(version)).await?;
                world.versions.retain(|v| v.version != *version);
            }
            // room was made: publishing may be tried again
            world.provider_full = false;
            change(
                "DeletedVersions",
                format!(
                    "deleted version(s) {} of function {name} (spec.versions.retain is {})",
                    old.join(", "),
                    d.retain
                ),
            )
        }
    })
}

/// The unqualified ARN of the function in `world` (empty before it exists).
fn function_arn(world: &World) -> String {
    world
        .function
        .as_ref()
        .map(|f| unqualified(&f.arn).to_owned())
        .unwrap_or_default()
}

/// Records in `world` that `requested` was put on `version` (what Lambda applies is kept until
/// it is read again).
fn record_scaling(world: &mut World, version: &str, requested: &ScalingConfig) {
    let applied = match world.scaling.take() {
        Some((v, s)) if v == version => s.applied,
        _ => None,
    };
    world.scaling = Some((
        version.to_owned(),
        ObservedScaling {
            requested: Some(requested.clone()),
            applied,
        },
    ));
}

fn show(n: Option<i32>) -> String {
    n.map(|n| n.to_string())
        .unwrap_or_else(|| "Lambda's default".into())
}

/// For S3 code, records in the code tag which source `$LATEST` now holds and the hash Lambda
/// computed for it (a crash before the tag only costs loading the object once more).
async fn record_s3_code(
    aws: &AwsClients,
    d: &Desired,
    arn: &str,
    code_sha256: Option<&str>,
    world: &mut World,
) -> Result<(), AwsError> {
    let (DesiredCode::S3 { source_id }, Some(sha)) = (&d.code, code_sha256) else {
        return Ok(());
    };
    let tag = std::collections::BTreeMap::from([(
        CODE_TAG.to_owned(),
        desired::code_tag(source_id, sha),
    )]);
    aws.lambda.tag_resource(unqualified(arn), &tag).await?;
    world.tags.extend(tag);
    Ok(())
}

/// Makes the calls of a suspension (`suspension::steps`) on function `name`.
pub async fn suspend(
    aws: &AwsClients,
    name: &str,
    steps: &[SuspendStep],
    world: &World,
) -> Result<Vec<Change>, AwsError> {
    let arn = function_arn(world);
    let mut deactivated = Vec::new();
    let mut changes = Vec::new();
    for step in steps {
        match step {
            SuspendStep::Mark(reason) => {
                let tag =
                    std::collections::BTreeMap::from([(SUSPENDED_TAG.to_owned(), reason.clone())]);
                aws.lambda.tag_resource(&arn, &tag).await?;
            }
            SuspendStep::Deactivate(version) => {
                aws.lambda
                    .put_scaling_config(name, version, &DEACTIVATED)
                    .await?;
                deactivated.push(version.as_str());
            }
        }
    }
    if !deactivated.is_empty() {
        changes.push(change(
            "SuspendedFunction",
            format!(
                "no grant admits function {name} any more: deactivated version(s) {} (0 \
                 execution environments)",
                deactivated.join(", ")
            ),
        ));
    }
    Ok(changes)
}
