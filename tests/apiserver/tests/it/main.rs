//! Integration tests: the real kube client and runtime, and the real kubectl, against the
//! in-memory API server. One test binary (modules below) keeps link time down.

mod conformance;
mod corpus;
mod crud;
mod faults;
mod finalizer;
mod kubectl;
mod kubectl_lmi;
mod ssa;
mod support;
mod watcher;
