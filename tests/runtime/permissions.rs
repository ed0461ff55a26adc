//! Least privilege, both ways. Every end-to-end world already fails when the chart's RBAC
//! refuses the operator or it calls AWS outside the IAM policy (`harness::chart`). Here one
//! replica, under leader election and the chart's ServiceAccount, is taken through every
//! scenario of `lifecycles`; afterwards
//! - every permission the chart's ClusterRole and Role grant must have been used, and
//! - the IAM policy must grant exactly the AWS actions called, plus the actions AWS checks on
//!   top of them ([`DEPENDENT_ACTIONS`]).
//!
//! Adding a controller or a code path that calls something new means adding a scenario to
//! `lifecycles`.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::PolicyRule;
use lmi_test_support::kube::AuditEvent;

use crate::harness::World;
use crate::harness::chart::{self, NAMESPACE};
use crate::harness::replica::{Replica, ReplicaOptions};
use crate::lifecycles::{SCENARIOS, provider};
use crate::{lease_holder, ready, wait_for};

/// AWS actions checked on top of an API call's own, as the Service Authorization Reference
/// lists them ("dependent actions") or the service's guide documents them.
const DEPENDENT_ACTIONS: &[(&str, &str, &str)] = &[
    // (call, extra action, why)
    (
        "lambda:CreateCapacityProvider",
        "iam:PassRole",
        "the provider's operator role is passed to Lambda",
    ),
    (
        "lambda:CreateCapacityProvider",
        "lambda:TagResource",
        "tagging on create needs TagResource (Lambda guide, 'Using tags')",
    ),
    (
        "lambda:CreateFunction",
        "iam:PassRole",
        "the function's execution role is passed to Lambda",
    ),
    (
        "lambda:CreateFunction",
        "lambda:PassCapacityProvider",
        "attaching a function to a capacity provider",
    ),
    (
        "lambda:CreateFunction",
        "lambda:TagResource",
        "tagging on create needs TagResource (Lambda guide, 'Using tags')",
    ),
    (
        "lambda:UpdateFunctionConfiguration",
        "iam:PassRole",
        "the execution role is passed again on every configuration update",
    ),
    (
        "lambda:UpdateFunctionConfiguration",
        "lambda:PassCapacityProvider",
        "the capacity provider configuration is part of the function configuration",
    ),
    (
        "lambda:CreateFunction",
        "s3:GetObject",
        "code from S3 (spec.code.s3): Lambda reads the object with the caller's permissions",
    ),
    (
        "lambda:CreateFunction",
        "s3:GetObjectVersion",
        "code from S3 pinned to spec.code.s3.objectVersion",
    ),
    (
        "lambda:UpdateFunctionCode",
        "s3:GetObject",
        "code from S3 (spec.code.s3): Lambda reads the object with the caller's permissions",
    ),
    (
        "lambda:UpdateFunctionCode",
        "s3:GetObjectVersion",
        "code from S3 pinned to spec.code.s3.objectVersion",
    ),
    (
        "ec2:CreateSecurityGroup",
        "ec2:CreateTags",
        "tags on create (TagSpecifications) are authorized as CreateTags",
    ),
    (
        "ec2:CreateVpcEndpoint",
        "ec2:CreateTags",
        "tags on create (TagSpecifications) are authorized as CreateTags",
    ),
    (
        "ec2:CreateVpcEndpoint",
        "route53:AssociateVPCWithHostedZone",
        "private DNS associates the endpoint's hosted zone with the VPC",
    ),
];

/// Granted by the chart but not used in these scenarios, each with the reason (none today;
/// kube's event recorder patches a repeated event's series, which the lifecycles do exercise).
const GRANTED_BUT_NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    // (verb, group, resource, why)
];

/// `(verb, group, resource[/subresource])` of a request.
fn key(a: &AuditEvent) -> (String, String, String) {
    (a.verb.clone(), a.api_group.clone(), a.combined_resource())
}

/// Whether some request `used` was allowed by exactly this rule's (verb, group, resource).
fn used_by(
    rule: &PolicyRule,
    verb: &str,
    group: &str,
    resource: &str,
    used: &[&AuditEvent],
) -> bool {
    used.iter().any(|a| {
        key(a) == (verb.to_owned(), group.to_owned(), resource.to_owned())
            && rule
                .resource_names
                .as_deref()
                .is_none_or(|names| names.contains(&a.name))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_and_the_iam_policy_grant_exactly_what_the_operator_uses() {
    // The world's resyncs are short: drift is found within seconds.
    let world = World::start().await;
    let net = world.good_network().await;
    let mut replica = Replica::start(&world, ReplicaOptions::named("replica-a")).await;
    wait_for("the replica to lead", Duration::from_secs(15), || async {
        lease_holder(&world).await.is_some()
    })
    .await;
    for scenario in SCENARIOS {
        eprintln!("scenario: {}", scenario.name);
        (scenario.run)(&world, &net).await;
    }
    replica.terminate().await.expect("a clean stop");

    // Kubernetes: nothing refused (the world checks that too), nothing granted in vain.
    let audit = world.api.audit();
    let used: Vec<&AuditEvent> = audit
        .iter()
        .filter(|e| e.user == world.identity.user && !e.resource.is_empty())
        .collect();
    assert!(!used.is_empty());
    let (cluster_rules, role_rules) = chart::rules();
    let mut unused = Vec::new();
    let mut exercised_exceptions = Vec::new();
    for (rule, namespaced) in cluster_rules
        .iter()
        .map(|r| (r, false))
        .chain(role_rules.iter().map(|r| (r, true)))
    {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    let in_scope: Vec<&AuditEvent> = used
                        .iter()
                        .copied()
                        .filter(|e| !namespaced || e.namespace == NAMESPACE)
                        .collect();
                    let used = used_by(rule, verb, group, resource, &in_scope);
                    let k = (verb.as_str(), group.as_str(), resource.as_str());
                    let excused = GRANTED_BUT_NOT_EXERCISED
                        .iter()
                        .any(|(v, g, r, _)| (*v, *g, *r) == k);
                    match (used, excused) {
                        (true, true) => exercised_exceptions.push(format!("{k:?}")),
                        (false, false) => unused.push(format!("{verb} {group}/{resource}")),
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(
        exercised_exceptions.is_empty(),
        "exercised now, remove from the exceptions: {exercised_exceptions:?}"
    );
    assert!(
        unused.is_empty(),
        "the chart grants what the operator never used:\n{}",
        unused.join("\n")
    );

    // AWS: the policy is exactly the calls made plus what AWS checks on top of them.
    let called = chart::aws_actions(&world.proxy);
    let mut needed: BTreeSet<String> = called.clone();
    for (call, extra, _) in DEPENDENT_ACTIONS {
        if called.contains(*call) {
            needed.insert((*extra).to_owned());
        }
    }
    let granted = chart::iam_policy_actions();
    let missing: Vec<&String> = needed.difference(&granted).collect();
    let unneeded: Vec<&String> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty() && unneeded.is_empty(),
        "the IAM policy (src/iam.rs, deploy/iam/operator-policy.json) is not exactly what the operator needs\n\
         missing: {missing:?}\nnever needed: {unneeded:?}\ncalled: {called:?}"
    );
}

#[test]
fn every_mutating_statement_of_the_iam_policy_is_scoped() {
    // Reads cannot be scoped by tag (Describe*/List* take no resource); everything that
    // changes AWS must name resource types and, where AWS evaluates tags for the action, carry
    // an ownership-tag condition.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/iam/operator-policy.json"),
    )
    .expect("read the policy");
    let policy: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for statement in policy["Statement"].as_array().expect("statements") {
        let actions: Vec<String> = match &statement["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            list => list
                .as_array()
                .expect("actions")
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
        };
        let reads_only = actions.iter().all(|a| {
            let op = a.split(':').nth(1).unwrap_or_default();
            ["Get", "List", "Describe"]
                .iter()
                .any(|p| op.starts_with(p))
        });
        if reads_only {
            continue;
        }
        let sid = statement["Sid"].as_str().unwrap_or("?");
        assert_ne!(
            statement["Resource"], "*",
            "{sid}: a mutating statement must name resource types"
        );
        // Without a condition on purpose: the VPC and subnets a group or endpoint is created in
        // belong to the user (untagged); private DNS associates a hosted zone AWS owns.
        let unscoped_by_design = [
            "CreateSecurityGroupsAndEndpointsInAnyVpc",
            "AssociateEndpointPrivateDns",
        ];
        if !unscoped_by_design.contains(&sid) {
            assert!(
                statement["Condition"].is_object(),
                "{sid}: a mutating statement needs a condition (ownership tags, PassedToService, …)"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_missing_from_the_chart_is_refused_and_reported() {
    let mut world = World::start().await;
    let net = world.good_network().await;
    // The installed ClusterRole without its events rule.
    let roles: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> =
        kube::Api::all(world.kube.clone());
    let name = chart::object(chart::default_objects(), "ClusterRole")["metadata"]["name"]
        .as_str()
        .expect("ClusterRole name")
        .to_owned();
    let mut role = roles.get(&name).await.expect("the chart's ClusterRole");
    role.rules
        .as_mut()
        .expect("rules")
        .retain(|r| !r.resources.iter().flatten().any(|res| res == "events"));
    roles
        .replace(&name, &Default::default(), &role)
        .await
        .expect("replace the ClusterRole");

    world.start_operator();
    world
        .apply_provider(provider(&world, &net, "unannounced"))
        .await;
    world.wait_provider("unannounced", "Ready", ready).await;
    world.stop_operator().await;
    let refused = chart::refused(&world.api.audit(), &world.identity.user);
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("create events.k8s.io/events")),
        "{refused:?}"
    );
    // The refusal is what this test is about: do not fail the world's own check for it.
    world.api.clear_audit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_written_under_the_operators_identity_is_caught() {
    // Every world fails when the operator wrote more of its objects than status and finalizer
    // (`chart::spec_writes`); prove the check sees the finalizer patches it lets through and
    // catches a spec patch sent with the operator's own credentials.
    let mut world = World::start().await;
    let net = world.good_network().await;
    world.start_operator();
    world.apply_provider(provider(&world, &net, "owned")).await;
    world.wait_provider("owned", "Ready", ready).await;
    world.stop_operator().await;

    let audit = world.api.audit();
    let user = &world.identity.user;
    let finalizer_patches = audit
        .iter()
        .filter(|e| {
            &e.user == user
                && e.resource == "capacityproviders"
                && e.subresource.is_empty()
                && e.verb == "patch"
                && e.request_object
                    .as_ref()
                    .is_some_and(|b| b.to_string().contains("/metadata/finalizers"))
        })
        .count();
    assert!(
        finalizer_patches >= 1,
        "the audit log shows no finalizer patch by the operator: the check would prove nothing"
    );
    assert_eq!(chart::spec_writes(&audit, user), Vec::<String>::new());

    let providers: kube::Api<lmi_operator::api::CapacityProvider> =
        kube::Api::all(world.operator_client());
    providers
        .patch(
            "owned",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"spec": {"tags": {"written": "by-the-operator"}}}),
            ),
        )
        .await
        .expect("the chart lets the operator patch its objects (for finalizers)");
    let writes = chart::spec_writes(&world.api.audit(), user);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0].starts_with("patch capacityproviders /owned")
            && writes[0].contains("by-the-operator"),
        "{writes:?}"
    );
    // The spec write is what this test is about: do not fail the world's own check for it.
    world.api.clear_audit();
}
