//! Whether the world has converged to the model: each check returns what is still wrong.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use lmi_operator::controller::conditions::is_true_for;
use lmi_operator::identity::{self, MANAGED_BY, TAG_MANAGED_BY, TAG_OBJECT};

use super::model::{FunctionSpec, Model, ProviderSpec};
use crate::harness::functions::{TEAM, is_ready};
use crate::harness::{CLUSTER, World};
use crate::inventory::{Inventory, duplicate_configs, published};

type Check = Result<(), String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(what()) }
}

/// Everything converged: deleted objects are gone, live ones are Ready for their spec and AWS
/// holds exactly what they ask for, and nothing of a deleted object is left in AWS.
pub async fn converged(world: &World, model: &Model) -> Check {
    for name in &model.deleted_providers {
        let left = world
            .providers()
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?;
        ensure(left.is_none(), || {
            format!("deleted provider {name} still exists")
        })?;
    }
    for name in &model.deleted_functions {
        let left = world
            .functions(TEAM)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?;
        ensure(left.is_none(), || {
            format!("deleted function {name} still exists")
        })?;
    }
    for (name, spec) in &model.providers {
        provider(world, name, spec).await?;
    }
    for (name, spec) in &model.functions {
        function(world, name, spec).await?;
    }
    let inventory = Inventory::read(world).await;
    let providers: BTreeSet<String> = model
        .providers
        .keys()
        .map(|n| identity::capacity_provider_name(CLUSTER, n))
        .collect();
    ensure(inventory.providers == providers, || {
        format!(
            "AWS providers {:?}, expected {providers:?}",
            inventory.providers
        )
    })?;
    let functions: BTreeSet<String> = model
        .functions
        .keys()
        .map(|n| world.function_aws_name(TEAM, n))
        .collect();
    let in_aws: BTreeSet<String> = inventory.functions.keys().cloned().collect();
    ensure(in_aws == functions, || {
        format!("AWS functions {in_aws:?}, expected {functions:?}")
    })?;
    let leftovers = owned_by(world, &model.deleted_providers).await;
    ensure(leftovers.is_empty(), || {
        format!("network resources of deleted providers remain: {leftovers:?}")
    })
}

async fn provider(world: &World, name: &str, spec: &ProviderSpec) -> Check {
    let cp = world
        .providers()
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("provider {name} does not exist"))?;
    let status = cp.status.clone().unwrap_or_default();
    ensure(
        is_true_for(&status.conditions, "Ready", cp.metadata.generation)
            && status.observed_generation == cp.metadata.generation,
        || {
            format!(
                "provider {name} not Ready for its generation: {:?}",
                status.conditions
            )
        },
    )?;
    let aws_name = identity::capacity_provider_name(CLUSTER, name);
    let got = world
        .lambda
        .get_capacity_provider()
        .capacity_provider_name(&aws_name)
        .send()
        .await
        .map_err(|e| format!("provider {aws_name} in AWS: {e}"))?;
    let p = got
        .capacity_provider
        .ok_or_else(|| format!("provider {aws_name} missing"))?;
    let max = p
        .capacity_provider_scaling_config()
        .and_then(|s| s.max_v_cpu_count());
    ensure(max == Some(spec.max_vcpu), || {
        format!(
            "provider {name}: maxVCpuCount {max:?} in AWS, spec {}",
            spec.max_vcpu
        )
    })?;
    let tags = world
        .lambda
        .list_tags()
        .resource(p.capacity_provider_arn())
        .send()
        .await
        .map_err(|e| e.to_string())?
        .tags
        .unwrap_or_default();
    ensure(tags.get("chaos") == Some(&spec.tag), || {
        format!(
            "provider {name}: tag chaos={:?} in AWS, spec {}",
            tags.get("chaos"),
            spec.tag
        )
    })
}

async fn function(world: &World, name: &str, spec: &FunctionSpec) -> Check {
    let sf = world
        .functions(TEAM)
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("function {name} does not exist"))?;
    let status = sf.status.clone().unwrap_or_default();
    ensure(is_ready(&sf), || {
        format!(
            "function {name} not Ready for its generation: {:?}",
            status.conditions
        )
    })?;
    let serving = status
        .version
        .clone()
        .ok_or_else(|| format!("function {name}: no version in status"))?;
    let latest = world
        .aws_function(TEAM, name)
        .await
        .ok_or_else(|| format!("function {name} missing in AWS"))?;
    let c = latest
        .configuration()
        .ok_or_else(|| format!("function {name}: no configuration"))?;
    ensure(c.memory_size() == Some(spec.memory_mib), || {
        format!(
            "function {name}: $LATEST memory {:?}, spec {}",
            c.memory_size(),
            spec.memory_mib
        )
    })?;
    let revision = c
        .environment()
        .and_then(|e| e.variables())
        .and_then(|v| v.get("CHAOS_REVISION"));
    ensure(revision == Some(&spec.revision), || {
        format!(
            "function {name}: $LATEST revision {revision:?}, spec {}",
            spec.revision
        )
    })?;
    let sha = world.handlers.sha256("arm64");
    ensure(c.code_sha256() == Some(sha.as_str()), || {
        format!(
            "function {name}: $LATEST code {:?}, handler {sha}",
            c.code_sha256()
        )
    })?;

    let versions = published(world, &world.function_aws_name(TEAM, name)).await;
    let numbers: Vec<u64> = versions.iter().map(|v| v.number).collect();
    let v = versions
        .iter()
        .find(|v| v.number.to_string() == serving)
        .ok_or_else(|| format!("function {name}: serving version {serving} not in {numbers:?}"))?;
    ensure(
        v.memory_mib == Some(spec.memory_mib)
            && v.max_concurrency == Some(spec.concurrency)
            && v.code_sha256.as_ref() == Some(&sha),
        || {
            format!(
                "function {name}: version {serving} has memory {:?} concurrency {:?} code {:?}, \
                 spec {} {} {sha}",
                v.memory_mib, v.max_concurrency, v.code_sha256, spec.memory_mib, spec.concurrency
            )
        },
    )?;
    ensure(versions.len() <= spec.retain as usize, || {
        format!(
            "function {name}: versions {numbers:?}, retain {}",
            spec.retain
        )
    })?;
    let duplicates = duplicate_configs(&versions);
    ensure(duplicates.is_empty(), || {
        format!("function {name}: one configuration published twice: {duplicates:?}")
    })?;
    let (held, _) = world.aws_scaling(TEAM, name, &serving).await;
    ensure(held == Some((Some(spec.min), Some(spec.max))), || {
        format!(
            "function {name}: scaling of {serving} {held:?}, spec {}..{}",
            spec.min, spec.max
        )
    })
}

/// Security groups and VPC endpoints (not deleted) the operator tagged as owned by one of
/// `objects`.
pub async fn owned_by(world: &World, objects: &BTreeSet<String>) -> Vec<String> {
    if objects.is_empty() {
        return Vec::new();
    }
    let filters = || {
        vec![
            Filter::builder()
                .name(format!("tag:{TAG_MANAGED_BY}"))
                .values(MANAGED_BY)
                .build(),
            Filter::builder()
                .name(format!("tag:{TAG_OBJECT}"))
                .set_values(Some(objects.iter().cloned().collect()))
                .build(),
        ]
    };
    let mut found: Vec<String> = world
        .ec2
        .describe_security_groups()
        .set_filters(Some(filters()))
        .send()
        .await
        .expect("describe security groups")
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    found.extend(
        world
            .ec2
            .describe_vpc_endpoints()
            .set_filters(Some(filters()))
            .send()
            .await
            .expect("describe VPC endpoints")
            .vpc_endpoints()
            .iter()
            .filter(|e| {
                !matches!(
                    e.state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .as_deref(),
                    Some("deleting" | "deleted")
                )
            })
            .filter_map(|e| e.vpc_endpoint_id().map(str::to_owned)),
    );
    found
}
