//! Thin typed wrappers over aws-sdk-lambda and aws-sdk-ec2, and AWS error classification.
//! Nothing here decides anything: the controllers' pure steps do.

pub mod call_metrics;
pub mod ec2;
pub mod error;
pub mod functions;
pub mod lambda;
pub mod model;
pub mod rate;

pub use ec2::Ec2;
pub use error::{AwsError, ErrorClass};
pub use lambda::Lambda;

/// The AWS clients of one region.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// Lambda (capacity providers, functions).
    pub lambda: Lambda,
    /// EC2 (network checks, instance types, owned security groups and endpoints).
    pub ec2: Ec2,
    /// The region the clients talk to.
    pub region: String,
}

impl AwsClients {
    /// Clients for the region of `config` (which also carries credentials, retries and an
    /// endpoint override such as `AWS_ENDPOINT_URL`), every request counted by `counter` and
    /// Lambda calls kept to `rates` (one set of buckets per account and region: pass new ones
    /// for each region).
    pub fn with_call_metrics(
        config: &aws_config::SdkConfig,
        counter: call_metrics::AwsCallCounter,
        rates: rate::RateLimits,
    ) -> Self {
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let lambda = aws_sdk_lambda::config::Builder::from(config).interceptor(counter.clone());
        let ec2 = aws_sdk_ec2::config::Builder::from(config).interceptor(counter);
        Self {
            lambda: Lambda::new(aws_sdk_lambda::Client::from_conf(lambda.build()), rates),
            ec2: Ec2::new(aws_sdk_ec2::Client::from_conf(ec2.build()), region.clone()),
            region,
        }
    }
}
