//! The reliability suite: the operator under faults, crashes and impossible input, each test in
//! a world of its own (a real kube-apiserver behind its fault proxy, the AWS emulator behind its own; see
//! `tests/harness/`).
//!
//! - [`chaos`]: 200 random user operations and out-of-band AWS changes while AWS throttles and
//!   fails and the API server drops watches and refuses writes; then every resource converges
//!   to its spec, a resync changes nothing, and deleting everything leaves nothing in AWS.
//! - [`crash`]: the real `lmi-operator run` binary SIGKILLed 20 times during convergence and
//!   restarted; the end state is the spec with nothing created twice.
//! - [`races`]: `$LATEST` changed outside Git between the operator's read and its publish — a
//!   race the chaos test found — is refused by Lambda, retried, and never served as the spec.
//! - [`stall`]: an AWS endpoint that accepts connections and never answers; the operator stays
//!   live, reports the timeouts, and converges once AWS answers again.
//! - [`idempotency`]: a create whose answer is lost after AWS acted on it (the SDK retries)
//!   leaves one resource, not two.
//! - [`bad_input`]: specs the schema accepts but AWS cannot serve, each refused with a clear
//!   condition, nothing created, and a bounded number of AWS calls while it waits.
//!
//! Manifests the schema refuses (the validation corpus) are covered by `tests/validation`, which
//! checks every file of its corpus against the generated CRDs; this suite starts where the
//! schema ends.

#[path = "../harness/mod.rs"]
mod harness;

mod bad_input;
mod chaos;
mod crash;
mod idempotency;
mod inventory;
mod races;
mod stall;
