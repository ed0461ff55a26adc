//! Test support for lmi-operator: the AWS side of the test world.
//!
//! - [`AwsEmulator`]: moto with our Lambda Managed Instances extension, started on a free port
//!   for one test and killed on drop; [`AwsEmulator::sdk_config`] is ready for aws-sdk-lambda
//!   and aws-sdk-ec2.
//! - [`Network`]: VPC fixtures (NAT-routed, public, isolated subnets; endpoints) in one line.
//! - [`FaultProxy`]: throttling, 5xx, latency and connection resets between SDK and emulator,
//!   with a log of every call.
//! - [`kube::ControlPlane`]: the real etcd + kube-apiserver (+ kube-controller-manager).
//! - [`lambda::ExecutionEnvironment`]: a handler package under AWS's Lambda Runtime Interface
//!   Emulator in Managed Instances mode.
//!
//! What the emulator does and where it differs from AWS: `tests/aws/README.md`.

mod emulator;
mod error;
pub mod kube;
pub mod lambda;
mod network;
mod process;
mod proxy;
mod sdk;

pub use emulator::{AwsEmulator, EmulatorOptions, script_path};
pub use error::SupportError;
pub use network::{Egress, FixtureSubnet, Network, NetworkBuilder};
pub use proxy::{Fault, FaultPlan, FaultProxy, OperationRecord, Outcome};
pub use sdk::{ACCOUNT_ID, REGION, client_env, ec2_client, lambda_client, sdk_config};
