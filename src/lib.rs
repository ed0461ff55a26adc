//! lmi-operator: runs AWS Lambda Managed Instances from Git.
//!
//! - [`api`]: the custom resources `CapacityProvider` and `SimilarityFunction`.

pub mod api;
