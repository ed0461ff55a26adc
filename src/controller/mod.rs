//! The controllers: one module per kind, and what they share (context, errors and requeue
//! policy, conditions).

pub mod capacity_provider;
pub mod conditions;
pub mod context;
pub mod error;
pub mod similarity_function;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use context::{Config, Context, FIELD_MANAGER};
pub use error::Error;

/// The current time as a Kubernetes timestamp.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}
