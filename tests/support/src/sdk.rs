//! `aws_config::SdkConfig` for a local endpoint: fixed test credentials and region, no reading
//! of the environment or profile files, so a developer's real AWS settings never leak in.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::config::{Credentials, SharedCredentialsProvider};

/// moto's default account (every request with any access key lands there).
pub const ACCOUNT_ID: &str = "123456789012";
/// The region the emulator clients use.
pub const REGION: &str = "us-east-1";

/// An SDK configuration that sends every service to `endpoint` with test credentials, the
/// [`REGION`] and the latest behaviour version (standard retries: 3 attempts).
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", None, None, "lmi-test-support");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::from_static(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

/// The environment a separately started process (e.g. the operator binary in an end-to-end
/// test) needs to reach `endpoint` with the default AWS credential chain: test keys, the
/// [`REGION`], `AWS_ENDPOINT_URL`, and no instance-metadata lookups.
pub fn client_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        // Older SDKs and boto3 read only this one.
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// A Lambda client for `config`.
pub fn lambda_client(config: &SdkConfig) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(config)
}

/// An EC2 client for `config`.
pub fn ec2_client(config: &SdkConfig) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(config)
}
