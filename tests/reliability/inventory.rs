//! What AWS holds, read straight from the emulator (setup clients: not counted by the proxy):
//! capacity providers, functions and their published versions, and the security groups and
//! VPC endpoints the operator tagged as its own. The suite's tests create nothing in Lambda
//! themselves, so every provider and function found was created by the operator.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use lmi_operator::identity::{MANAGED_BY, TAG_MANAGED_BY};
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
    /// Reads the inventory.
    pub async fn read(world: &World) -> Inventory {
        let mut functions = BTreeMap::new();
        for name in world.aws_function_names().await {
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
        Inventory {
            providers: world.aws_provider_names().await.into_iter().collect(),
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
