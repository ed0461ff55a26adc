//! Controller errors, their bounded reasons, and the requeue policy for them.

use std::time::Duration;

use crate::aws::{AwsError, ErrorClass};

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),

    /// A Kubernetes API call failed.
    #[error("{action} failed: {source}")]
    Kube {
        /// What the operator was doing, e.g. `PatchStatus`.
        action: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },

    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    /// The handler build bundled with the operator cannot be used (an operator installation
    /// problem: the image or `--handler-dir`).
    #[error(transparent)]
    Handler(#[from] crate::controller::similarity_function::code::BundleError),

    /// The spec is valid in the schema but can never work in AWS (for example a role of another
    /// partition than the region's): found before any AWS call, reported as `InvalidSpec`, and
    /// looked at again only on a spec change or the slow terminal retry.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// The reconcile ran longer than `--reconcile-timeout` and was abandoned where it stood (as
    /// a crash would leave it); retried with backoff.
    #[error("the reconcile did not finish within {0:?} and was abandoned; it is retried")]
    TimedOut(Duration),

    /// Something the reconcile waits for (deletion blocked by attached versions, AWS still
    /// deleting); not a failure, but it must keep the finalizer and come back later.
    #[error("waiting: {message}")]
    Waiting {
        /// Bounded reason, e.g. `VersionsAttached`.
        reason: &'static str,
        /// What it waits for.
        message: String,
        /// When to look again.
        retry_after: Duration,
    },
}

pub const KUBE_CONFLICT: &str = "KubeConflict";
pub const KUBE_THROTTLED: &str = "KubeThrottled";
pub const KUBE_SERVER_ERROR: &str = "KubeServerError";
/// The API server refused a request for good (RBAC, validation): only a fixed installation helps.
pub const KUBE_REQUEST_REJECTED: &str = "KubeRequestRejected";
pub const KUBE_UNREACHABLE: &str = "KubeUnreachable";
/// Adding or removing the finalizer failed for a reason other than the reconcile's.
pub const FINALIZER_FAILED: &str = "FinalizerFailed";
/// The image holds no handler build for the function's architecture.
pub const HANDLER_BUILD_UNAVAILABLE: &str = "HandlerBuildUnavailable";
/// A reconcile abandoned at `--reconcile-timeout`.
pub const RECONCILE_TIMED_OUT: &str = "ReconcileTimedOut";
/// Waiting while Lambda is busy with a resource (an update in progress).
pub const AWS_BUSY: &str = "AwsBusy";
/// Waiting while AWS deletes a resource.
pub const AWS_DELETING: &str = "AwsDeleting";

/// Every reason [`Error::reason`] gives besides AWS's ([`crate::aws::error::REASONS`]) and the
/// condition reasons of [`crate::api::conditions::reason`] (`InvalidSpec`, `VersionsAttached`):
/// the `Synced` reasons Argo CD's health check must classify (`tests/argocd.rs`).
pub const REASONS: &[&str] = &[
    KUBE_CONFLICT,
    KUBE_THROTTLED,
    KUBE_SERVER_ERROR,
    KUBE_REQUEST_REJECTED,
    KUBE_UNREACHABLE,
    FINALIZER_FAILED,
    HANDLER_BUILD_UNAVAILABLE,
    RECONCILE_TIMED_OUT,
    AWS_BUSY,
    AWS_DELETING,
];

impl Error {
    /// Wraps a Kubernetes client error with the action that failed.
    pub fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Error::Kube { action, source }
    }

    /// A bounded reason for event reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Aws(e) => e.reason(),
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => KUBE_CONFLICT,
                kube::Error::Api(status) if status.code == 429 => KUBE_THROTTLED,
                kube::Error::Api(status) if status.code >= 500 => KUBE_SERVER_ERROR,
                kube::Error::Api(_) => KUBE_REQUEST_REJECTED,
                _ => KUBE_UNREACHABLE,
            },
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => FINALIZER_FAILED,
            },
            Error::Waiting { reason, .. } => reason,
            Error::Handler(_) => HANDLER_BUILD_UNAVAILABLE,
            Error::TimedOut(_) => RECONCILE_TIMED_OUT,
            Error::InvalidSpec(_) => crate::api::conditions::reason::INVALID_SPEC,
        }
    }

    /// How to retry.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Aws(e) => e.class,
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.class(),
                _ => ErrorClass::Retryable,
            },
            Error::Kube { .. } | Error::Waiting { .. } | Error::TimedOut(_) => {
                ErrorClass::Retryable
            }
            Error::Handler(_) | Error::InvalidSpec(_) => ErrorClass::Terminal,
        }
    }

    /// The fixed delay a waiting error asks for, if it is one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Waiting { retry_after, .. } => Some(*retry_after),
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.retry_after(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Failed reconciles in a row, per object, for the backoff. An object that stops failing is
/// forgotten by [`FailureCounts::reset`]; one deleted while it failed (its finalizer removed by
/// hand, a cleanup that never succeeded before the object went) is forgotten once it has not
/// failed for `forget_after`, longer than any retry delay: the map never grows with the objects
/// that ever existed.
#[derive(Debug)]
pub struct FailureCounts {
    counts: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
    forget_after: Duration,
}

impl FailureCounts {
    /// Counts that forget an object once it has not failed for `forget_after`.
    pub fn new(forget_after: Duration) -> Self {
        Self {
            counts: Default::default(),
            forget_after,
        }
    }

    /// Counts a failure of `key` and returns how many in a row.
    pub fn record(&self, key: &str) -> u32 {
        self.record_at(key, std::time::Instant::now())
    }

    fn record_at(&self, key: &str, now: std::time::Instant) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let forget_after = self.forget_after;
        counts.retain(|_, (_, last)| now.saturating_duration_since(*last) <= forget_after);
        let entry = counts.entry(key.to_owned()).or_insert((0, now));
        entry.0 += 1;
        entry.1 = now;
        entry.0
    }

    /// Forgets `key` after a successful reconcile.
    pub fn reset(&self, key: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// How many objects are counted.
    pub fn len(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no object is counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Requeue delays after errors: exponential backoff with jitter for retryable errors, a slow
/// fixed retry for terminal ones (a spec change triggers a reconcile anyway), and the asked-for
/// delay for waits.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// First retry delay.
    pub base: Duration,
    /// Upper bound for retryable errors.
    pub max: Duration,
    /// Delay after terminal errors.
    pub terminal: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            terminal: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// Longer than any delay this backoff asks for: how long a failure count is kept.
    pub fn forget_after(&self) -> Duration {
        self.max.max(self.terminal).saturating_mul(3)
    }

    /// Delay before retry number `attempt` (1 for the first failure) of `error`.
    pub fn delay(&self, error: &Error, attempt: u32) -> Duration {
        if let Some(after) = error.retry_after() {
            return jitter(after);
        }
        let propagation_over = error.reason() == crate::aws::error::ROLE_NOT_ASSUMABLE_YET
            && attempt > crate::aws::error::IAM_PROPAGATION_ATTEMPTS;
        match error.class() {
            ErrorClass::Terminal | ErrorClass::NotFound => jitter(self.terminal),
            ErrorClass::Retryable if propagation_over => jitter(self.terminal),
            ErrorClass::Retryable => {
                let exp = self
                    .base
                    .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
                jitter(exp.min(self.max))
            }
        }
    }
}

/// Spreads a delay by ±20% so that many objects failing together do not retry in lockstep.
pub fn jitter(d: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_counts_forget_objects_that_stopped_failing_or_went_away() {
        let counts = FailureCounts::new(Duration::from_secs(60));
        let start = std::time::Instant::now();
        assert_eq!(counts.record_at("gone", start), 1);
        assert_eq!(counts.record_at("gone", start), 2);
        assert_eq!(counts.record_at("fixed", start), 1);
        counts.reset("fixed");
        assert_eq!(counts.len(), 1);
        // Another object fails much later: the one deleted while failing is forgotten.
        assert_eq!(
            counts.record_at("other", start + Duration::from_secs(30)),
            1
        );
        assert_eq!(counts.len(), 2, "still within forget_after");
        assert_eq!(
            counts.record_at("other", start + Duration::from_secs(61)),
            2
        );
        assert_eq!(
            counts.len(),
            1,
            "the deleted object's count is kept forever"
        );
        assert_eq!(counts.record_at("gone", start + Duration::from_secs(62)), 1);
    }

    fn waiting(after: u64) -> Error {
        Error::Waiting {
            reason: crate::api::conditions::reason::VERSIONS_ATTACHED,
            message: "x".into(),
            retry_after: Duration::from_secs(after),
        }
    }

    #[test]
    fn retryable_errors_back_off_exponentially_up_to_the_cap() {
        let b = Backoff::default();
        let e = Error::Aws(AwsError::unexpected("GetCapacityProvider", "boom"));
        let first = b.delay(&e, 1);
        let fourth = b.delay(&e, 4);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        assert!(fourth >= Duration::from_millis(6400) && fourth <= Duration::from_millis(9600));
        assert!(b.delay(&e, 40) <= Duration::from_secs(360));
    }

    #[test]
    fn a_missing_handler_build_is_terminal_and_retried_slowly() {
        let e = Error::Handler(crate::controller::similarity_function::code::BundleError {
            path: "/opt/lmi-operator/handler/bootstrap-x86_64.zip".into(),
            problem: "No such file or directory".into(),
        });
        assert_eq!(e.class(), ErrorClass::Terminal);
        assert_eq!(e.reason(), "HandlerBuildUnavailable");
        let d = Backoff::default().delay(&e, 1);
        assert!(d >= Duration::from_secs(240), "{d:?}");
    }

    #[test]
    fn an_invalid_spec_is_terminal_with_the_invalid_spec_reason() {
        let e = Error::InvalidSpec("spec.roleArn is in another partition".into());
        assert_eq!(e.class(), ErrorClass::Terminal);
        assert_eq!(e.reason(), "InvalidSpec");
        assert_eq!(
            e.to_string(),
            "invalid spec: spec.roleArn is in another partition"
        );
        let d = Backoff::default().delay(&e, 9);
        assert!(
            d >= Duration::from_secs(240) && d <= Duration::from_secs(360),
            "{d:?}"
        );
    }

    #[test]
    fn a_role_not_assumable_yet_is_retried_fast_a_bounded_number_of_times() {
        let b = Backoff::default();
        let e = Error::Aws(crate::aws::error::tests_support::role_not_assumable());
        assert_eq!(e.reason(), "RoleNotAssumableYet");
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert!(b.delay(&e, 1) <= Duration::from_millis(1200));
        // seven fast attempts cover about two minutes of IAM propagation
        let fast: Duration = (1..=7).map(|a| b.delay(&e, a)).sum();
        assert!(fast >= Duration::from_secs(100), "{fast:?}");
        let slow = b.delay(&e, 8);
        assert!(slow >= Duration::from_secs(240), "{slow:?}");
    }

    #[test]
    fn waits_use_their_own_delay_and_keep_their_reason() {
        let e = waiting(30);
        let d = Backoff::default().delay(&e, 7);
        assert!(d >= Duration::from_secs(24) && d <= Duration::from_secs(36));
        assert_eq!(e.reason(), "VersionsAttached");
    }
}
