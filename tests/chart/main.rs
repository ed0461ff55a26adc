//! The Helm chart (`charts/lmi-operator`), checked with the real `helm` v4 from `.tools/bin`
//! (installed by `scripts/fetch-tools`): lint, render with the default and the full values
//! file, typed objects, the values schema, the CRDs kept identical to `crds/`, the Deployment's
//! settings accepted by the operator's own command line, and install, upgrade and uninstall on
//! a real API server.

mod crds;
mod deployment;
mod helm;
mod install;
mod rbac;
mod render;
mod schema;
