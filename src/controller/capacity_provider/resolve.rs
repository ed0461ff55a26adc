//! Resolve: read what the reconcile needs from EC2 and Lambda. Reads only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::api::capacity_provider::CapacityProviderSpec;
use crate::aws::ec2::OwnedSecurityGroup;
use crate::aws::model::ObservedProvider;
use crate::aws::{AwsClients, AwsError};
use crate::instance_types::{self, InstanceVerdict};
use crate::network::{self, NetworkFacts, NetworkVerdict, Requested};

/// Role tag value of the instances' security group the operator owns.
pub const INSTANCES_ROLE: &str = "instances";
/// Role tag value of the telemetry endpoints' security group the operator owns.
pub const ENDPOINTS_ROLE: &str = "endpoints";

/// What the reconcile knows about AWS.
pub struct World {
    /// Network checks.
    pub network: NetworkVerdict,
    /// Instance-type checks (not run while the network blocks).
    pub instances: InstanceVerdict,
    /// The operator's security group for the instances.
    pub managed_sg: Option<OwnedSecurityGroup>,
    /// The operator's security group for the telemetry endpoints.
    pub endpoints_sg: Option<OwnedSecurityGroup>,
    /// The operator's telemetry endpoints: service → id.
    pub endpoints: BTreeMap<String, String>,
    /// The provider, with its tags.
    pub provider: Option<(ObservedProvider, HashMap<String, String>)>,
}

impl World {
    /// Subnet ids as resolved.
    pub fn subnet_ids(&self) -> Vec<String> {
        self.network
            .status
            .subnets
            .iter()
            .map(|s| s.id.clone())
            .collect()
    }

    /// Security group ids for the provider: the resolved ones, or the managed one.
    pub fn security_group_ids(&self) -> Vec<String> {
        match &self.managed_sg {
            Some(sg) => vec![sg.id.clone()],
            None => self.network.status.security_group_ids.clone(),
        }
    }
}

/// How the spec asks for subnets.
pub fn requested_subnets(spec: &CapacityProviderSpec) -> Requested {
    match &spec.vpc.subnet_ids {
        Some(ids) => Requested::Ids(ids.clone()),
        None => Requested::Selector { min: 1, max: 16 },
    }
}

/// How the spec asks for security groups.
pub fn requested_security_groups(spec: &CapacityProviderSpec) -> Requested {
    if let Some(ids) = &spec.vpc.security_group_ids {
        Requested::Ids(ids.clone())
    } else if spec.vpc.security_group_selector.is_some() {
        Requested::Selector { min: 1, max: 5 }
    } else {
        Requested::Managed
    }
}

/// Reads the world for one capacity provider.
pub async fn read(
    aws: &AwsClients,
    spec: &CapacityProviderSpec,
    aws_name: &str,
    ownership: &BTreeMap<String, String>,
) -> Result<World, AwsError> {
    let ec2 = &aws.ec2;
    let vpc = &spec.vpc;
    let mut facts = NetworkFacts {
        subnets: match (&vpc.subnet_ids, &vpc.subnet_selector) {
            (Some(ids), _) => ec2.subnets_by_id(ids).await?,
            (None, Some(sel)) => {
                ec2.subnets_by_tags(sel.vpc_id.as_deref(), &sel.tags)
                    .await?
            }
            (None, None) => Vec::new(),
        },
        ..Default::default()
    };
    let managed_sg = ec2.owned_security_group(ownership, INSTANCES_ROLE).await?;
    let endpoints_sg = ec2.owned_security_group(ownership, ENDPOINTS_ROLE).await?;
    facts.security_groups = match (&vpc.security_group_ids, &vpc.security_group_selector) {
        (Some(ids), _) => ec2.security_groups_by_id(ids).await?,
        (None, Some(sel)) => {
            let mut groups = ec2
                .security_groups_by_tags(sel.vpc_id.as_deref(), &sel.tags)
                .await?;
            // The operator's own groups carry the role tag; a selector never means them.
            let own: BTreeSet<&str> = [&managed_sg, &endpoints_sg]
                .into_iter()
                .flatten()
                .map(|g| g.id.as_str())
                .collect();
            groups.retain(|g| !own.contains(g.id.as_str()));
            groups
        }
        (None, None) => managed_sg
            .iter()
            .map(|g| network::SecurityGroupFacts {
                id: g.id.clone(),
                vpc_id: g.vpc_id.clone(),
            })
            .collect(),
    };
    facts.managed_security_group = managed_sg.as_ref().map(|g| g.id.clone());
    let vpcs: BTreeSet<String> = facts.subnets.iter().map(|s| s.vpc_id.clone()).collect();
    facts.vpcs_with_logs_endpoint = ec2.vpcs_with_logs_endpoint(&vpcs).await?;
    let endpoints = ec2.owned_endpoints(ownership).await?;
    facts.owned_endpoints = endpoints.values().cloned().collect();

    let network = network::evaluate(
        &requested_subnets(spec),
        &requested_security_groups(spec),
        vpc.telemetry_endpoints,
        &facts,
    );
    let instances = match spec.instances.allowed_instance_types.as_deref() {
        Some(allowed) if !network.blocks() => {
            let zones: BTreeSet<String> = facts
                .subnets
                .iter()
                .map(|s| s.availability_zone.clone())
                .collect();
            let types = ec2.instance_types(allowed).await?;
            let names: Vec<String> = types.iter().map(|t| t.name.clone()).collect();
            let offerings = ec2.offerings(&names, &zones).await?;
            instance_types::evaluate(
                allowed,
                spec.instances.architecture,
                &zones,
                &types,
                &offerings,
            )
        }
        _ => InstanceVerdict {
            resolved: Vec::new(),
            problem: None,
        },
    };
    let provider = match aws.lambda.get_capacity_provider(aws_name).await? {
        Some(p) => {
            let tags = aws.lambda.list_tags(&p.arn).await?;
            Some((p, tags))
        }
        None => None,
    };
    Ok(World {
        network,
        instances,
        managed_sg,
        endpoints_sg,
        endpoints,
        provider,
    })
}
