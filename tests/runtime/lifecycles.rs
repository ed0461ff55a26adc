//! The lifecycles the least-privilege check takes the operator through (`permissions`): every
//! code path that calls AWS or the API server, for both kinds. Each scenario cleans up after
//! itself, so they run one after the other against one world and one replica.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::FunctionScalingConfig;
use futures::future::BoxFuture;
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use lmi_operator::controller::similarity_function::desired::code_sha256;
use lmi_test_support::Network;
use serde_json::json;

use crate::harness::functions::{PROVIDER, TEAM, conditions, handler_zip, is_ready, version};
use crate::harness::{
    World, has_condition, managed_network_manifest, provider_conditions, provider_manifest,
};
use crate::{ready, wait_for};

/// One scenario: drives the operator (already running) through a lifecycle and waits for it.
pub struct Scenario {
    /// What the scenario does (printed as it starts).
    pub name: &'static str,
    /// Runs it to the end.
    pub run: for<'a> fn(&'a World, &'a Network) -> BoxFuture<'a, ()>,
}

/// Everything the operator is taken through. Together they must exercise every AWS action and
/// Kubernetes permission the operator needs.
pub const SCENARIOS: &[Scenario] = &[
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

/// A provider manifest on the good network.
pub fn provider(world: &World, net: &Network, name: &str) -> serde_json::Value {
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
    let isolated = Network::isolated(&world.ec2)
        .await
        .expect("isolated network");
    let subnets = isolated.subnet_ids(lmi_test_support::Egress::None);
    world
        .apply_provider(managed_network_manifest(
            "managed",
            &subnets,
            &world.role_arn,
        ))
        .await;
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
fn ready_on(versions: &[&str]) -> impl Fn(&SimilarityFunction) -> bool {
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
    provider["spec"]["tenants"] = json!([crate::harness::grant(
        "production",
        json!({"selector": {"matchLabels": {"lmi.dev/environment": "production"}}}),
        &world.role_arn,
    )]);
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
                    .and_then(|s| s.applied.as_ref())
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
        let (held, _) = world.aws_scaling(TEAM, "products", "3").await;
        config.as_ref().and_then(|c| c.code_sha256()) == Some(arm_sha.as_str())
            && config.as_ref().and_then(|c| c.memory_size()) == Some(8192)
            && held == Some((Some(1), Some(8)))
    })
    .await;
    let sf = world
        .wait_function(TEAM, "products", "back in sync", |sf| {
            is_ready(sf) && has_condition(conditions(sf), "Drifted", "False", Some("InSync"))
        })
        .await;
    assert_eq!(version(&sf), Some("3"));

    // The grant stops covering the namespace (its label is removed): the function is
    // suspended; labelled again, it is reactivated.
    label_team(world, None).await;
    world
        .wait_function(TEAM, "products", "suspended", |sf| {
            has_condition(
                conditions(sf),
                "Ready",
                "False",
                Some("NamespaceNotAllowed"),
            )
        })
        .await;
    wait_for(
        "every version deactivated",
        Duration::from_secs(60),
        || async {
            world.aws_scaling(TEAM, "products", "2").await.0 == Some((Some(0), Some(0)))
                && world.aws_scaling(TEAM, "products", "3").await.0 == Some((Some(0), Some(0)))
        },
    )
    .await;
    label_team(world, Some("production")).await;
    world
        .wait_function(TEAM, "products", "reactivated", ready_on(&["2", "3"]))
        .await;
    assert_eq!(
        world.aws_scaling(TEAM, "products", "3").await.0,
        Some((Some(1), Some(8)))
    );

    delete_function_and_provider(world, "products").await;
}

/// Sets (or removes) the `lmi.dev/environment` label of the team's namespace.
async fn label_team(world: &World, environment: Option<&str>) {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(world.kube.clone());
    namespaces
        .patch(
            TEAM,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"lmi.dev/environment": environment}}}),
            ),
        )
        .await
        .expect("label the namespace");
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
