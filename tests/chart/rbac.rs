//! The chart's RBAC as written: one comment per rule (why it is needed), the Lease role limited
//! to the operator's Lease. Whether the rules are exactly what the operator uses is checked
//! end to end (tests/runtime/permissions.rs).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};

use crate::helm::{self, REQUIRED};

/// Rules of a template, each with the comment lines right above it.
fn commented_rules(template: &str) -> Vec<(String, String)> {
    let text = helm::read(&helm::chart().join("templates").join(template));
    let mut rules = Vec::new();
    let mut comment = String::new();
    let mut in_rules = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "rules:" {
            in_rules = true;
            continue;
        }
        if trimmed == "---" {
            in_rules = false;
        }
        if !in_rules {
            continue;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            comment.push_str(c.trim());
            comment.push(' ');
        } else if trimmed.starts_with("- apiGroups:") {
            rules.push((trimmed.to_owned(), std::mem::take(&mut comment)));
        }
    }
    rules
}

#[test]
fn every_rule_says_why_it_is_needed() {
    for template in ["clusterrole.yaml", "role.yaml"] {
        let rules = commented_rules(template);
        assert!(!rules.is_empty(), "{template}: no rules found");
        for (rule, why) in rules {
            assert!(
                why.split_whitespace().count() >= 5,
                "{template}: rule {rule} has no comment saying why it is needed"
            );
        }
    }
}

fn rules<T: serde::de::DeserializeOwned>(kind: &str, extra: &[&str]) -> T {
    let objects = helm::render(extra);
    serde_json::from_value(helm::find(&objects, kind, None).clone()).expect(kind)
}

#[test]
fn the_lease_role_is_limited_to_the_operators_lease() {
    let role: Role = rules("Role", &["-f", &helm::full_values()]);
    let rules: Vec<PolicyRule> = role.rules.expect("rules");
    for rule in &rules {
        assert_eq!(
            rule.api_groups.as_deref(),
            Some(&["coordination.k8s.io".to_owned()][..])
        );
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_owned()][..]));
        let verbs = rule.verbs.clone();
        if verbs != ["create"] {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&["lmi-leader".to_owned()][..]),
                "{verbs:?} must name the Lease"
            );
        }
    }
}

#[test]
fn nothing_is_granted_with_wildcards() {
    let cluster: ClusterRole = rules("ClusterRole", REQUIRED);
    let role: Role = rules("Role", REQUIRED);
    for rule in cluster
        .rules
        .into_iter()
        .flatten()
        .chain(role.rules.into_iter().flatten())
    {
        let all = rule
            .verbs
            .iter()
            .chain(rule.resources.iter().flatten())
            .chain(rule.api_groups.iter().flatten());
        for item in all {
            assert_ne!(item, "*", "wildcard in {rule:?}");
        }
        for verb in &rule.verbs {
            assert!(
                !matches!(
                    verb.as_str(),
                    "delete" | "deletecollection" | "update" | "escalate" | "bind" | "impersonate"
                ),
                "the operator never needs {verb}: {rule:?}"
            );
        }
    }
}
