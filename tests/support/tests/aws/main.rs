//! Integration tests of the AWS test world: every LMI operation through aws-sdk-lambda against
//! the emulator, the network fixtures, the fault proxy, and the emulator's own lifecycle.
//! One test binary (linking aws-sdk-ec2 is slow); each test starts its own emulator.

mod common;
mod emulator;
mod fault_proxy;
mod lambda_api;
mod lambda_functions;
mod network;
