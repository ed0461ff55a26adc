//! Network fixtures built through aws-sdk-ec2: a VPC whose subnets reach the internet the way a
//! test needs — through a NAT gateway (the good case for LMI), an internet gateway (public, which
//! LMI should not use), or not at all (isolated) — plus a security group and, optionally,
//! interface VPC endpoints for telemetry (CloudWatch Logs, ...).
//!
//! ```no_run
//! # async fn demo(ec2: &aws_sdk_ec2::Client) -> Result<(), lmi_test_support::SupportError> {
//! use lmi_test_support::Network;
//! let good = Network::good(ec2).await?;
//! let broken = Network::builder().isolated_subnet("us-east-1a").build(ec2).await?;
//! let other_vpc = Network::builder().cidr("10.1.0.0/16").private_subnet("us-east-1a").build(ec2).await?;
//! # Ok(()) }
//! ```

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{DomainType, IpPermission, IpRange, Tag, VpcEndpointType};

use crate::error::SupportError;
use crate::sdk::REGION;

/// How a subnet's traffic reaches the internet (its route table's default route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Egress {
    /// `0.0.0.0/0` → a NAT gateway: private, with egress. What LMI wants.
    NatGateway,
    /// `0.0.0.0/0` → an internet gateway: a public subnet.
    InternetGateway,
    /// No default route: isolated; telemetry needs VPC endpoints.
    None,
}

/// A subnet of a fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureSubnet {
    pub id: String,
    pub availability_zone: String,
    pub cidr: String,
    pub egress: Egress,
    pub route_table_id: String,
}

/// A VPC built by [`NetworkBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub vpc_id: String,
    pub cidr: String,
    /// In the order they were asked for; a public subnet created only to host the NAT gateway
    /// comes last.
    pub subnets: Vec<FixtureSubnet>,
    /// A security group of the VPC allowing only HTTPS out.
    pub security_group_id: String,
    pub internet_gateway_id: Option<String>,
    pub nat_gateway_id: Option<String>,
    /// Interface endpoints, by service name (e.g. `com.amazonaws.us-east-1.logs`).
    pub vpc_endpoints: Vec<(String, String)>,
}

impl Network {
    /// The network a capacity provider should get: private subnets in `us-east-1a` and
    /// `us-east-1b` routed through a NAT gateway, and a security group with HTTPS egress.
    pub async fn good(ec2: &Client) -> Result<Network, SupportError> {
        Network::builder()
            .private_subnet("us-east-1a")
            .private_subnet("us-east-1b")
            .build(ec2)
            .await
    }

    /// Subnets without any egress in `us-east-1a` and `us-east-1b` (no default route): what a
    /// provider's `telemetryEndpoints: Create` is for.
    pub async fn isolated(ec2: &Client) -> Result<Network, SupportError> {
        Network::builder()
            .isolated_subnet("us-east-1a")
            .isolated_subnet("us-east-1b")
            .build(ec2)
            .await
    }

    pub fn builder() -> NetworkBuilder {
        NetworkBuilder::default()
    }

    /// The ids of the subnets with this egress, in order.
    pub fn subnet_ids(&self, egress: Egress) -> Vec<String> {
        self.subnets
            .iter()
            .filter(|s| s.egress == egress)
            .map(|s| s.id.clone())
            .collect()
    }

    /// The ids of the private (NAT-routed) subnets.
    pub fn private_subnet_ids(&self) -> Vec<String> {
        self.subnet_ids(Egress::NatGateway)
    }

    /// The subnet with this id.
    pub fn subnet(&self, id: &str) -> Option<&FixtureSubnet> {
        self.subnets.iter().find(|s| s.id == id)
    }
}

/// Describes a VPC to build: subnets by egress and availability zone, endpoints, tags.
#[derive(Debug, Clone)]
pub struct NetworkBuilder {
    cidr: String,
    subnets: Vec<(Egress, String)>,
    endpoint_services: Vec<String>,
    tags: Vec<(String, String)>,
}

impl Default for NetworkBuilder {
    fn default() -> Self {
        NetworkBuilder {
            cidr: "10.0.0.0/16".to_owned(),
            subnets: Vec::new(),
            endpoint_services: Vec::new(),
            tags: Vec::new(),
        }
    }
}

impl NetworkBuilder {
    /// The VPC's block, a `/16` (default `10.0.0.0/16`); subnets get its `/24`s in order.
    pub fn cidr(mut self, cidr: &str) -> Self {
        cidr.clone_into(&mut self.cidr);
        self
    }

    /// A private subnet whose default route goes through the VPC's NAT gateway.
    pub fn private_subnet(mut self, availability_zone: &str) -> Self {
        self.subnets
            .push((Egress::NatGateway, availability_zone.to_owned()));
        self
    }

    /// A public subnet whose default route goes to the internet gateway.
    pub fn public_subnet(mut self, availability_zone: &str) -> Self {
        self.subnets
            .push((Egress::InternetGateway, availability_zone.to_owned()));
        self
    }

    /// A subnet with no route out of the VPC.
    pub fn isolated_subnet(mut self, availability_zone: &str) -> Self {
        self.subnets
            .push((Egress::None, availability_zone.to_owned()));
        self
    }

    /// An interface VPC endpoint for CloudWatch Logs in the private and isolated subnets.
    pub fn logs_endpoint(self) -> Self {
        self.interface_endpoint("logs")
    }

    /// An interface VPC endpoint for `com.amazonaws.<region>.<service>` (e.g. `logs`,
    /// `monitoring`, `xray`) in the private and isolated subnets.
    pub fn interface_endpoint(mut self, service: &str) -> Self {
        self.endpoint_services
            .push(format!("com.amazonaws.{REGION}.{service}"));
        self
    }

    /// A tag put on the VPC, its subnets and its security group (for selector tests).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Creates everything through `ec2`.
    pub async fn build(self, ec2: &Client) -> Result<Network, SupportError> {
        let blocks = SubnetBlocks::new(&self.cidr)?;
        if self.subnets.is_empty() {
            return Err(SupportError::FixtureSpec(
                "a network needs at least one subnet".to_owned(),
            ));
        }
        let vpc_id = ec2
            .create_vpc()
            .cidr_block(&self.cidr)
            .send()
            .await
            .map_err(|e| SupportError::fixture("CreateVpc", e))?
            .vpc
            .and_then(|v| v.vpc_id)
            .ok_or_else(|| missing("CreateVpc", "VpcId"))?;

        let wants = |egress| self.subnets.iter().any(|(e, _)| *e == egress);
        let needs_nat = wants(Egress::NatGateway);
        let mut subnets_to_make = self.subnets.clone();
        if needs_nat && !wants(Egress::InternetGateway) {
            // A NAT gateway lives in a public subnet; make one in the first private subnet's AZ.
            let az = self
                .subnets
                .iter()
                .find(|(e, _)| *e == Egress::NatGateway)
                .map(|(_, az)| az.clone())
                .unwrap_or_default();
            subnets_to_make.push((Egress::InternetGateway, az));
        }

        let mut routes = RouteTables::default();
        let mut internet_gateway_id = None;
        if needs_nat || wants(Egress::InternetGateway) {
            let igw = create_internet_gateway(ec2, &vpc_id).await?;
            routes.public = Some(create_route_table(ec2, &vpc_id).await?);
            if let Some(table) = &routes.public {
                ec2.create_route()
                    .route_table_id(table)
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(&igw)
                    .send()
                    .await
                    .map_err(|e| SupportError::fixture("CreateRoute", e))?;
            }
            internet_gateway_id = Some(igw);
        }
        if wants(Egress::None) {
            routes.isolated = Some(create_route_table(ec2, &vpc_id).await?);
        }

        let mut subnets = Vec::with_capacity(subnets_to_make.len());
        for (index, (egress, az)) in subnets_to_make.iter().enumerate() {
            let cidr = blocks.nth(index)?;
            let id = ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block(&cidr)
                .availability_zone(az)
                .send()
                .await
                .map_err(|e| SupportError::fixture("CreateSubnet", e))?
                .subnet
                .and_then(|s| s.subnet_id)
                .ok_or_else(|| missing("CreateSubnet", "SubnetId"))?;
            subnets.push(FixtureSubnet {
                id,
                availability_zone: az.clone(),
                cidr,
                egress: *egress,
                route_table_id: String::new(),
            });
        }

        let mut nat_gateway_id = None;
        if needs_nat {
            let host = subnets
                .iter()
                .find(|s| s.egress == Egress::InternetGateway)
                .map(|s| s.id.clone())
                .ok_or_else(|| SupportError::FixtureSpec("no public subnet for the NAT".into()))?;
            let nat = create_nat_gateway(ec2, &host).await?;
            let table = create_route_table(ec2, &vpc_id).await?;
            ec2.create_route()
                .route_table_id(&table)
                .destination_cidr_block("0.0.0.0/0")
                .nat_gateway_id(&nat)
                .send()
                .await
                .map_err(|e| SupportError::fixture("CreateRoute", e))?;
            routes.private = Some(table);
            nat_gateway_id = Some(nat);
        }

        for subnet in &mut subnets {
            let table = routes
                .for_egress(subnet.egress)
                .ok_or_else(|| SupportError::FixtureSpec("no route table for a subnet".into()))?;
            ec2.associate_route_table()
                .route_table_id(&table)
                .subnet_id(&subnet.id)
                .send()
                .await
                .map_err(|e| SupportError::fixture("AssociateRouteTable", e))?;
            subnet.route_table_id = table;
        }

        let security_group_id = create_https_only_group(ec2, &vpc_id).await?;

        let endpoint_subnets: Vec<String> = subnets
            .iter()
            .filter(|s| s.egress != Egress::InternetGateway)
            .map(|s| s.id.clone())
            .collect();
        let mut vpc_endpoints = Vec::new();
        for service in &self.endpoint_services {
            let id = ec2
                .create_vpc_endpoint()
                .vpc_id(&vpc_id)
                .vpc_endpoint_type(VpcEndpointType::Interface)
                .service_name(service)
                .set_subnet_ids(Some(endpoint_subnets.clone()))
                .security_group_ids(&security_group_id)
                .private_dns_enabled(true)
                .send()
                .await
                .map_err(|e| SupportError::fixture("CreateVpcEndpoint", e))?
                .vpc_endpoint
                .and_then(|e| e.vpc_endpoint_id)
                .ok_or_else(|| missing("CreateVpcEndpoint", "VpcEndpointId"))?;
            vpc_endpoints.push((service.clone(), id));
        }

        if !self.tags.is_empty() {
            let mut tagging = ec2
                .create_tags()
                .resources(&vpc_id)
                .resources(&security_group_id);
            for subnet in &subnets {
                tagging = tagging.resources(&subnet.id);
            }
            for (key, value) in &self.tags {
                tagging = tagging.tags(Tag::builder().key(key).value(value).build());
            }
            tagging
                .send()
                .await
                .map_err(|e| SupportError::fixture("CreateTags", e))?;
        }

        Ok(Network {
            vpc_id,
            cidr: self.cidr,
            subnets,
            security_group_id,
            internet_gateway_id,
            nat_gateway_id,
            vpc_endpoints,
        })
    }
}

#[derive(Default)]
struct RouteTables {
    public: Option<String>,
    private: Option<String>,
    isolated: Option<String>,
}

impl RouteTables {
    fn for_egress(&self, egress: Egress) -> Option<String> {
        match egress {
            Egress::NatGateway => self.private.clone(),
            Egress::InternetGateway => self.public.clone(),
            Egress::None => self.isolated.clone(),
        }
    }
}

/// The `/24` blocks of a `/16`: `a.b.0.0/24`, `a.b.1.0/24`, ...
struct SubnetBlocks {
    prefix: String,
}

impl SubnetBlocks {
    fn new(cidr: &str) -> Result<Self, SupportError> {
        let invalid = || SupportError::FixtureSpec(format!("VPC CIDR {cidr} is not an a.b.0.0/16"));
        let address = cidr.strip_suffix(".0.0/16").ok_or_else(invalid)?;
        let octets: Vec<&str> = address.split('.').collect();
        if octets.len() != 2 || octets.iter().any(|o| o.parse::<u8>().is_err()) {
            return Err(invalid());
        }
        Ok(SubnetBlocks {
            prefix: address.to_owned(),
        })
    }

    fn nth(&self, index: usize) -> Result<String, SupportError> {
        if index > 255 {
            return Err(SupportError::FixtureSpec(
                "more than 256 subnets".to_owned(),
            ));
        }
        Ok(format!("{}.{index}.0/24", self.prefix))
    }
}

fn missing(operation: &'static str, member: &str) -> SupportError {
    SupportError::Fixture {
        operation,
        message: format!("the response has no {member}"),
    }
}

async fn create_internet_gateway(ec2: &Client, vpc_id: &str) -> Result<String, SupportError> {
    let id = ec2
        .create_internet_gateway()
        .send()
        .await
        .map_err(|e| SupportError::fixture("CreateInternetGateway", e))?
        .internet_gateway
        .and_then(|g| g.internet_gateway_id)
        .ok_or_else(|| missing("CreateInternetGateway", "InternetGatewayId"))?;
    ec2.attach_internet_gateway()
        .internet_gateway_id(&id)
        .vpc_id(vpc_id)
        .send()
        .await
        .map_err(|e| SupportError::fixture("AttachInternetGateway", e))?;
    Ok(id)
}

async fn create_route_table(ec2: &Client, vpc_id: &str) -> Result<String, SupportError> {
    ec2.create_route_table()
        .vpc_id(vpc_id)
        .send()
        .await
        .map_err(|e| SupportError::fixture("CreateRouteTable", e))?
        .route_table
        .and_then(|t| t.route_table_id)
        .ok_or_else(|| missing("CreateRouteTable", "RouteTableId"))
}

async fn create_nat_gateway(ec2: &Client, public_subnet: &str) -> Result<String, SupportError> {
    let allocation = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await
        .map_err(|e| SupportError::fixture("AllocateAddress", e))?
        .allocation_id
        .ok_or_else(|| missing("AllocateAddress", "AllocationId"))?;
    ec2.create_nat_gateway()
        .subnet_id(public_subnet)
        .allocation_id(allocation)
        .send()
        .await
        .map_err(|e| SupportError::fixture("CreateNatGateway", e))?
        .nat_gateway
        .and_then(|g| g.nat_gateway_id)
        .ok_or_else(|| missing("CreateNatGateway", "NatGatewayId"))
}

async fn create_https_only_group(ec2: &Client, vpc_id: &str) -> Result<String, SupportError> {
    let id = ec2
        .create_security_group()
        .vpc_id(vpc_id)
        .group_name("lmi-fixture")
        .description("lmi-test-support fixture: HTTPS egress only")
        .send()
        .await
        .map_err(|e| SupportError::fixture("CreateSecurityGroup", e))?
        .group_id
        .ok_or_else(|| missing("CreateSecurityGroup", "GroupId"))?;
    let everywhere = IpRange::builder().cidr_ip("0.0.0.0/0").build();
    ec2.revoke_security_group_egress()
        .group_id(&id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(everywhere.clone())
                .build(),
        )
        .send()
        .await
        .map_err(|e| SupportError::fixture("RevokeSecurityGroupEgress", e))?;
    ec2.authorize_security_group_egress()
        .group_id(&id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ip_ranges(everywhere)
                .build(),
        )
        .send()
        .await
        .map_err(|e| SupportError::fixture("AuthorizeSecurityGroupEgress", e))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_blocks_are_the_24s_of_the_vpc() {
        let blocks = SubnetBlocks::new("10.7.0.0/16").unwrap();
        assert_eq!(blocks.nth(0).unwrap(), "10.7.0.0/24");
        assert_eq!(blocks.nth(3).unwrap(), "10.7.3.0/24");
        assert!(blocks.nth(256).is_err());
    }

    #[test]
    fn only_a_b_0_0_16_blocks_are_accepted() {
        assert!(SubnetBlocks::new("10.0.0.0/24").is_err());
        assert!(SubnetBlocks::new("10.300.0.0/16").is_err());
        assert!(SubnetBlocks::new("10.0.0.0/16").is_ok());
    }
}
