//! The operator runtime end to end, in-process: leader election between replicas on one
//! in-memory API server, readiness, the metrics endpoint after real reconciles against the AWS
//! emulator, and the chart's RBAC against the requests the operator actually makes.

mod leader;
mod metrics;
mod rbac;
mod readiness;
mod world;
