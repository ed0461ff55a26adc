//! What AWS holds for one installation of the operator, read straight from the emulator (setup
//! clients: not counted by the proxy): capacity providers, functions and their published
//! versions, and the security groups and VPC endpoints it tagged as its own. The suite's tests
//! create nothing in Lambda themselves, so every provider and function found was created by an
//! operator; those another installation tagged (a neighbour sharing the account) are left out.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use lmi_operator::identity::{MANAGED_BY, TAG_INSTALLATION, TAG_MANAGED_BY};
use lmi_test_support::{OperationRecord, Outcome};

use crate::harness::World;

/// Everything the operator created that is still in AWS.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Capacity provider names.
    pub providers: BTreeSet<String>,
    /// Function names, each with its published version numbers.
    pub functions: BTreeMap<String, Vec<u64>>,
    /// Security groups tagged `lmi.dev/managed-by: lmi-operator`.
    pub security_groups: BTreeSet<String>,
    /// VPC endpoints so tagged and not (being) deleted.
    pub endpoints: BTreeSet<String>,
}

impl Inventory {
    /// Reads the inventory of `world`'s installation.
    pub async fn read(world: &World) -> Inventory {
        let installation = world.config.installation_id.as_str();
        let theirs = |tags: Option<&std::collections::HashMap<String, String>>| {
            tags.and_then(|t| t.get(TAG_INSTALLATION))
                .is_some_and(|i| i != installation)
        };
        let mut functions = BTreeMap::new();
        for name in world.aws_function_names().await {
            let tags = world
                .lambda
                .get_function()
                .function_name(&name)
                .send()
                .await
                .ok()
                .and_then(|f| f.tags().cloned());
            if theirs(tags.as_ref()) {
                continue;
            }
            let versions = published(world, &name)
                .await
                .iter()
                .map(|v| v.number)
                .collect();
            functions.insert(name, versions);
        }
        let owned = Filter::builder()
            .name(format!("tag:{TAG_MANAGED_BY}"))
            .values(MANAGED_BY)
            .build();
        let security_groups = world
            .ec2
            .describe_security_groups()
            .filters(owned.clone())
            .send()
            .await
            .expect("describe security groups")
            .security_groups()
            .iter()
            .filter(|g| mine(g.tags(), installation))
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect();
        let endpoints = world
            .ec2
            .describe_vpc_endpoints()
            .filters(owned)
            .send()
            .await
            .expect("describe VPC endpoints")
            .vpc_endpoints()
            .iter()
            .filter(|e| mine(e.tags(), installation))
            .filter(|e| {
                !matches!(
                    e.state()
                        .map(|s| s.as_str().to_ascii_lowercase())
                        .as_deref(),
                    Some("deleting" | "deleted")
                )
            })
            .filter_map(|e| e.vpc_endpoint_id().map(str::to_owned))
            .collect();
        let mut providers = BTreeSet::new();
        for name in world.aws_provider_names().await {
            let arn = world
                .lambda
                .get_capacity_provider()
                .capacity_provider_name(&name)
                .send()
                .await
                .ok()
                .and_then(|p| {
                    p.capacity_provider()
                        .map(|p| p.capacity_provider_arn().to_owned())
                });
            let tags = match arn {
                Some(arn) => world
                    .lambda
                    .list_tags()
                    .resource(arn)
                    .send()
                    .await
                    .ok()
                    .and_then(|t| t.tags().cloned()),
                None => None,
            };
            if !theirs(tags.as_ref()) {
                providers.insert(name);
            }
        }
        Inventory {
            providers,
            functions,
            security_groups,
            endpoints,
        }
    }

    /// Whether AWS holds nothing the operator created.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
            && self.functions.is_empty()
            && self.security_groups.is_empty()
            && self.endpoints.is_empty()
    }
}

/// Whether EC2 `tags` name no other installation than `installation`.
fn mine(tags: &[aws_sdk_ec2::types::Tag], installation: &str) -> bool {
    tags.iter()
        .find(|t| t.key() == Some(TAG_INSTALLATION))
        .is_none_or(|t| t.value() == Some(installation))
}

/// A published version as Lambda lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub number: u64,
    pub memory_mib: Option<i32>,
    pub max_concurrency: Option<i32>,
    pub code_sha256: Option<String>,
    /// The operator writes the config hash it published the version for here.
    pub description: String,
}

/// The published (numbered) versions of function `aws_name`, ascending; empty when it does not
/// exist.
pub async fn published(world: &World, aws_name: &str) -> Vec<Published> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let Ok(page) = world
            .lambda
            .list_versions_by_function()
            .function_name(aws_name)
            .set_marker(marker)
            .send()
            .await
        else {
            return Vec::new();
        };
        out.extend(page.versions().iter().filter_map(|v| {
            Some(Published {
                number: v.version()?.parse().ok()?,
                memory_mib: v.memory_size(),
                max_concurrency: v
                    .capacity_provider_config()
                    .and_then(|c| c.lambda_managed_instances_capacity_provider_config())
                    .and_then(|c| c.per_execution_environment_max_concurrency()),
                code_sha256: v.code_sha256().map(str::to_owned),
                description: v.description().unwrap_or_default().to_owned(),
            })
        }));
        marker = page.next_marker().map(str::to_owned);
        if marker.as_deref().is_none_or(str::is_empty) {
            break;
        }
    }
    out.sort_by_key(|v| v.number);
    out
}

/// Versions that share a description (the config hash the operator published them for): a
/// configuration published twice.
pub fn duplicate_configs(versions: &[Published]) -> Vec<(String, Vec<u64>)> {
    let mut by_description: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for v in versions {
        by_description
            .entry(v.description.as_str())
            .or_default()
            .push(v.number);
    }
    by_description
        .into_iter()
        .filter(|(_, numbers)| numbers.len() > 1)
        .map(|(d, numbers)| (d.to_owned(), numbers))
        .collect()
}

/// How many calls to `operation` AWS answered with success, in a proxy log.
pub fn succeeded(log: &[OperationRecord], operation: &str) -> usize {
    log.iter()
        .filter(|r| r.operation == operation)
        .filter(|r| matches!(r.outcome, Outcome::Forwarded(status) if (200..300).contains(&status)))
        .count()
}
