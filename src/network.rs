//! Network checks for a capacity provider (pure: facts in, verdict out).
//!
//! Lambda Managed Instances run in the subnets a capacity provider names. They must exist, share
//! one VPC, be private (no route to an internet gateway), and reach CloudWatch Logs (through a
//! NAT gateway or interface VPC endpoints), or the functions run while their logs are lost.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::capacity_provider::{Egress, NetworkStatus, SubnetStatus, TelemetryEndpoints};
use crate::api::conditions::reason;

/// Where a subnet's default route (`0.0.0.0/0`) leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultRoute {
    /// An internet gateway: the subnet is public.
    InternetGateway,
    /// A NAT gateway: private with egress.
    NatGateway,
    /// Something else (transit gateway, peering, appliance): private, egress unknown.
    Other,
    /// No default route.
    None,
}

/// A subnet as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetFacts {
    /// Subnet id.
    pub id: String,
    /// VPC of the subnet.
    pub vpc_id: String,
    /// Availability Zone.
    pub availability_zone: String,
    /// The default route of the route table the subnet uses (explicit or main).
    pub default_route: DefaultRoute,
}

/// A security group as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupFacts {
    /// Security group id.
    pub id: String,
    /// VPC of the security group.
    pub vpc_id: String,
}

/// How subnets or security groups were asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// By id: every id must exist.
    Ids(Vec<String>),
    /// By tag selector: the match must have between `min` and `max` members.
    Selector {
        /// Fewest allowed matches.
        min: usize,
        /// Most allowed matches.
        max: usize,
    },
    /// The operator creates it (security groups only).
    Managed,
}

/// Everything EC2 told us about the network of one capacity provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    /// Subnets found (by id or selector).
    pub subnets: Vec<SubnetFacts>,
    /// Security groups found (by id or selector; the managed one once it exists).
    pub security_groups: Vec<SecurityGroupFacts>,
    /// VPCs that have an interface endpoint for CloudWatch Logs.
    pub vpcs_with_logs_endpoint: BTreeSet<String>,
    /// The operator's security group, if it exists.
    pub managed_security_group: Option<String>,
    /// The operator's VPC endpoints.
    pub owned_endpoints: Vec<String>,
}

/// A problem with the network, for the `NetworkReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Condition reason (bounded set).
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether the capacity provider must not be created (or updated) while it persists.
    pub blocking: bool,
}

/// The outcome of the network checks.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkVerdict {
    /// The network as resolved, for `status.network`.
    pub status: NetworkStatus,
    /// The first problem found, if any.
    pub problem: Option<Problem>,
    /// The VPC needs telemetry endpoints the operator should create or complete
    /// (`telemetryEndpoints: Create`, and some subnet has no egress or the operator already owns
    /// some of them).
    pub needs_telemetry_endpoints: bool,
}

impl NetworkVerdict {
    /// Whether creation must wait for the problem to be fixed.
    pub fn blocks(&self) -> bool {
        self.problem.as_ref().is_some_and(|p| p.blocking)
    }
}

/// Checks the facts against what the spec asked for.
pub fn evaluate(
    subnets: &Requested,
    security_groups: &Requested,
    telemetry: TelemetryEndpoints,
    facts: &NetworkFacts,
) -> NetworkVerdict {
    let vpc_id = single_vpc(&facts.subnets);
    let egress = |s: &SubnetFacts| match s.default_route {
        DefaultRoute::InternetGateway => Egress::InternetGateway,
        DefaultRoute::NatGateway => Egress::NatGateway,
        _ if facts.vpcs_with_logs_endpoint.contains(&s.vpc_id) => Egress::VpcEndpoints,
        _ => Egress::None,
    };
    let status = NetworkStatus {
        vpc_id: vpc_id.clone(),
        subnets: facts
            .subnets
            .iter()
            .map(|s| SubnetStatus {
                id: s.id.clone(),
                availability_zone: s.availability_zone.clone(),
                egress: egress(s),
            })
            .collect(),
        security_group_ids: facts.security_groups.iter().map(|g| g.id.clone()).collect(),
        managed_security_group_id: facts.managed_security_group.clone(),
        vpc_endpoint_ids: facts.owned_endpoints.clone(),
    };
    let without_egress: Vec<&str> = status
        .subnets
        .iter()
        .filter(|s| s.egress == Egress::None)
        .map(|s| s.id.as_str())
        .collect();
    // Once the operator owns some of the endpoints it completes the set: a crash after the logs
    // endpoint was created must not let that endpoint pass for the egress the others give.
    let needs_telemetry_endpoints = telemetry == TelemetryEndpoints::Create
        && (!without_egress.is_empty() || !facts.owned_endpoints.is_empty());
    let problem = blocking_problem(subnets, security_groups, facts)
        .or_else(|| telemetry_problem(&without_egress, telemetry));
    NetworkVerdict {
        status,
        problem,
        needs_telemetry_endpoints,
    }
}

fn single_vpc(subnets: &[SubnetFacts]) -> Option<String> {
    let vpcs: BTreeSet<&str> = subnets.iter().map(|s| s.vpc_id.as_str()).collect();
    match vpcs.len() {
        1 => vpcs.into_iter().next().map(str::to_owned),
        _ => None,
    }
}

fn blocking(reason: &'static str, message: String) -> Option<Problem> {
    Some(Problem {
        reason,
        message,
        blocking: true,
    })
}

fn blocking_problem(
    subnets: &Requested,
    security_groups: &Requested,
    facts: &NetworkFacts,
) -> Option<Problem> {
    let found_subnets: Vec<&str> = facts.subnets.iter().map(|s| s.id.as_str()).collect();
    if let Some(p) = missing(
        "subnet",
        "vpc.subnetIds",
        "vpc.subnetSelector",
        subnets,
        &found_subnets,
    ) {
        return Some(p);
    }
    let found_groups: Vec<&str> = facts
        .security_groups
        .iter()
        .map(|g| g.id.as_str())
        .collect();
    if let Some(p) = missing(
        "security group",
        "vpc.securityGroupIds",
        "vpc.securityGroupSelector",
        security_groups,
        &found_groups,
    ) {
        return Some(p);
    }

    let mut by_vpc: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in &facts.subnets {
        by_vpc.entry(&s.vpc_id).or_default().push(&s.id);
    }
    if by_vpc.len() > 1 {
        let spread = by_vpc
            .iter()
            .map(|(vpc, ids)| format!("{vpc} ({})", ids.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        return blocking(
            reason::MULTIPLE_VPCS,
            format!(
                "the subnets span more than one VPC: {spread}. A capacity provider's subnets \
                 must all be in one VPC: list subnets of one VPC only"
            ),
        );
    }
    if let Some(vpc) = by_vpc.keys().next() {
        let strays: Vec<String> = facts
            .security_groups
            .iter()
            .filter(|g| g.vpc_id != *vpc)
            .map(|g| format!("{} (in {})", g.id, g.vpc_id))
            .collect();
        if !strays.is_empty() {
            return blocking(
                reason::MULTIPLE_VPCS,
                format!(
                    "security groups {} are not in the subnets' VPC {vpc}: use security groups \
                     of {vpc}",
                    strays.join(", ")
                ),
            );
        }
    }

    let public: Vec<&str> = facts
        .subnets
        .iter()
        .filter(|s| s.default_route == DefaultRoute::InternetGateway)
        .map(|s| s.id.as_str())
        .collect();
    if !public.is_empty() {
        return blocking(
            reason::PUBLIC_SUBNET,
            format!(
                "{} route 0.0.0.0/0 to an internet gateway: Lambda Managed Instances belong in \
                 private subnets. Use private subnets (with a NAT gateway route or VPC endpoints \
                 for telemetry) instead",
                plural("subnet", &public)
            ),
        );
    }
    None
}

fn missing(
    what: &str,
    ids_field: &str,
    selector_field: &str,
    requested: &Requested,
    found: &[&str],
) -> Option<Problem> {
    match requested {
        Requested::Ids(ids) => {
            let absent: Vec<&str> = ids
                .iter()
                .map(String::as_str)
                .filter(|id| !found.contains(id))
                .collect();
            if absent.is_empty() {
                return None;
            }
            blocking(
                reason::NETWORK_NOT_FOUND,
                format!(
                    "{} not found in this account and region: check {ids_field}",
                    plural(what, &absent)
                ),
            )
        }
        Requested::Selector { min, max } => {
            if found.len() < *min {
                blocking(
                    reason::NETWORK_NOT_FOUND,
                    format!(
                        "{selector_field} matched no {what}: check its tags and vpcId, or tag \
                         the {what}s to use"
                    ),
                )
            } else if found.len() > *max {
                blocking(
                    reason::INVALID_SPEC,
                    format!(
                        "{selector_field} matched {} {what}s ({}); AWS allows at most {max}: \
                         narrow the selector",
                        found.len(),
                        found.join(", ")
                    ),
                )
            } else {
                None
            }
        }
        Requested::Managed => None,
    }
}

fn telemetry_problem(without_egress: &[&str], telemetry: TelemetryEndpoints) -> Option<Problem> {
    if without_egress.is_empty() {
        return None;
    }
    let message = match telemetry {
        TelemetryEndpoints::Create => format!(
            "{} no NAT gateway route; creating VPC endpoints for CloudWatch Logs, metrics and \
             X-Ray",
            plural_has("subnet", without_egress)
        ),
        TelemetryEndpoints::None => format!(
            "{} no NAT gateway route and the VPC has no CloudWatch Logs endpoint: functions will \
             run but their logs and traces are lost. Add a NAT gateway route, create interface \
             endpoints for logs, or set vpc.telemetryEndpoints: Create",
            plural_has("subnet", without_egress)
        ),
    };
    Some(Problem {
        reason: reason::NO_TELEMETRY_EGRESS,
        message,
        blocking: false,
    })
}

fn plural(what: &str, ids: &[&str]) -> String {
    match ids {
        [one] => format!("{what} {one}"),
        many => format!("{what}s {}", many.join(", ")),
    }
}

fn plural_has(what: &str, ids: &[&str]) -> String {
    match ids {
        [one] => format!("{what} {one} has"),
        many => format!("{what}s {} have", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, vpc: &str, az: &str, route: DefaultRoute) -> SubnetFacts {
        SubnetFacts {
            id: id.into(),
            vpc_id: vpc.into(),
            availability_zone: az.into(),
            default_route: route,
        }
    }

    fn sg(id: &str, vpc: &str) -> SecurityGroupFacts {
        SecurityGroupFacts {
            id: id.into(),
            vpc_id: vpc.into(),
        }
    }

    fn ids(v: &[&str]) -> Requested {
        Requested::Ids(v.iter().map(|s| s.to_string()).collect())
    }

    fn good() -> NetworkFacts {
        NetworkFacts {
            subnets: vec![
                subnet("subnet-a", "vpc-1", "us-east-1a", DefaultRoute::NatGateway),
                subnet("subnet-b", "vpc-1", "us-east-1b", DefaultRoute::NatGateway),
            ],
            security_groups: vec![sg("sg-1", "vpc-1")],
            ..Default::default()
        }
    }

    fn check(facts: &NetworkFacts) -> NetworkVerdict {
        evaluate(
            &ids(&["subnet-a", "subnet-b"]),
            &ids(&["sg-1"]),
            TelemetryEndpoints::None,
            facts,
        )
    }

    #[test]
    fn private_subnets_with_nat_in_one_vpc_are_ready() {
        let verdict = check(&good());
        assert_eq!(verdict.problem, None);
        assert_eq!(verdict.status.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(verdict.status.subnets[1].availability_zone, "us-east-1b");
        assert!(
            verdict
                .status
                .subnets
                .iter()
                .all(|s| s.egress == Egress::NatGateway)
        );
    }

    #[test]
    fn a_missing_subnet_blocks_and_is_named() {
        let mut facts = good();
        facts.subnets.pop();
        let verdict = check(&facts);
        let problem = verdict.problem.clone().expect("problem");
        assert!(verdict.blocks());
        assert_eq!(problem.reason, reason::NETWORK_NOT_FOUND);
        assert!(
            problem.message.contains("subnet subnet-b not found"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_missing_security_group_blocks() {
        let mut facts = good();
        facts.security_groups.clear();
        let problem = check(&facts).problem.expect("problem");
        assert_eq!(problem.reason, reason::NETWORK_NOT_FOUND);
        assert!(problem.message.contains("security group sg-1"));
    }

    #[test]
    fn subnets_in_two_vpcs_block() {
        let mut facts = good();
        facts.subnets[1].vpc_id = "vpc-2".into();
        let verdict = check(&facts);
        let problem = verdict.problem.clone().expect("problem");
        assert_eq!(problem.reason, reason::MULTIPLE_VPCS);
        assert!(
            problem
                .message
                .contains("vpc-1 (subnet-a); vpc-2 (subnet-b)")
        );
        assert_eq!(verdict.status.vpc_id, None);
    }

    #[test]
    fn a_security_group_of_another_vpc_blocks() {
        let mut facts = good();
        facts.security_groups[0].vpc_id = "vpc-9".into();
        let problem = check(&facts).problem.expect("problem");
        assert_eq!(problem.reason, reason::MULTIPLE_VPCS);
        assert!(problem.message.contains("sg-1 (in vpc-9)"));
    }

    #[test]
    fn a_public_subnet_blocks() {
        let mut facts = good();
        facts.subnets[0].default_route = DefaultRoute::InternetGateway;
        let verdict = check(&facts);
        let problem = verdict.problem.clone().expect("problem");
        assert!(verdict.blocks());
        assert_eq!(problem.reason, reason::PUBLIC_SUBNET);
        assert!(problem.message.starts_with("subnet subnet-a route"));
        assert_eq!(verdict.status.subnets[0].egress, Egress::InternetGateway);
    }

    #[test]
    fn no_egress_is_a_warning_that_does_not_block() {
        let mut facts = good();
        facts.subnets[1].default_route = DefaultRoute::None;
        let verdict = check(&facts);
        let problem = verdict.problem.clone().expect("problem");
        assert!(!verdict.blocks());
        assert_eq!(problem.reason, reason::NO_TELEMETRY_EGRESS);
        assert!(
            problem
                .message
                .contains("subnet subnet-b has no NAT gateway route")
        );
        assert!(problem.message.contains("vpc.telemetryEndpoints: Create"));
        assert!(!verdict.needs_telemetry_endpoints);
    }

    #[test]
    fn a_logs_endpoint_gives_egress() {
        let mut facts = good();
        facts.subnets[1].default_route = DefaultRoute::None;
        facts.vpcs_with_logs_endpoint.insert("vpc-1".into());
        let verdict = check(&facts);
        assert_eq!(verdict.problem, None);
        assert_eq!(verdict.status.subnets[1].egress, Egress::VpcEndpoints);
    }

    #[test]
    fn endpoints_the_operator_began_are_completed() {
        // A crash after the logs endpoint was created: it gives egress, but the set is unfinished.
        let mut facts = good();
        facts.subnets[0].default_route = DefaultRoute::Other;
        facts.vpcs_with_logs_endpoint.insert("vpc-1".into());
        facts.owned_endpoints.push("vpce-logs".into());
        let create = |facts: &NetworkFacts| {
            evaluate(
                &ids(&["subnet-a", "subnet-b"]),
                &Requested::Managed,
                TelemetryEndpoints::Create,
                facts,
            )
        };
        assert!(create(&facts).needs_telemetry_endpoints);
        // Someone else's logs endpoint gives the egress: nothing to create.
        facts.owned_endpoints.clear();
        assert!(!create(&facts).needs_telemetry_endpoints);
    }

    #[test]
    fn create_mode_asks_for_endpoints_where_egress_is_missing() {
        let mut facts = good();
        facts.subnets[0].default_route = DefaultRoute::Other;
        let verdict = evaluate(
            &ids(&["subnet-a", "subnet-b"]),
            &Requested::Managed,
            TelemetryEndpoints::Create,
            &facts,
        );
        assert!(verdict.needs_telemetry_endpoints);
        assert!(!verdict.blocks());
    }

    #[test]
    fn selectors_must_match_within_bounds() {
        let mut facts = good();
        facts.subnets.clear();
        let none = evaluate(
            &Requested::Selector { min: 1, max: 16 },
            &ids(&["sg-1"]),
            TelemetryEndpoints::None,
            &facts,
        );
        let problem = none.problem.expect("problem");
        assert_eq!(problem.reason, reason::NETWORK_NOT_FOUND);
        assert!(
            problem
                .message
                .contains("vpc.subnetSelector matched no subnet")
        );

        let too_many = evaluate(
            &ids(&["subnet-a", "subnet-b"]),
            &Requested::Selector { min: 1, max: 0 },
            TelemetryEndpoints::None,
            &good(),
        );
        let problem = too_many.problem.expect("problem");
        assert_eq!(problem.reason, reason::INVALID_SPEC);
        assert!(problem.message.contains("matched 1 security groups"));
    }
}
