//! An in-memory Kubernetes API server for tests and the local sandbox.
//!
//! It speaks the real HTTP API closely enough that the real `kube` client and runtime and the
//! real `kubectl` run against it unchanged: discovery, OpenAPI v3, CRDs with schema validation,
//! pruning, defaulting and CEL, list/watch with resource versions and bookmarks, the status
//! subresource, generation, finalizers, optimistic concurrency, server-side apply and tables.
//! Faults (dropped watches, failing requests, latency, restarts) can be injected on demand.
//! See README.md for usage and every known deviation from the real API server.

mod admission;
mod authz;
mod deletes;
mod discovery;
mod events;
mod faults;
mod fieldset;
mod kubeconfig;
mod loader;
mod meta;
mod openapi;
mod patch;
mod protobuf;
mod reads;
mod registry;
mod routes;
mod schema;
mod selectors;
mod server;
mod ssa;
mod state;
mod status;
mod store;
mod strategy;
mod table;
mod util;
mod watch;
mod writes;

pub use authz::{ADMIN, AuditEvent, RequestAttributes};
pub use faults::Fault;
pub use server::{ServerError, TestApiServer};
pub use status::ApiError;

/// HTTP methods, for [`Fault::method`].
pub use axum::http::Method;
