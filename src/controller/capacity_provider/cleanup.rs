//! Cleanup (finalizer): delete the capacity provider, then the endpoints and security groups the
//! operator created for it. A provider with function versions attached cannot be deleted: the
//! object reports `DeletionBlocked` listing them and the finalizer stays until they are gone.

use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::resolve::{ENDPOINTS_ROLE, INSTANCES_ROLE};
use super::{KIND, aws_name, owner, report};
use crate::api::capacity_provider::{CapacityProvider, ProviderState};
use crate::api::common::DeletionPolicy;
use crate::api::conditions::{self as cond, reason};
use crate::controller::conditions::Conditions;
use crate::controller::context::Context;
use crate::controller::error::Error;

/// How many attached versions a `DeletionBlocked` message lists before summarising.
const LISTED_VERSIONS: usize = 10;

fn waiting(reason: &'static str, message: String, retry_after: Duration) -> Error {
    Error::Waiting {
        reason,
        message,
        retry_after,
    }
}

/// Deletes what the operator created for `cp` (unless `Retain`); returns once all of it is
/// gone, or an [`Error::Waiting`] to come back later.
pub async fn cleanup(cp: &CapacityProvider, ctx: &Context) -> Result<Action, Error> {
    let object = cp.object_ref(&());
    if cp.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            &object,
            false,
            "Retained",
            "Delete",
            "deletionPolicy is Retain: the AWS capacity provider is left in place".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let aws = ctx.aws_for(cp.spec.region.as_deref());
    let name = aws_name(cp, ctx);
    let owner = owner(cp, ctx);
    let api: Api<CapacityProvider> = Api::all(ctx.client.clone());
    let pending = ctx.config.deleting_delay(
        cp.metadata.deletion_timestamp.as_ref(),
        &crate::controller::now(),
    );

    if let Some(provider) = aws.lambda.get_capacity_provider(&name).await? {
        let tags = aws.lambda.list_tags(&provider.arn).await?;
        // Only what carries this installation's tags (an adopted provider was tagged when it
        // was taken over); a foreign provider is never deleted, adopt or not.
        let ours = owner.ownership(&tags).is_ours();
        if ours {
            if provider.state == ProviderState::Deleting {
                return Err(waiting(
                    crate::controller::error::AWS_DELETING,
                    format!("capacity provider {name} is being deleted"),
                    pending,
                ));
            }
            let attached = aws.lambda.list_attached_versions(&name).await?;
            if !attached.is_empty() {
                let arns: Vec<String> = attached.iter().map(|v| v.function_arn.clone()).collect();
                let message = blocked_message(&name, &arns);
                report_blocked(&api, cp, ctx, &arns, &message).await?;
                return Err(waiting(reason::VERSIONS_ATTACHED, message, pending * 3));
            }
            match aws.lambda.delete_capacity_provider(&name).await {
                Ok(()) => {}
                Err(e) if e.is_conflict() => {
                    return Err(waiting(
                        reason::VERSIONS_ATTACHED,
                        format!("AWS refused to delete {name} yet: {}", e.message),
                        pending * 3,
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            ctx.event(
                &object,
                false,
                "DeletingCapacityProvider",
                "Delete",
                format!("deleting capacity provider {name}"),
            )
            .await;
            return Err(waiting(
                crate::controller::error::AWS_DELETING,
                format!("deleting {name}"),
                pending,
            ));
        }
        ctx.event(
            &object,
            true,
            reason::NAME_CONFLICT,
            "Delete",
            format!("capacity provider {name} is not owned by this object: left in place"),
        )
        .await;
    }

    let lookup = owner.lookup_tags();
    let endpoints = aws.ec2.owned_endpoints(&lookup).await?;
    if !endpoints.is_empty() {
        let ids: Vec<String> = endpoints.values().cloned().collect();
        aws.ec2.delete_endpoints(&ids).await?;
        ctx.event(
            &object,
            false,
            "DeletingVpcEndpoints",
            "Delete",
            format!("deleting VPC endpoints {}", ids.join(", ")),
        )
        .await;
        return Err(waiting(
            crate::controller::error::AWS_DELETING,
            "deleting VPC endpoints".into(),
            pending,
        ));
    }
    for role in [ENDPOINTS_ROLE, INSTANCES_ROLE] {
        if let Some(sg) = aws.ec2.owned_security_group(&lookup, role).await? {
            match aws.ec2.delete_security_group(&sg.id).await {
                Ok(()) => {
                    ctx.event(
                        &object,
                        false,
                        "DeletedSecurityGroup",
                        "Delete",
                        format!("deleted security group {}", sg.id),
                    )
                    .await;
                }
                // Network interfaces of deleted instances or endpoints detach asynchronously.
                Err(e) if e.is_conflict() => {
                    return Err(waiting(
                        crate::controller::error::AWS_DELETING,
                        format!("security group {} still in use: {}", sg.id, e.message),
                        pending,
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    tracing::info!(kind = KIND, name = %cp.name_any(), "deleted from AWS");
    Ok(Action::await_change())
}

fn blocked_message(name: &str, arns: &[String]) -> String {
    let shown: Vec<&str> = arns
        .iter()
        .take(LISTED_VERSIONS)
        .map(String::as_str)
        .collect();
    let more = arns.len().saturating_sub(LISTED_VERSIONS);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "capacity provider {name} still has {} function version(s) attached: {}{tail}. Delete \
         the SimilarityFunctions (or their versions) that use it; deletion continues then",
        arns.len(),
        shown.join(", ")
    )
}

async fn report_blocked(
    api: &Api<CapacityProvider>,
    cp: &CapacityProvider,
    ctx: &Context,
    arns: &[String],
    message: &str,
) -> Result<(), Error> {
    let mut status = cp.status.clone().unwrap_or_default();
    let generation = cp.metadata.generation.unwrap_or_default();
    let mut c = Conditions::new(&status.conditions, generation, crate::controller::now());
    for t in [
        cond::NETWORK_READY,
        cond::INSTANCE_TYPES_AVAILABLE,
        cond::SYNCED,
        cond::DRIFTED,
    ] {
        c.keep(t);
    }
    c.set(
        cond::DELETION_BLOCKED,
        true,
        reason::VERSIONS_ATTACHED,
        message,
    );
    c.set(cond::READY, false, reason::VERSIONS_ATTACHED, message);
    let newly_blocked = !c.changed().is_empty();
    status.conditions = c.into_vec();
    status.function_versions = arns.to_vec();
    report::patch(api, cp, &status).await?;
    if newly_blocked {
        ctx.event(
            &cp.object_ref(&()),
            true,
            reason::VERSIONS_ATTACHED,
            "Delete",
            message.to_owned(),
        )
        .await;
    }
    Ok(())
}
