//! Thin typed wrappers over aws-sdk-ec2: the network facts the checks need, instance types, and
//! the security group and telemetry endpoints the operator creates and owns.
//!
//! Lookups use filters rather than id lists: EC2 fails a whole `DescribeSubnets` call when one
//! id does not exist, while a filter simply leaves it out, which is what the checks need to
//! name the missing one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, LocationType, ResourceType, Route, SecurityGroup, Tag,
    TagSpecification, VpcEndpoint, VpcEndpointType,
};

use super::error::AwsError;
use crate::identity::TAG_INSTALLATION;
use crate::instance_types::InstanceTypeFacts;
use crate::network::{DefaultRoute, SecurityGroupFacts, SubnetFacts};

/// Services the operator creates interface endpoints for, so telemetry leaves private subnets
/// without a NAT gateway. The first one is CloudWatch Logs, the one the network check needs.
pub const TELEMETRY_SERVICES: &[&str] = &["logs", "monitoring", "xray"];

/// EC2 calls the controllers make.
#[derive(Clone, Debug)]
pub struct Ec2 {
    client: Client,
    region: String,
}

fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

/// Filters on every tag of `tags` but the installation, which [`same_installation`] checks on
/// the result: resources created before installations were tagged have none, and must still be
/// found.
fn tag_filters(tags: &BTreeMap<String, String>) -> Vec<Filter> {
    tags.iter()
        .filter(|(k, _)| k.as_str() != TAG_INSTALLATION)
        .map(|(k, v)| filter(&format!("tag:{k}"), [v.clone()]))
        .collect()
}

/// Whether a resource's tags name no installation or the one in `ownership` (another
/// installation's resources are never the operator's to change).
fn same_installation(tags: &[Tag], ownership: &BTreeMap<String, String>) -> bool {
    let Some(mine) = ownership.get(TAG_INSTALLATION) else {
        return true;
    };
    tags.iter()
        .find(|t| t.key() == Some(TAG_INSTALLATION))
        .is_none_or(|t| t.value() == Some(mine.as_str()))
}

fn tag_specification(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// An egress rule of a security group: protocol `tcp`, one port, one IPv4 range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EgressRule {
    /// CIDR block.
    pub cidr: String,
    /// TCP port.
    pub port: i32,
}

/// A security group the operator owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedSecurityGroup {
    /// Group id.
    pub id: String,
    /// VPC.
    pub vpc_id: String,
    /// TCP egress rules (anything else counts as drift).
    pub egress: BTreeSet<EgressRule>,
    /// Rules that are not single-port TCP to an IPv4 range (for example the default allow-all).
    pub other_egress_rules: usize,
    /// IPv4 ranges allowed in on TCP 443 (the telemetry endpoints' group needs its VPC's).
    pub https_ingress: BTreeSet<String>,
}

impl Ec2 {
    /// Wraps an SDK client for `region`.
    pub fn new(client: Client, region: impl Into<String>) -> Self {
        Self {
            client,
            region: region.into(),
        }
    }

    /// Subnets by id (missing ones are left out).
    pub async fn subnets_by_id(&self, ids: &[String]) -> Result<Vec<SubnetFacts>, AwsError> {
        self.subnets(vec![filter("subnet-id", ids.iter().cloned())])
            .await
    }

    /// Subnets carrying all `tags`, optionally in one VPC.
    pub async fn subnets_by_tags(
        &self,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<SubnetFacts>, AwsError> {
        let mut filters = tag_filters(tags);
        filters.extend(vpc_id.map(|v| filter("vpc-id", [v])));
        self.subnets(filters).await
    }

    async fn subnets(&self, filters: Vec<Filter>) -> Result<Vec<SubnetFacts>, AwsError> {
        const OP: &str = "DescribeSubnets";
        let out = self
            .client
            .describe_subnets()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        let mut subnets: Vec<SubnetFacts> = out
            .subnets()
            .iter()
            .filter_map(|s| {
                Some(SubnetFacts {
                    id: s.subnet_id()?.to_owned(),
                    vpc_id: s.vpc_id()?.to_owned(),
                    availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
                    default_route: DefaultRoute::None,
                })
            })
            .collect();
        subnets.sort_by(|a, b| a.id.cmp(&b.id));
        let vpcs: BTreeSet<String> = subnets.iter().map(|s| s.vpc_id.clone()).collect();
        let routes = self.default_routes(&vpcs).await?;
        for subnet in &mut subnets {
            subnet.default_route = routes.route_for(&subnet.id, &subnet.vpc_id);
        }
        Ok(subnets)
    }

    /// The default route of every route table in `vpcs`, by explicit subnet association and
    /// by VPC for the main table.
    async fn default_routes(&self, vpcs: &BTreeSet<String>) -> Result<RouteIndex, AwsError> {
        let mut index = RouteIndex::default();
        if vpcs.is_empty() {
            return Ok(index);
        }
        let out = self
            .client
            .describe_route_tables()
            .filters(filter("vpc-id", vpcs.iter().cloned()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeRouteTables", e))?;
        for table in out.route_tables() {
            let default = default_route(table.routes());
            for assoc in table.associations() {
                if assoc.main() == Some(true) {
                    if let Some(vpc) = table.vpc_id() {
                        index.main.insert(vpc.to_owned(), default);
                    }
                } else if let Some(subnet) = assoc.subnet_id() {
                    index.explicit.insert(subnet.to_owned(), default);
                }
            }
        }
        Ok(index)
    }

    /// Security groups by id (missing ones are left out).
    pub async fn security_groups_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<SecurityGroupFacts>, AwsError> {
        // No ids (a provider with no security group of its own): nothing to describe; a filter
        // without values would not select nothing.
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self
            .security_groups(vec![filter("group-id", ids.iter().cloned())])
            .await?;
        Ok(groups.iter().filter_map(sg_facts).collect())
    }

    /// Security groups carrying all `tags`, optionally in one VPC.
    pub async fn security_groups_by_tags(
        &self,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<SecurityGroupFacts>, AwsError> {
        let mut filters = tag_filters(tags);
        filters.extend(vpc_id.map(|v| filter("vpc-id", [v])));
        let groups = self.security_groups(filters).await?;
        Ok(groups.iter().filter_map(sg_facts).collect())
    }

    async fn security_groups(&self, filters: Vec<Filter>) -> Result<Vec<SecurityGroup>, AwsError> {
        let out = self
            .client
            .describe_security_groups()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", e))?;
        let mut groups = out.security_groups.unwrap_or_default();
        groups.sort_by(|a, b| a.group_id().cmp(&b.group_id()));
        Ok(groups)
    }

    /// The security group the operator created for an owner (found by its lookup tags,
    /// `Owner::lookup_tags`; one of another installation is never returned).
    pub async fn owned_security_group(
        &self,
        ownership: &BTreeMap<String, String>,
        role: &str,
    ) -> Result<Option<OwnedSecurityGroup>, AwsError> {
        let mut tags = ownership.clone();
        tags.insert(ROLE_TAG.into(), role.into());
        let groups = self.security_groups(tag_filters(&tags)).await?;
        Ok(groups
            .iter()
            .find(|g| same_installation(g.tags(), ownership))
            .and_then(owned_group))
    }

    /// Creates a security group with no ingress and exactly `egress`, tagged as owned.
    pub async fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc_id: &str,
        ownership: &BTreeMap<String, String>,
        role: &str,
        egress: &BTreeSet<EgressRule>,
    ) -> Result<String, AwsError> {
        let mut tags = ownership.clone();
        tags.insert(ROLE_TAG.into(), role.into());
        tags.insert("Name".into(), name.into());
        let out = self
            .client
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc_id)
            .tag_specifications(tag_specification(ResourceType::SecurityGroup, &tags))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateSecurityGroup", e))?;
        let id = out
            .group_id()
            .ok_or_else(|| AwsError::unexpected("CreateSecurityGroup", "no group id returned"))?
            .to_owned();
        // A new group allows all egress; replace that with exactly the rules asked for.
        self.set_egress(&id, egress, &BTreeSet::new(), true).await?;
        Ok(id)
    }

    /// Changes a group's TCP egress from `current` to `desired`; `revoke_default` also removes
    /// the allow-all rule EC2 puts on new groups.
    pub async fn set_egress(
        &self,
        group_id: &str,
        desired: &BTreeSet<EgressRule>,
        current: &BTreeSet<EgressRule>,
        revoke_default: bool,
    ) -> Result<(), AwsError> {
        let mut revoke: Vec<IpPermission> = current.difference(desired).map(permission).collect();
        if revoke_default {
            revoke.push(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            );
        }
        if !revoke.is_empty() {
            self.client
                .revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(revoke))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("RevokeSecurityGroupEgress", e))?;
        }
        let add: Vec<IpPermission> = desired.difference(current).map(permission).collect();
        if !add.is_empty() {
            self.client
                .authorize_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(add))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupEgress", e))?;
        }
        Ok(())
    }

    /// Allows HTTPS in from `cidr` (for the endpoints' security group).
    pub async fn allow_https_ingress(&self, group_id: &str, cidr: &str) -> Result<(), AwsError> {
        self.client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(permission(&EgressRule {
                cidr: cidr.to_owned(),
                port: 443,
            }))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", e))?;
        Ok(())
    }

    /// Deletes a security group; an absent one counts as deleted.
    pub async fn delete_security_group(&self, id: &str) -> Result<(), AwsError> {
        match self
            .client
            .delete_security_group()
            .group_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteSecurityGroup", e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    /// The primary IPv4 CIDR block of a VPC.
    pub async fn vpc_cidr(&self, vpc_id: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .describe_vpcs()
            .filters(filter("vpc-id", [vpc_id]))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeVpcs", e))?;
        out.vpcs()
            .first()
            .and_then(|v| v.cidr_block())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::unexpected("DescribeVpcs", format!("VPC {vpc_id} not found")))
    }

    fn service_name(&self, service: &str) -> String {
        format!("com.amazonaws.{}.{service}", self.region)
    }

    /// VPCs (among `vpcs`) that have a usable interface endpoint for CloudWatch Logs.
    pub async fn vpcs_with_logs_endpoint(
        &self,
        vpcs: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, AwsError> {
        if vpcs.is_empty() {
            return Ok(BTreeSet::new());
        }
        let out = self
            .client
            .describe_vpc_endpoints()
            .filters(filter("vpc-id", vpcs.iter().cloned()))
            .filters(filter(
                "service-name",
                [self.service_name(TELEMETRY_SERVICES[0])],
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeVpcEndpoints", e))?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .filter(|e| !in_state(e, &["deleting", "deleted", "failed", "rejected"]))
            .filter_map(|e| e.vpc_id().map(str::to_owned))
            .collect())
    }

    /// The telemetry endpoints the operator created for an owner: service → endpoint id.
    pub async fn owned_endpoints(
        &self,
        ownership: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let out = self
            .client
            .describe_vpc_endpoints()
            .set_filters(Some(tag_filters(ownership)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeVpcEndpoints", e))?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .filter(|e| !in_state(e, &["deleting", "deleted"]))
            .filter(|e| same_installation(e.tags(), ownership))
            .filter_map(|e| {
                let service = e.service_name()?.rsplit('.').next()?.to_owned();
                Some((service, e.vpc_endpoint_id()?.to_owned()))
            })
            .collect())
    }

    /// Creates an interface endpoint for `service` with private DNS, tagged as owned.
    pub async fn create_endpoint(
        &self,
        service: &str,
        vpc_id: &str,
        subnet_ids: &[String],
        security_group_id: &str,
        ownership: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateVpcEndpoint";
        let out = self
            .client
            .create_vpc_endpoint()
            .vpc_id(vpc_id)
            .service_name(self.service_name(service))
            .vpc_endpoint_type(VpcEndpointType::Interface)
            .set_subnet_ids(Some(subnet_ids.to_vec()))
            .security_group_ids(security_group_id)
            .private_dns_enabled(true)
            // One token per create, reused by the SDK's retries of it: a retry after a lost
            // answer returns the endpoint the first attempt made instead of a second one (the
            // SDK fills no token for this operation itself).
            .client_token(client_token())
            .tag_specifications(tag_specification(ResourceType::VpcEndpoint, ownership))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        out.vpc_endpoint()
            .and_then(|e| e.vpc_endpoint_id())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::unexpected(OP, "no endpoint id returned"))
    }

    /// Deletes interface endpoints.
    pub async fn delete_endpoints(&self, ids: &[String]) -> Result<(), AwsError> {
        if ids.is_empty() {
            return Ok(());
        }
        match self
            .client
            .delete_vpc_endpoints()
            .set_vpc_endpoint_ids(Some(ids.to_vec()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteVpcEndpoints", e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    /// Instance types matching any of `patterns` (EC2 filters accept `*` wildcards).
    pub async fn instance_types(
        &self,
        patterns: &[String],
    ) -> Result<Vec<InstanceTypeFacts>, AwsError> {
        let mut facts = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .describe_instance_types()
                .filters(filter("instance-type", patterns.iter().cloned()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeInstanceTypes", e))?;
            facts.extend(out.instance_types().iter().filter_map(|t| {
                Some(InstanceTypeFacts {
                    name: t.instance_type()?.as_str().to_owned(),
                    architectures: t
                        .processor_info()
                        .map(|p| {
                            p.supported_architectures()
                                .iter()
                                .map(|a| a.as_str().to_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            }));
            match out.next_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
            }
        }
        facts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(facts)
    }

    /// Availability Zones (among `zones`) each of `types` is offered in.
    pub async fn offerings(
        &self,
        types: &[String],
        zones: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, AwsError> {
        let mut offered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if types.is_empty() || zones.is_empty() {
            return Ok(offered);
        }
        let mut token = None;
        loop {
            let out = self
                .client
                .describe_instance_type_offerings()
                .location_type(LocationType::AvailabilityZone)
                .filters(filter("instance-type", types.iter().cloned()))
                .filters(filter("location", zones.iter().cloned()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeInstanceTypeOfferings", e))?;
            for o in out.instance_type_offerings() {
                if let (Some(t), Some(az)) = (o.instance_type(), o.location()) {
                    offered
                        .entry(t.as_str().to_owned())
                        .or_default()
                        .insert(az.to_owned());
                }
            }
            match out.next_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(offered),
            }
        }
    }
}

/// Tag telling the operator's security groups apart (`instances` or `endpoints`).
pub const ROLE_TAG: &str = "lmi.dev/role";

/// Whether an endpoint is in one of `states` (EC2 reports them in any case).
fn in_state(endpoint: &VpcEndpoint, states: &[&str]) -> bool {
    endpoint
        .state()
        .is_some_and(|s| states.iter().any(|x| s.as_str().eq_ignore_ascii_case(x)))
}

fn permission(rule: &EgressRule) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(rule.port)
        .to_port(rule.port)
        .ip_ranges(IpRange::builder().cidr_ip(&rule.cidr).build())
        .build()
}

/// What the operator needs to know of a group it owns (`None` without id or VPC).
fn owned_group(g: &SecurityGroup) -> Option<OwnedSecurityGroup> {
    let mut egress = BTreeSet::new();
    let mut other = 0;
    for p in g.ip_permissions_egress() {
        let single_tcp = p.ip_protocol() == Some("tcp") && p.from_port() == p.to_port();
        match (single_tcp, p.from_port()) {
            (true, Some(port)) if p.user_id_group_pairs().is_empty() => {
                for r in p.ip_ranges() {
                    if let Some(cidr) = r.cidr_ip() {
                        egress.insert(EgressRule {
                            cidr: cidr.to_owned(),
                            port,
                        });
                    }
                }
                other += p.ipv6_ranges().len() + p.prefix_list_ids().len();
            }
            _ => other += 1,
        }
    }
    let https_ingress = g
        .ip_permissions()
        .iter()
        .filter(|p| {
            p.ip_protocol() == Some("tcp") && p.from_port() == Some(443) && p.to_port() == Some(443)
        })
        .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip()))
        .map(str::to_owned)
        .collect();
    Some(OwnedSecurityGroup {
        id: g.group_id()?.to_owned(),
        vpc_id: g.vpc_id()?.to_owned(),
        egress,
        other_egress_rules: other,
        https_ingress,
    })
}

fn sg_facts(g: &SecurityGroup) -> Option<SecurityGroupFacts> {
    Some(SecurityGroupFacts {
        id: g.group_id()?.to_owned(),
        vpc_id: g.vpc_id()?.to_owned(),
    })
}

/// What a route table's default routes make of its subnets. An internet gateway on either
/// default route — IPv4 `0.0.0.0/0` or IPv6 `::/0` — makes them public (instances with IPv6
/// addresses are reachable from the internet through it); otherwise the IPv4 default route
/// decides the egress (an egress-only gateway gives IPv6 egress alone, which is not the egress
/// to AWS's IPv4 endpoints: `Other`).
fn default_route(routes: &[Route]) -> DefaultRoute {
    let is_default = |r: &&Route| {
        r.destination_cidr_block() == Some("0.0.0.0/0")
            || r.destination_ipv6_cidr_block() == Some("::/0")
    };
    let to_internet_gateway = |r: &&Route| r.gateway_id().is_some_and(|g| g.starts_with("igw-"));
    if routes
        .iter()
        .filter(is_default)
        .any(|r| to_internet_gateway(&r))
    {
        return DefaultRoute::InternetGateway;
    }
    if let Some(v4) = routes
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
    {
        return if v4.nat_gateway_id().is_some() {
            DefaultRoute::NatGateway
        } else {
            DefaultRoute::Other
        };
    }
    if routes.iter().any(|r| is_default(&r)) {
        DefaultRoute::Other
    } else {
        DefaultRoute::None
    }
}

#[derive(Default)]
struct RouteIndex {
    explicit: HashMap<String, DefaultRoute>,
    main: HashMap<String, DefaultRoute>,
}

impl RouteIndex {
    fn route_for(&self, subnet: &str, vpc: &str) -> DefaultRoute {
        self.explicit
            .get(subnet)
            .or_else(|| self.main.get(vpc))
            .copied()
            .unwrap_or(DefaultRoute::None)
    }
}

/// A fresh idempotency token (EC2 takes up to 64 ASCII characters).
fn client_token() -> String {
    format!("lmi-{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(gateway: Option<&str>, nat: Option<&str>) -> Route {
        Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .set_gateway_id(gateway.map(str::to_owned))
            .set_nat_gateway_id(nat.map(str::to_owned))
            .build()
    }

    fn v6(gateway: Option<&str>, egress_only: Option<&str>) -> Route {
        Route::builder()
            .destination_ipv6_cidr_block("::/0")
            .set_gateway_id(gateway.map(str::to_owned))
            .set_egress_only_internet_gateway_id(egress_only.map(str::to_owned))
            .build()
    }

    #[test]
    fn an_internet_gateway_on_either_default_route_makes_a_subnet_public() {
        let local = Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .build();
        assert_eq!(
            default_route(std::slice::from_ref(&local)),
            DefaultRoute::None
        );
        assert_eq!(
            default_route(&[local.clone(), v4(None, Some("nat-1"))]),
            DefaultRoute::NatGateway
        );
        assert_eq!(
            default_route(&[v4(Some("igw-1"), None)]),
            DefaultRoute::InternetGateway
        );
        // NAT for IPv4, but IPv6 straight to the internet gateway: public.
        assert_eq!(
            default_route(&[v4(None, Some("nat-1")), v6(Some("igw-1"), None)]),
            DefaultRoute::InternetGateway
        );
        assert_eq!(
            default_route(&[local, v6(Some("igw-1"), None)]),
            DefaultRoute::InternetGateway
        );
        // An egress-only gateway is not public; alone it gives no IPv4 egress.
        assert_eq!(
            default_route(&[v4(None, Some("nat-1")), v6(None, Some("eigw-1"))]),
            DefaultRoute::NatGateway
        );
        assert_eq!(
            default_route(&[v6(None, Some("eigw-1"))]),
            DefaultRoute::Other
        );
    }

    fn tcp(port: i32, cidr: &str) -> IpPermission {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
            .build()
    }

    #[test]
    fn an_owned_group_reports_its_https_ingress_and_its_egress() {
        let all = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let g = SecurityGroup::builder()
            .group_id("sg-1")
            .vpc_id("vpc-1")
            .ip_permissions(tcp(443, "10.7.0.0/16"))
            .ip_permissions(tcp(22, "10.0.0.0/8"))
            .ip_permissions_egress(tcp(443, "0.0.0.0/0"))
            .ip_permissions_egress(all)
            .build();
        let owned = owned_group(&g).expect("owned group");
        assert_eq!(
            owned.https_ingress,
            BTreeSet::from(["10.7.0.0/16".to_owned()])
        );
        assert_eq!(
            owned.egress,
            BTreeSet::from([EgressRule {
                cidr: "0.0.0.0/0".into(),
                port: 443
            }])
        );
        assert_eq!(owned.other_egress_rules, 1);
    }

    #[test]
    fn a_group_created_but_never_opened_has_no_https_ingress() {
        let g = SecurityGroup::builder()
            .group_id("sg-1")
            .vpc_id("vpc-1")
            .build();
        assert!(
            owned_group(&g)
                .expect("owned group")
                .https_ingress
                .is_empty()
        );
        assert!(owned_group(&SecurityGroup::builder().build()).is_none());
    }
}
