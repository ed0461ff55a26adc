//! The custom resources (group `lmi.dev`, version `v1alpha1`): the contract users write in Git.
//!
//! Every field carries a `///` comment: it becomes the schema description `kubectl explain`
//! prints. Validation lives in the schema (ranges, patterns, CEL rules with messages) so that
//! a bad manifest is refused at `kubectl apply`, before the operator or AWS sees it.

pub mod capacity_provider;
pub mod common;
pub mod conditions;
pub mod crdgen;
pub mod similarity_function;

pub use capacity_provider::{CapacityProvider, CapacityProviderSpec, CapacityProviderStatus};
pub use common::{DeletionPolicy, DriftEntry, DriftPolicy};
pub use similarity_function::{
    SimilarityFunction, SimilarityFunctionSpec, SimilarityFunctionStatus,
};
