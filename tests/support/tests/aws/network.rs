//! The network fixtures produce what they claim, read back through aws-sdk-ec2; and moto knows
//! the instance types the examples use.

use aws_sdk_ec2::types::{
    ArchitectureType, Filter, InstanceType, LocationType, RouteTable, VpcEndpointType,
};
use lmi_test_support::{AwsEmulator, Egress, Network};

async fn route_table_of(ec2: &aws_sdk_ec2::Client, subnet_id: &str) -> RouteTable {
    let tables = ec2
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .values(subnet_id)
                .build(),
        )
        .send()
        .await
        .expect("route tables are described");
    assert_eq!(tables.route_tables().len(), 1, "one table for {subnet_id}");
    tables.route_tables()[0].clone()
}

/// Where the table's default route (0.0.0.0/0) goes: a NAT or internet gateway id.
fn default_route_target(table: &RouteTable) -> Option<String> {
    table
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .and_then(|r| r.nat_gateway_id().or(r.gateway_id()).map(str::to_owned))
}

#[tokio::test]
async fn the_good_network_routes_private_subnets_in_two_zones_through_a_nat_gateway() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    let network = Network::good(&ec2).await.unwrap();
    let nat = network.nat_gateway_id.clone().unwrap();

    let private = network.private_subnet_ids();
    assert_eq!(private.len(), 2);
    let mut zones = Vec::new();
    for id in &private {
        let table = route_table_of(&ec2, id).await;
        assert_eq!(default_route_target(&table), Some(nat.clone()));
        assert_eq!(table.vpc_id(), Some(network.vpc_id.as_str()));
        zones.push(network.subnet(id).unwrap().availability_zone.clone());
    }
    assert_eq!(zones, ["us-east-1a", "us-east-1b"]);

    // The NAT gateway sits in a public subnet whose default route is the internet gateway.
    let gateways = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat)
        .send()
        .await
        .unwrap();
    let host = gateways.nat_gateways()[0].subnet_id().unwrap().to_owned();
    assert_eq!(
        network.subnet(&host).unwrap().egress,
        Egress::InternetGateway
    );
    let public_table = route_table_of(&ec2, &host).await;
    assert_eq!(
        default_route_target(&public_table),
        network.internet_gateway_id.clone()
    );

    let subnets = ec2
        .describe_subnets()
        .set_subnet_ids(Some(private.clone()))
        .send()
        .await
        .unwrap();
    for subnet in subnets.subnets() {
        assert_eq!(subnet.vpc_id(), Some(network.vpc_id.as_str()));
    }
}

#[tokio::test]
async fn the_security_group_allows_only_https_out() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    let network = Network::good(&ec2).await.unwrap();
    let groups = ec2
        .describe_security_groups()
        .group_ids(&network.security_group_id)
        .send()
        .await
        .unwrap();
    let group = &groups.security_groups()[0];
    assert_eq!(group.vpc_id(), Some(network.vpc_id.as_str()));
    let egress = group.ip_permissions_egress();
    assert_eq!(egress.len(), 1, "{egress:?}");
    assert_eq!(egress[0].ip_protocol(), Some("tcp"));
    assert_eq!(
        (egress[0].from_port(), egress[0].to_port()),
        (Some(443), Some(443))
    );
}

#[tokio::test]
async fn public_and_isolated_subnets_have_the_routes_their_names_say() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    let network = Network::builder()
        .public_subnet("us-east-1a")
        .isolated_subnet("us-east-1b")
        .build(&ec2)
        .await
        .unwrap();
    assert_eq!(network.nat_gateway_id, None);
    let public = &network.subnet_ids(Egress::InternetGateway)[0];
    let isolated = &network.subnet_ids(Egress::None)[0];
    assert_eq!(
        default_route_target(&route_table_of(&ec2, public).await),
        network.internet_gateway_id.clone()
    );
    let isolated_table = route_table_of(&ec2, isolated).await;
    assert_eq!(default_route_target(&isolated_table), None);
    // Only the VPC-local route remains.
    let destinations: Vec<_> = isolated_table
        .routes()
        .iter()
        .filter_map(|r| r.destination_cidr_block())
        .collect();
    assert_eq!(destinations, [network.cidr.as_str()]);
}

#[tokio::test]
async fn a_logs_endpoint_serves_the_isolated_subnets() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    let network = Network::builder()
        .isolated_subnet("us-east-1a")
        .isolated_subnet("us-east-1b")
        .logs_endpoint()
        .build(&ec2)
        .await
        .unwrap();
    let (service, id) = &network.vpc_endpoints[0];
    assert_eq!(service, "com.amazonaws.us-east-1.logs");
    let endpoints = ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .unwrap();
    let endpoint = &endpoints.vpc_endpoints()[0];
    assert_eq!(endpoint.vpc_id(), Some(network.vpc_id.as_str()));
    assert_eq!(endpoint.service_name(), Some(service.as_str()));
    assert_eq!(
        endpoint.vpc_endpoint_type(),
        Some(&VpcEndpointType::Interface)
    );
    let mut served = endpoint.subnet_ids().to_vec();
    served.sort();
    let mut isolated = network.subnet_ids(Egress::None);
    isolated.sort();
    assert_eq!(served, isolated);
}

#[tokio::test]
async fn a_second_vpc_is_separate_and_tags_reach_every_resource() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    let first = Network::good(&ec2).await.unwrap();
    let second = Network::builder()
        .cidr("10.1.0.0/16")
        .private_subnet("us-east-1c")
        .tag("lmi.dev/pool", "batch")
        .build(&ec2)
        .await
        .unwrap();
    assert_ne!(first.vpc_id, second.vpc_id);
    assert!(second.subnets.iter().all(|s| s.cidr.starts_with("10.1.")));
    let tagged = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("tag:lmi.dev/pool")
                .values("batch")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut tagged_ids: Vec<_> = tagged
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_id().map(str::to_owned))
        .collect();
    tagged_ids.sort();
    let mut expected: Vec<_> = second.subnets.iter().map(|s| s.id.clone()).collect();
    expected.sort();
    assert_eq!(tagged_ids, expected);
}

#[tokio::test]
async fn an_empty_or_malformed_spec_is_refused_before_any_call() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    assert!(Network::builder().build(&ec2).await.is_err());
    assert!(
        Network::builder()
            .cidr("10.0.0.0/8")
            .private_subnet("us-east-1a")
            .build(&ec2)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn moto_knows_the_instance_types_the_examples_use() {
    let aws = AwsEmulator::start().await.unwrap();
    let ec2 = aws.ec2();
    let expected = [
        ("m7g.large", ArchitectureType::Arm64),
        ("c7g.large", ArchitectureType::Arm64),
        ("m8g.large", ArchitectureType::Arm64),
        ("c8g.xlarge", ArchitectureType::Arm64),
        ("r8g.large", ArchitectureType::Arm64),
        ("m7i.large", ArchitectureType::X8664),
        ("c7i.large", ArchitectureType::X8664),
    ];
    for (name, architecture) in expected {
        let types = ec2
            .describe_instance_types()
            .instance_types(InstanceType::from(name))
            .send()
            .await
            .unwrap();
        let info = &types.instance_types()[0];
        let architectures = info.processor_info().unwrap().supported_architectures();
        assert!(
            architectures.contains(&architecture),
            "{name}: {architectures:?}"
        );

        let offerings = ec2
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .filters(Filter::builder().name("instance-type").values(name).build())
            .send()
            .await
            .unwrap();
        let zones: Vec<_> = offerings
            .instance_type_offerings()
            .iter()
            .filter_map(|o| o.location())
            .collect();
        assert!(
            zones.contains(&"us-east-1a") && zones.contains(&"us-east-1b"),
            "{name}: {zones:?}"
        );
    }
}
