//! Integration tests: the real kube client and runtime, and the real kubectl, against the
//! in-memory API server. One test binary (modules below) keeps link time down.

// Test helpers unwrap like #[test] functions do (clippy.toml allows it there): a panic is a
// failed assertion with a backtrace.
#![allow(clippy::unwrap_used)]

mod binary;
mod conformance;
mod corpus;
mod crud;
mod faults;
mod finalizer;
mod kubectl;
mod kubectl_lmi;
mod rbac;
mod ssa;
mod support;
mod watcher;
