//! Builders shared by the tests.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_lambda::operation::create_capacity_provider::builders::CreateCapacityProviderFluentBuilder;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    CapacityProvider, CapacityProviderConfig, CapacityProviderPermissionsConfig,
    CapacityProviderVpcConfig, LambdaManagedInstancesCapacityProviderConfig, Runtime,
};
use lmi_test_support::{AwsEmulator, Network};

pub const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/lmi-capacity-provider-operator";

/// A name no other test in this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn vpc_config(subnets: &[String], groups: &[String]) -> CapacityProviderVpcConfig {
    CapacityProviderVpcConfig::builder()
        .set_subnet_ids(Some(subnets.to_vec()))
        .set_security_group_ids(Some(groups.to_vec()))
        .build()
        .expect("vpc config has its required members")
}

/// A CreateCapacityProvider request on `network` with only the required members.
pub fn provider_request(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    network: &Network,
) -> CreateCapacityProviderFluentBuilder {
    lambda
        .create_capacity_provider()
        .capacity_provider_name(name)
        .vpc_config(vpc_config(
            &network.private_subnet_ids(),
            std::slice::from_ref(&network.security_group_id),
        ))
        .permissions_config(
            CapacityProviderPermissionsConfig::builder()
                .capacity_provider_operator_role_arn(OPERATOR_ROLE)
                .build()
                .expect("permissions config has its required member"),
        )
}

/// A started emulator, a good network and an Active provider on it.
pub struct World {
    pub aws: AwsEmulator,
    pub lambda: aws_sdk_lambda::Client,
    pub network: Network,
}

impl World {
    pub async fn new() -> World {
        let aws = AwsEmulator::start().await.expect("emulator starts");
        let network = Network::good(&aws.ec2()).await.expect("good network");
        World {
            lambda: aws.lambda(),
            aws,
            network,
        }
    }

    pub async fn provider(&self) -> CapacityProvider {
        provider_request(&self.lambda, &unique("cp"), &self.network)
            .send()
            .await
            .expect("provider is created")
            .capacity_provider
            .expect("the response carries the provider")
    }

    /// Creates a function on `provider_arn` (with a role that exists in moto's IAM).
    pub async fn function(&self, provider_arn: &str) -> String {
        let role = self
            .aws
            .create_role(&unique("fn-role"))
            .await
            .expect("role is created");
        let name = unique("fn");
        self.lambda
            .create_function()
            .function_name(&name)
            .role(role)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(b"not really a zip".to_vec()))
                    .build(),
            )
            .memory_size(2048)
            .capacity_provider_config(lmi_config(provider_arn, 16, 4.0))
            .send()
            .await
            .expect("function is created");
        name
    }
}

pub fn lmi_config(
    provider_arn: &str,
    concurrency: i32,
    memory_per_vcpu: f64,
) -> CapacityProviderConfig {
    CapacityProviderConfig::builder()
        .lambda_managed_instances_capacity_provider_config(
            LambdaManagedInstancesCapacityProviderConfig::builder()
                .capacity_provider_arn(provider_arn)
                .per_execution_environment_max_concurrency(concurrency)
                .execution_environment_memory_gib_per_v_cpu(memory_per_vcpu)
                .build()
                .expect("lmi config has its required member"),
        )
        .build()
}

/// The name part of a capacity provider ARN.
pub fn name_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}
