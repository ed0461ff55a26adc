//! lmi-operator: runs AWS Lambda Managed Instances from Git.
//!
//! - [`api`]: the custom resources `CapacityProvider` and `SimilarityFunction`.
//! - [`identity`], [`network`], [`instance_types`]: pure decisions (names, ownership, network
//!   and instance-type checks), free of I/O.

pub mod api;
pub mod aws;
pub mod controller;
pub mod iam;
pub mod identity;
pub mod instance_types;
pub mod metrics;
pub mod network;
pub mod partition;
pub mod run;
pub mod runtime;
pub mod tenancy;
