//! Instance-type checks for a capacity provider (pure: facts in, verdict out).
//!
//! Every allowed instance type (or wildcard such as `c8g.*`) must name types that exist, have
//! the provider's architecture, and are offered in at least one of the subnets' Availability
//! Zones; otherwise AWS would accept the provider and then never launch anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::capacity_provider::Architecture;
use crate::api::conditions::reason;
use crate::network::Problem;

/// An instance type as EC2 describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceTypeFacts {
    /// Name, e.g. `c8g.large`.
    pub name: String,
    /// Supported architectures as EC2 names them (`arm64`, `x86_64`, `i386`, …).
    pub architectures: Vec<String>,
}

/// The outcome of the instance-type checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceVerdict {
    /// Instance types the provider can launch: allowed, right architecture, offered.
    pub resolved: Vec<String>,
    /// The first problem found, if any (always blocking).
    pub problem: Option<Problem>,
}

/// Whether `name` matches an AWS instance-type pattern (`*` matches any run of characters).
pub fn matches(pattern: &str, name: &str) -> bool {
    // Greedy with one backtrack point (the last `*`): each `*` only ever extends its match, so
    // the work is at most |pattern| × |name| — a recursive matcher is exponential in the number
    // of `*` on a name that almost matches (`*a*a*a*a*b` against `aaaa…`).
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i].eq_ignore_ascii_case(&n[j]) {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // Let the last `*` take one more character and try again after it.
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Checks the allowed patterns against what EC2 describes and offers.
///
/// `types` are the instance types EC2 returned for the patterns (any architecture);
/// `offerings` maps an instance type to the Availability Zones it is offered in, among the
/// subnets' `zones`.
pub fn evaluate(
    allowed: &[String],
    architecture: Architecture,
    zones: &BTreeSet<String>,
    types: &[InstanceTypeFacts],
    offerings: &BTreeMap<String, BTreeSet<String>>,
) -> InstanceVerdict {
    let arch = architecture.as_aws_str();
    let mut resolved = BTreeSet::new();
    for pattern in allowed {
        let matching: Vec<&InstanceTypeFacts> =
            types.iter().filter(|t| matches(pattern, &t.name)).collect();
        if matching.is_empty() {
            return fail(format!(
                "instances.allowedInstanceTypes: {pattern} matches no EC2 instance type: check \
                 the spelling (for example c8g.large or c8g.*)"
            ));
        }
        let with_arch: Vec<&InstanceTypeFacts> = matching
            .iter()
            .copied()
            .filter(|t| t.architectures.iter().any(|a| a == arch))
            .collect();
        if with_arch.is_empty() {
            let theirs: BTreeSet<&str> = matching
                .iter()
                .flat_map(|t| t.architectures.iter().map(String::as_str))
                .collect();
            return fail(format!(
                "instances.allowedInstanceTypes: {pattern} is {} but instances.architecture is \
                 {arch}: choose {arch} instance types or change the architecture",
                theirs.into_iter().collect::<Vec<_>>().join("/")
            ));
        }
        let offered: Vec<&str> = with_arch
            .iter()
            .filter(|t| {
                offerings
                    .get(&t.name)
                    .is_some_and(|azs| !azs.is_disjoint(zones))
            })
            .map(|t| t.name.as_str())
            .collect();
        if offered.is_empty() {
            return fail(format!(
                "instances.allowedInstanceTypes: {pattern} is not offered in the subnets' \
                 Availability Zones ({}): allow other types or use subnets in other zones",
                zones.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        resolved.extend(offered.into_iter().map(str::to_owned));
    }
    InstanceVerdict {
        resolved: resolved.into_iter().collect(),
        problem: None,
    }
}

fn fail(message: String) -> InstanceVerdict {
    InstanceVerdict {
        resolved: Vec::new(),
        problem: Some(Problem {
            reason: reason::INSTANCE_TYPE_UNAVAILABLE,
            message,
            blocking: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, arch: &str) -> InstanceTypeFacts {
        InstanceTypeFacts {
            name: name.into(),
            architectures: vec![arch.into()],
        }
    }

    fn zones() -> BTreeSet<String> {
        ["us-east-1a", "us-east-1b"].map(String::from).into()
    }

    fn offered(names: &[&str], az: &str) -> BTreeMap<String, BTreeSet<String>> {
        names
            .iter()
            .map(|n| (n.to_string(), BTreeSet::from([az.to_string()])))
            .collect()
    }

    fn catalog() -> Vec<InstanceTypeFacts> {
        vec![
            t("c8g.large", "arm64"),
            t("c8g.xlarge", "arm64"),
            t("m7i.large", "x86_64"),
        ]
    }

    #[test]
    fn wildcards_match_like_aws() {
        assert!(matches("c8g.*", "c8g.large"));
        assert!(matches("*.metal*", "c7g.metal"));
        assert!(matches("m7i.large", "M7I.LARGE"));
        assert!(!matches("c8g.*", "c8gd.large"));
        assert!(!matches("c8g.large", "c8g.xlarge"));
        assert!(matches("*", ""));
        assert!(matches("c*g*.*large", "c7gd.16xlarge"));
        assert!(!matches("c*g*.*large", "c7gd.16xlarge.x"));
        assert!(matches("**a", "ba"));
        assert!(!matches("a", ""));
    }

    #[test]
    fn many_wildcards_against_a_near_miss_take_polynomial_time() {
        // Exponential for a backtracking matcher (2^20 paths); a few thousand steps here.
        let pattern = format!("{}b", "*a".repeat(20));
        let name = "a".repeat(60);
        assert!(!matches(&pattern, &name));
        assert!(matches(&pattern, &format!("{name}b")));
    }

    #[test]
    fn offered_types_of_the_right_architecture_resolve() {
        let verdict = evaluate(
            &["c8g.*".into()],
            Architecture::Arm64,
            &zones(),
            &catalog(),
            &offered(&["c8g.large", "c8g.xlarge"], "us-east-1a"),
        );
        assert_eq!(verdict.problem, None);
        assert_eq!(verdict.resolved, vec!["c8g.large", "c8g.xlarge"]);
    }

    #[test]
    fn an_unknown_type_is_named() {
        let verdict = evaluate(
            &["c9z.*".into()],
            Architecture::Arm64,
            &zones(),
            &catalog(),
            &BTreeMap::new(),
        );
        let problem = verdict.problem.expect("problem");
        assert_eq!(problem.reason, reason::INSTANCE_TYPE_UNAVAILABLE);
        assert!(
            problem
                .message
                .contains("c9z.* matches no EC2 instance type")
        );
    }

    #[test]
    fn the_wrong_architecture_is_explained() {
        let verdict = evaluate(
            &["m7i.large".into()],
            Architecture::Arm64,
            &zones(),
            &catalog(),
            &offered(&["m7i.large"], "us-east-1a"),
        );
        let message = verdict.problem.expect("problem").message;
        assert!(
            message.contains("m7i.large is x86_64 but instances.architecture is arm64"),
            "{message}"
        );
    }

    #[test]
    fn types_not_offered_in_the_zones_fail() {
        let verdict = evaluate(
            &["c8g.large".into()],
            Architecture::Arm64,
            &zones(),
            &catalog(),
            &offered(&["c8g.large"], "us-east-1f"),
        );
        let message = verdict.problem.expect("problem").message;
        assert!(
            message.contains(
                "not offered in the subnets' Availability Zones (us-east-1a, us-east-1b)"
            )
        );
    }

    #[test]
    fn no_allowed_types_means_lambda_chooses() {
        let verdict = evaluate(&[], Architecture::X86_64, &zones(), &[], &BTreeMap::new());
        assert_eq!(
            verdict,
            InstanceVerdict {
                resolved: vec![],
                problem: None
            }
        );
    }
}
