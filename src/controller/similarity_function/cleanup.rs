//! Cleanup (finalizer): delete the function with all its versions (DeleteFunction without a
//! qualifier), so that its capacity provider can be deleted after it. `Retain` leaves AWS
//! untouched; a same-named function the operator does not own is never deleted.

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{KIND, aws_name, owner};
use crate::api::common::DeletionPolicy;
use crate::api::conditions::reason;
use crate::api::similarity_function::{FunctionState, SimilarityFunction};
use crate::aws::functions::region_of;
use crate::controller::context::Context;
use crate::controller::error::Error;

/// Deletes the function (unless `Retain`); returns once it is gone, or an
/// [`Error::Waiting`] to come back later.
pub async fn cleanup(sf: &SimilarityFunction, ctx: &Context) -> Result<Action, Error> {
    let object = sf.object_ref(&());
    if sf.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            &object,
            false,
            "Retained",
            "Delete",
            "deletionPolicy is Retain: the Lambda function and its versions are left in place"
                .into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    // The function lives in its provider's region, recorded in its ARN, or — when the
    // operator stopped between creating it and reporting it — in its provider's ARN, recorded
    // before the create; the provider itself may already be gone.
    let status = sf.status.as_ref();
    let region = status
        .and_then(|s| s.function_arn.as_deref())
        .or_else(|| status.and_then(|s| s.capacity_provider_arn.as_deref()))
        .and_then(region_of)
        .map(str::to_owned);
    let aws = ctx.aws_for(region.as_deref());
    let name = aws_name(sf, ctx);
    let pending = ctx.config.deleting_delay(
        sf.metadata.deletion_timestamp.as_ref(),
        &crate::controller::now(),
    );

    let Some((function, tags)) = aws.lambda.get_function(&name).await? else {
        return Ok(Action::await_change());
    };
    // Only a function this installation created for this object (or an earlier one of the
    // same name) is deleted; a foreign one, or another installation's, is left in place.
    if !owner(sf, ctx).ownership(&tags).is_ours() {
        ctx.event(
            &object,
            true,
            reason::NAME_CONFLICT,
            "Delete",
            format!("function {name} is not owned by this object: left in place"),
        )
        .await;
        return Ok(Action::await_change());
    }
    if function.state != Some(FunctionState::Deleting) {
        match aws.lambda.delete_function(&name, None).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => {
                return Err(Error::Waiting {
                    reason: crate::controller::error::AWS_BUSY,
                    message: format!("Lambda cannot delete {name} yet: {}", e.message),
                    retry_after: pending,
                });
            }
            Err(e) => return Err(e.into()),
        }
        ctx.event(
            &object,
            false,
            "DeletedFunction",
            "Delete",
            format!("deleted function {name} and all its versions"),
        )
        .await;
    }
    if aws.lambda.get_function(&name).await?.is_some() {
        return Err(Error::Waiting {
            reason: crate::controller::error::AWS_DELETING,
            message: format!("function {name} is being deleted"),
            retry_after: pending,
        });
    }
    tracing::info!(kind = KIND, name = %sf.name_any(), namespace = ?sf.namespace(), "deleted from AWS");
    Ok(Action::await_change())
}
