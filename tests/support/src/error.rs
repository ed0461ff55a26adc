//! Errors of the test support: what failed, with the underlying cause kept.

use std::time::Duration;

/// Starting or talking to the emulator, building fixtures, running the proxy.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("failed to start the AWS emulator ({script}): {source}")]
    SpawnEmulator {
        script: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the AWS emulator exited before it was ready; its last output:\n{output}")]
    EmulatorExited { output: String },
    #[error("the AWS emulator was not ready within {waited:?}; its last output:\n{output}")]
    EmulatorTimeout { waited: Duration, output: String },
    #[error("emulator control call {path} failed: {message}")]
    Control { path: String, message: String },
    #[error("failed to bind the fault proxy: {0}")]
    BindProxy(#[source] std::io::Error),
    #[error("EC2 call {operation} failed while building a network fixture: {message}")]
    Fixture {
        operation: &'static str,
        message: String,
    },
    #[error("network fixture is inconsistent: {0}")]
    FixtureSpec(String),
    #[error("Kubernetes control plane: {0}")]
    ControlPlane(String),
    #[error("Lambda runtime emulator: {0}")]
    LambdaRuntime(String),
}

impl SupportError {
    /// Wraps an SDK error of a fixture step, keeping its full display chain in the message.
    pub(crate) fn fixture(operation: &'static str, error: impl std::error::Error) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        SupportError::Fixture { operation, message }
    }
}
