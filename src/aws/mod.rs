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

use std::time::Duration;

use aws_smithy_types::timeout::TimeoutConfig;

/// Time limits of every AWS call. Without them a connection that stalls after connecting hangs
/// its reconcile forever (the SDK sets a connect timeout only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwsTimeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// One attempt, from sending the request to reading the whole response; a stalled attempt
    /// fails here and is retried.
    pub attempt: Duration,
    /// The whole call, retries included.
    pub operation: Duration,
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            // CreateFunction and UpdateFunctionCode carry the handler zip (a few MiB).
            attempt: Duration::from_secs(60),
            operation: Duration::from_secs(180),
        }
    }
}

impl AwsTimeouts {
    fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

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
    /// endpoint override such as `AWS_ENDPOINT_URL`), every request counted by `counter`,
    /// Lambda calls kept to `rates` (one set of buckets per account and region: pass new ones
    /// for each region), and every call bounded by `timeouts`.
    pub fn with_call_metrics(
        config: &aws_config::SdkConfig,
        counter: call_metrics::AwsCallCounter,
        rates: rate::RateLimits,
        timeouts: AwsTimeouts,
    ) -> Self {
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let lambda = aws_sdk_lambda::config::Builder::from(config)
            .interceptor(counter.clone())
            .timeout_config(timeouts.config());
        let ec2 = aws_sdk_ec2::config::Builder::from(config)
            .interceptor(counter)
            .timeout_config(timeouts.config());
        Self {
            lambda: Lambda::new(aws_sdk_lambda::Client::from_conf(lambda.build()), rates),
            ec2: Ec2::new(aws_sdk_ec2::Client::from_conf(ec2.build()), region.clone()),
            region,
        }
    }
}
