//! Least privilege, both ways. Every end-to-end world already fails when the chart's RBAC
//! refuses the operator or it calls AWS outside the IAM policy (`harness::chart`). Here one
//! replica, under leader election and the chart's ServiceAccount, is taken through every
//! scenario below; afterwards
//! - every permission the chart's ClusterRole and Role grant must have been used, and
//! - the IAM policy must grant exactly the AWS actions called, plus the actions AWS checks on
//!   top of them ([`DEPENDENT_ACTIONS`]).
//!
//! Adding a controller or a code path that calls something new means adding a scenario here.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::FunctionScalingConfig;
use futures::future::BoxFuture;
use k8s_openapi::api::rbac::v1::PolicyRule;
use lmi_operator::api::CapacityProvider;
use lmi_operator::controller::similarity_function::desired::code_sha256;
use lmi_test_apiserver::{AuditEvent, RequestAttributes};
use lmi_test_support::Network;
use serde_json::json;

use crate::harness::chart::{self, NAMESPACE};
use crate::harness::functions::{PROVIDER, TEAM, conditions, handler_zip, is_ready, version};
use crate::harness::replica::{Replica, ReplicaOptions};
use crate::harness::{World, has_condition, provider_conditions, provider_manifest};
use crate::{lease_holder, ready, wait_for};

/// One scenario: drives the operator (already running) through a lifecycle and waits for it.
struct Scenario {
    name: &'static str,
    run: for<'a> fn(&'a World, &'a Network) -> BoxFuture<'a, ()>,
}

/// Everything the operator is taken through. Together they must exercise every AWS action and
/// Kubernetes permission the operator needs.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "provider with instance types: create, update in place, drift corrected, delete",
        run: |w, n| Box::pin(provider_lifecycle(w, n)),
    },
    Scenario {
        name: "provider with a managed security group and telemetry endpoints, deleted",
        run: |w, _| Box::pin(managed_network(w)),
    },
    Scenario {
        name: "provider adopting a same-named provider it did not create",
        run: |w, n| Box::pin(adoption(w, n)),
    },
    Scenario {
        name: "function on a provider: create, new versions pruned to retain, scaling change, \
               drift corrected, delete",
        run: |w, n| Box::pin(function_lifecycle(w, n)),
    },
    Scenario {
        name: "function with its code from S3, deleted with its provider",
        run: |w, n| Box::pin(function_from_s3(w, n)),
    },
];

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

fn provider(world: &World, net: &Network, name: &str) -> serde_json::Value {
    provider_manifest(
        name,
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    )
}

fn aws_name(cp: &CapacityProvider) -> String {
    cp.status
        .as_ref()
        .and_then(|s| s.aws_name.clone())
        .expect("status.awsName")
}

async fn provider_lifecycle(world: &World, net: &Network) {
    let mut manifest = provider(world, net, "lifecycle");
    // Named instance types are checked against what EC2 offers in the subnets' zones.
    manifest["spec"]["instances"]["allowedInstanceTypes"] = json!(["m7g.*"]);
    world.apply_provider(manifest.clone()).await;
    let cp = world.wait_provider("lifecycle", "Ready", ready).await;

    let mut changed = manifest;
    changed["spec"]["scaling"] = json!({"mode": "Auto", "maxVCpuCount": 128});
    world.apply_provider(changed).await;
    world
        .wait_provider("lifecycle", "Ready for the new spec", ready)
        .await;

    // Behind the operator's back; the next resync puts it back.
    world
        .lambda
        .update_capacity_provider()
        .capacity_provider_name(aws_name(&cp))
        .capacity_provider_scaling_config(
            aws_sdk_lambda::types::CapacityProviderScalingConfig::builder()
                .max_v_cpu_count(999)
                .build(),
        )
        .send()
        .await
        .expect("out-of-band update");
    let lambda = world.lambda.clone();
    let name = aws_name(&cp);
    wait_for("the drift corrected", Duration::from_secs(60), || {
        let (lambda, name) = (lambda.clone(), name.clone());
        async move {
            let max = lambda
                .get_capacity_provider()
                .capacity_provider_name(name)
                .send()
                .await
                .ok()
                .and_then(|o| o.capacity_provider)
                .and_then(|p| p.capacity_provider_scaling_config)
                .and_then(|s| s.max_v_cpu_count);
            max == Some(128)
        }
    })
    .await;

    world.delete_provider("lifecycle").await;
    world.wait_provider_gone("lifecycle").await;
}

async fn managed_network(world: &World) {
    let isolated = Network::builder()
        .isolated_subnet("us-east-1a")
        .isolated_subnet("us-east-1b")
        .build(&world.ec2)
        .await
        .expect("isolated network");
    let subnets = isolated.subnet_ids(lmi_test_support::Egress::None);
    let mut manifest = provider_manifest("managed", &subnets, &[], &world.role_arn);
    manifest["spec"]["vpc"] = json!({
        "subnetIds": subnets,
        "managedSecurityGroup": {},
        "telemetryEndpoints": "Create",
    });
    world.apply_provider(manifest).await;
    world
        .wait_provider("managed", "Ready with endpoints", |cp| {
            ready(cp) && has_condition(provider_conditions(cp), "NetworkReady", "True", None)
        })
        .await;
    world.delete_provider("managed").await;
    world.wait_provider_gone("managed").await;
}

async fn adoption(world: &World, net: &Network) {
    world
        .lambda
        .create_capacity_provider()
        .capacity_provider_name("found-in-aws")
        .vpc_config(
            aws_sdk_lambda::types::CapacityProviderVpcConfig::builder()
                .set_subnet_ids(Some(net.private_subnet_ids()))
                .security_group_ids(&net.security_group_id)
                .build()
                .expect("vpc"),
        )
        .permissions_config(
            aws_sdk_lambda::types::CapacityProviderPermissionsConfig::builder()
                .capacity_provider_operator_role_arn(&world.role_arn)
                .build()
                .expect("permissions"),
        )
        .send()
        .await
        .expect("a provider created outside the operator");
    let mut manifest = provider(world, net, "adopter");
    manifest["spec"]["awsName"] = "found-in-aws".into();
    manifest["spec"]["adopt"] = true.into();
    manifest["spec"]["deletionPolicy"] = "Retain".into();
    world.apply_provider(manifest).await;
    world.wait_provider("adopter", "Ready", ready).await;
    world.delete_provider("adopter").await;
    world.wait_provider_gone("adopter").await;
}

/// Creates the namespace the function scenarios use unless an earlier scenario did; [`PROVIDER`]
/// admits it by name, or by its label.
async fn team_namespace(world: &World) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(world.kube.clone());
    if namespaces
        .get_opt(TEAM)
        .await
        .expect("read the namespace")
        .is_none()
    {
        world
            .create_namespace(TEAM, &[("lmi.dev/environment", "production")])
            .await;
    }
}

/// Whether the function is Ready on exactly these published versions.
fn ready_on(versions: &[&str]) -> impl Fn(&lmi_operator::api::SimilarityFunction) -> bool {
    move |sf| {
        is_ready(sf)
            && sf.status.as_ref().is_some_and(|s| {
                s.versions
                    .iter()
                    .map(String::as_str)
                    .eq(versions.iter().copied())
            })
    }
}

async fn delete_function_and_provider(world: &World, name: &str) {
    world.delete_function(TEAM, name).await;
    world.wait_function_gone(TEAM, name).await;
    world.delete_provider(PROVIDER).await;
    world.wait_provider_gone(PROVIDER).await;
}

async fn function_lifecycle(world: &World, net: &Network) {
    team_namespace(world).await;
    // Admission by label selector: the operator reads the function's namespace.
    let mut provider = world.function_provider(net);
    provider["spec"]["allowedNamespaces"] =
        json!({"selector": {"matchLabels": {"lmi.dev/environment": "production"}}});
    world.apply_provider(provider).await;
    world.wait_provider(PROVIDER, "Ready", ready).await;
    let mut manifest = world.function(TEAM, "products");
    world.apply_function(&manifest).await;
    world
        .wait_function(TEAM, "products", "Ready on version 1", ready_on(&["1"]))
        .await;

    // Two configuration changes: versions 2 and 3, version 1 pruned (retain: 2).
    manifest["spec"]["memoryMiB"] = json!(8192);
    world.apply_function(&manifest).await;
    world
        .wait_function(
            TEAM,
            "products",
            "Ready on version 2",
            ready_on(&["1", "2"]),
        )
        .await;
    manifest["spec"]["timeoutSeconds"] = json!(60);
    world.apply_function(&manifest).await;
    world
        .wait_function(
            TEAM,
            "products",
            "Ready on version 3",
            ready_on(&["2", "3"]),
        )
        .await;

    // Scaling is set on the serving version; nothing new is published.
    manifest["spec"]["scaling"]["maxExecutionEnvironments"] = json!(8);
    world.apply_function(&manifest).await;
    world
        .wait_function(TEAM, "products", "Ready with the new scaling", |sf| {
            ready_on(&["2", "3"])(sf)
                && sf
                    .status
                    .as_ref()
                    .and_then(|s| s.scaling.as_ref())
                    .and_then(|s| s.requested.as_ref())
                    .and_then(|r| r.max_execution_environments)
                    == Some(8)
        })
        .await;
    assert_eq!(
        world.aws_scaling(TEAM, "products", "3").await.0,
        Some((Some(1), Some(8)))
    );

    // Code, configuration and scaling changed behind the operator's back: all put back.
    let aws_name = world.function_aws_name(TEAM, "products");
    world
        .lambda
        .update_function_code()
        .function_name(&aws_name)
        .zip_file(Blob::new(handler_zip("changed by hand")))
        .send()
        .await
        .expect("update code by hand");
    world
        .lambda
        .update_function_configuration()
        .function_name(&aws_name)
        .memory_size(1024)
        .send()
        .await
        .expect("change memory by hand");
    world
        .lambda
        .put_function_scaling_config()
        .function_name(&aws_name)
        .qualifier("3")
        .function_scaling_config(
            FunctionScalingConfig::builder()
                .min_execution_environments(0)
                .max_execution_environments(40)
                .build(),
        )
        .send()
        .await
        .expect("put scaling by hand");
    let arm_sha = world.handlers.sha256("arm64");
    wait_for("the drift corrected", Duration::from_secs(60), || async {
        let config = world
            .aws_function(TEAM, "products")
            .await
            .and_then(|f| f.configuration().cloned());
        let (requested, _) = world.aws_scaling(TEAM, "products", "3").await;
        config.as_ref().and_then(|c| c.code_sha256()) == Some(arm_sha.as_str())
            && config.as_ref().and_then(|c| c.memory_size()) == Some(8192)
            && requested == Some((Some(1), Some(8)))
    })
    .await;
    let sf = world
        .wait_function(TEAM, "products", "back in sync", |sf| {
            is_ready(sf) && has_condition(conditions(sf), "Drifted", "False", Some("InSync"))
        })
        .await;
    assert_eq!(version(&sf), Some("3"));

    delete_function_and_provider(world, "products").await;
}

async fn function_from_s3(world: &World, net: &Network) {
    team_namespace(world).await;
    let v1 = handler_zip("from s3, v1");
    world
        .aws
        .put_object("artifacts", "handler/v1.zip", &v1)
        .await
        .expect("upload the code");
    world.ready_provider(net).await;
    let mut manifest = world.function(TEAM, "from-s3");
    manifest["spec"]["code"] = json!({"s3": {"bucket": "artifacts", "key": "handler/v1.zip"}});
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "from-s3", "Ready on version 1", ready_on(&["1"]))
        .await;
    assert_eq!(
        sf.status.and_then(|s| s.code_sha256),
        Some(code_sha256(&v1))
    );

    // New code in S3: UpdateFunctionCode from S3, then version 2.
    let v2 = handler_zip("from s3, v2");
    world
        .aws
        .put_object("artifacts", "handler/v2.zip", &v2)
        .await
        .expect("upload the new code");
    manifest["spec"]["code"]["s3"]["key"] = json!("handler/v2.zip");
    world.apply_function(&manifest).await;
    let sf = world
        .wait_function(TEAM, "from-s3", "Ready on version 2", ready_on(&["1", "2"]))
        .await;
    assert_eq!(
        sf.status.and_then(|s| s.code_sha256),
        Some(code_sha256(&v2))
    );

    delete_function_and_provider(world, "from-s3").await;
}

/// `(verb, group, resource[/subresource])` of a request.
fn key(a: &RequestAttributes) -> (String, String, String) {
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
    used.iter().any(|e| {
        let a = &e.attributes;
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
        .filter(|e| e.user == world.identity.user && e.attributes.resource_request)
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
                        .filter(|e| !namespaced || e.attributes.namespace == NAMESPACE)
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
        "deploy/iam/operator-policy.json is not exactly what the operator needs\n\
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
            "CreateOwnedSecurityGroupsAndEndpointsInAnyVpc",
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
