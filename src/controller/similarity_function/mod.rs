//! SimilarityFunction reconciler.

pub mod admission;
pub mod desired;
pub mod drift;
pub mod plan;
pub mod versions;
