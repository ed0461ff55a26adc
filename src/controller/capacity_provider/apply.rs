//! Apply: the only step that changes AWS. Each call is guarded by what resolve read, and every
//! resource it creates is tagged as owned, so a crash between two calls converges on the next
//! reconcile without duplicates.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{ProviderPlan, Step};
use super::resolve::{ENDPOINTS_ROLE, INSTANCES_ROLE, World};
use crate::api::capacity_provider::CapacityProviderSpec;
use crate::aws::ec2::{EgressRule, OwnedSecurityGroup, TELEMETRY_SERVICES};
use crate::aws::model::ProviderConfig;
use crate::aws::{AwsClients, AwsError};

/// A change made in AWS, for an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Event reason (bounded), e.g. `CreatedCapacityProvider`.
    pub reason: &'static str,
    /// What was done.
    pub message: String,
}

fn change(reason: &'static str, message: String) -> Change {
    Change { reason, message }
}

/// The egress rules the spec asks for on the managed security group.
pub fn desired_egress(spec: &CapacityProviderSpec) -> Option<BTreeSet<EgressRule>> {
    spec.vpc.managed_security_group.as_ref().map(|m| {
        m.egress_cidr_blocks
            .iter()
            .flat_map(|cidr| {
                m.egress_ports.iter().map(|port| EgressRule {
                    cidr: cidr.clone(),
                    port: *port,
                })
            })
            .collect()
    })
}

/// Creates or repairs the security group and telemetry endpoints the operator owns.
pub async fn ensure_network(
    aws: &AwsClients,
    spec: &CapacityProviderSpec,
    aws_name: &str,
    ownership: &BTreeMap<String, String>,
    world: &mut World,
    may_correct: bool,
) -> Result<Vec<Change>, AwsError> {
    let mut changes = Vec::new();
    let Some(vpc_id) = world.network.status.vpc_id.clone() else {
        return Ok(changes);
    };
    if let Some(egress) = desired_egress(spec) {
        match &world.managed_sg {
            None => {
                let name = format!("{aws_name}-instances");
                let id = aws
                    .ec2
                    .create_security_group(
                        &name,
                        "Lambda Managed Instances of a capacity provider (lmi-operator)",
                        &vpc_id,
                        ownership,
                        INSTANCES_ROLE,
                        &egress,
                    )
                    .await?;
                changes.push(change(
                    "CreatedSecurityGroup",
                    format!("created security group {id} ({name}) in {vpc_id}"),
                ));
                world.managed_sg = Some(OwnedSecurityGroup {
                    id,
                    vpc_id: vpc_id.clone(),
                    egress,
                    other_egress_rules: 0,
                    https_ingress: BTreeSet::new(),
                });
            }
            Some(sg) if may_correct && (sg.egress != egress || sg.other_egress_rules > 0) => {
                aws.ec2
                    .set_egress(&sg.id, &egress, &sg.egress, sg.other_egress_rules > 0)
                    .await?;
                changes.push(change(
                    "UpdatedSecurityGroup",
                    format!("restored the egress rules of security group {}", sg.id),
                ));
            }
            Some(_) => {}
        }
    }
    if world.network.needs_telemetry_endpoints {
        changes.extend(ensure_endpoints(aws, aws_name, ownership, world, &vpc_id).await?);
    }
    Ok(changes)
}

async fn ensure_endpoints(
    aws: &AwsClients,
    aws_name: &str,
    ownership: &BTreeMap<String, String>,
    world: &mut World,
    vpc_id: &str,
) -> Result<Vec<Change>, AwsError> {
    let mut changes = Vec::new();
    let sg_id = match &world.endpoints_sg {
        Some(sg) => {
            // Created by an earlier pass that stopped before it was finished (a crash or an
            // error between the calls): finish it, or the endpoints stay unreachable.
            if sg.https_ingress.is_empty() {
                let cidr = aws.ec2.vpc_cidr(vpc_id).await?;
                aws.ec2.allow_https_ingress(&sg.id, &cidr).await?;
                changes.push(change(
                    "UpdatedSecurityGroup",
                    format!(
                        "allowed HTTPS from {cidr} into security group {} of the telemetry \
                         endpoints",
                        sg.id
                    ),
                ));
            }
            if !sg.egress.is_empty() || sg.other_egress_rules > 0 {
                aws.ec2
                    .set_egress(
                        &sg.id,
                        &BTreeSet::new(),
                        &sg.egress,
                        sg.other_egress_rules > 0,
                    )
                    .await?;
                changes.push(change(
                    "UpdatedSecurityGroup",
                    format!(
                        "removed the egress rules of security group {} of the telemetry endpoints",
                        sg.id
                    ),
                ));
            }
            sg.id.clone()
        }
        None => {
            let name = format!("{aws_name}-endpoints");
            let id = aws
                .ec2
                .create_security_group(
                    &name,
                    "Telemetry VPC endpoints of a capacity provider (lmi-operator)",
                    vpc_id,
                    ownership,
                    ENDPOINTS_ROLE,
                    &BTreeSet::new(),
                )
                .await?;
            let cidr = aws.ec2.vpc_cidr(vpc_id).await?;
            aws.ec2.allow_https_ingress(&id, &cidr).await?;
            changes.push(change(
                "CreatedSecurityGroup",
                format!("created security group {id} ({name}) for telemetry endpoints"),
            ));
            world.endpoints_sg = Some(OwnedSecurityGroup {
                id: id.clone(),
                vpc_id: vpc_id.to_owned(),
                egress: BTreeSet::new(),
                other_egress_rules: 0,
                https_ingress: BTreeSet::from([cidr]),
            });
            id
        }
    };
    // An interface endpoint takes at most one subnet per Availability Zone.
    let mut zones = BTreeSet::new();
    let subnets: Vec<String> = world
        .network
        .status
        .subnets
        .iter()
        .filter(|s| zones.insert(s.availability_zone.clone()))
        .map(|s| s.id.clone())
        .collect();
    for service in TELEMETRY_SERVICES {
        if world.endpoints.contains_key(*service) {
            continue;
        }
        let id = aws
            .ec2
            .create_endpoint(service, vpc_id, &subnets, &sg_id, ownership)
            .await?;
        changes.push(change(
            "CreatedVpcEndpoint",
            format!("created VPC endpoint {id} for {service} in {vpc_id}"),
        ));
        world.endpoints.insert((*service).to_owned(), id);
    }
    Ok(changes)
}

/// Makes the provider calls of the plan.
pub async fn apply_provider(
    aws: &AwsClients,
    aws_name: &str,
    plan: &ProviderPlan,
    desired: &ProviderConfig,
    desired_tags: &BTreeMap<String, String>,
    world: &mut World,
) -> Result<Vec<Change>, AwsError> {
    let mut changes = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Create => {
                let created = aws
                    .lambda
                    .create_capacity_provider(aws_name, desired, desired_tags)
                    .await?;
                changes.push(change(
                    "CreatedCapacityProvider",
                    format!("created capacity provider {aws_name} ({})", created.arn),
                ));
                world.provider = Some((created, desired_tags.clone().into_iter().collect()));
            }
            Step::Update => {
                aws.lambda
                    .update_capacity_provider(aws_name, desired)
                    .await?;
                let fields: Vec<&str> = plan
                    .drift
                    .iter()
                    .filter(|d| d.correctable && !d.field.starts_with("tags."))
                    .map(|d| d.field.as_str())
                    .collect();
                changes.push(change(
                    "UpdatedCapacityProvider",
                    format!(
                        "updated {} of capacity provider {aws_name}",
                        fields.join(", ")
                    ),
                ));
            }
            Step::Untag(keys) => {
                if let Some((provider, observed_tags)) = &mut world.provider {
                    aws.lambda.untag_resource(&provider.arn, keys).await?;
                    for k in keys {
                        observed_tags.remove(k);
                    }
                    changes.push(change(
                        "UntaggedCapacityProvider",
                        format!(
                            "removed tags {} from capacity provider {aws_name} (no longer in the \
                             spec)",
                            keys.join(", ")
                        ),
                    ));
                }
            }
            Step::Tag(tags) => {
                if let Some((provider, observed_tags)) = &mut world.provider {
                    aws.lambda.tag_resource(&provider.arn, tags).await?;
                    observed_tags.extend(tags.clone());
                    let keys: Vec<&str> = tags.keys().map(String::as_str).collect();
                    changes.push(change(
                        "TaggedCapacityProvider",
                        format!(
                            "set tags {} on capacity provider {aws_name}",
                            keys.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    Ok(changes)
}
