//! Leader election on a `coordination.k8s.io/v1` Lease, through `kube-lease-manager`: only the
//! replica holding the lease runs the controllers.
//!
//! - **Standby**: follows the lease; when the holder stops renewing, takes it over once it has
//!   expired (at most one lease duration after the holder's last renewal, plus up to a second of
//!   jitter that keeps two standbys from colliding).
//! - **Leader**: runs the controllers and renews the lease `grace` before it expires. When it
//!   cannot confirm the lease (another replica holds it, or renewing fails), it stops the
//!   controllers at once — in-flight reconciles are dropped, which is safe because every
//!   reconcile converges from any point (DESIGN §4) — and goes back to standby with a fresh lease
//!   manager. Renewal requests have their own short timeouts (see [`request_timeout`]), so a hung
//!   API server surfaces as an error before the lease could expire under a standby.
//! - **Shutdown** (SIGTERM): a leader stops the controllers gracefully (in-flight reconciles
//!   finish), keeps renewing meanwhile, then releases the lease so a standby need not wait for
//!   it to expire.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

use super::health::{Readiness, Role};
use crate::metrics::Metrics;

/// Field manager prefix for the Lease (one manager per identity, as server-side apply needs).
const FIELD_MANAGER_PREFIX: &str = "lmi-operator-leader";

/// Leader election settings.
#[derive(Clone)]
pub struct LeaderElection {
    /// Client for the Lease alone: its requests should time out well within `grace`.
    pub client: Client,
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's).
    pub namespace: String,
    /// This replica's identity in `spec.holderIdentity`; unique per process.
    pub identity: String,
    /// How long a lease stays valid after its last renewal.
    pub duration: Duration,
    /// How long before expiry the leader renews.
    pub grace: Duration,
}

/// Invalid leader election timings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimingError {
    /// Durations are whole seconds on a Lease.
    #[error("{0} must be a whole number of seconds")]
    NotWholeSeconds(&'static str),
    /// The lease must last at least 2 s.
    #[error("the lease duration must be at least 2s")]
    TooShort,
    /// Renewal must happen before expiry and not at the same moment as acquisition.
    #[error("the renewal grace must be at least 1s and shorter than the lease duration")]
    BadGrace,
}

/// Checks lease timings (kube-lease-manager panics on some of them; here they are a clear error).
pub fn check_timings(duration: Duration, grace: Duration) -> Result<(), TimingError> {
    if duration.subsec_nanos() != 0 {
        return Err(TimingError::NotWholeSeconds("the lease duration"));
    }
    if grace.subsec_nanos() != 0 {
        return Err(TimingError::NotWholeSeconds("the renewal grace"));
    }
    if duration < Duration::from_secs(2) {
        return Err(TimingError::TooShort);
    }
    if grace < Duration::from_secs(1) || grace >= duration {
        return Err(TimingError::BadGrace);
    }
    Ok(())
}

/// Timeout for each Lease request: a renewal (a patch and a read) must fail fast enough to step
/// down before the lease expires, so half the grace, and at least a second.
pub fn request_timeout(grace: Duration) -> Duration {
    (grace / 2).max(Duration::from_secs(1))
}

/// How a leadership term ended.
enum TermEnd {
    /// Shutdown was asked and the controllers stopped.
    Shutdown,
    /// The lease could not be confirmed; controllers were dropped.
    Lost,
    /// The controllers returned on their own (a bug or a dead client).
    WorkEnded,
}

/// A future that resolves when the controllers should stop.
pub type StopSignal = BoxFuture<'static, ()>;

impl LeaderElection {
    async fn manager(&self) -> kube_lease_manager::Result<LeaseManager> {
        LeaseManagerBuilder::new(self.client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_field_manager(format!("{FIELD_MANAGER_PREFIX}-{}", self.identity))
            .with_duration(self.duration.as_secs())
            .with_grace(self.grace.as_secs())
            .build()
            .await
    }

    /// Builds a lease manager, retrying until it works or `shutdown` resolves (`None`).
    async fn manager_until<S: Future<Output = ()> + Unpin>(
        &self,
        shutdown: &mut S,
    ) -> Option<LeaseManager> {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.manager().await {
                Ok(m) => return Some(m),
                Err(error) => {
                    tracing::warn!(%error, lease = %self.lease_name, namespace = %self.namespace,
                        retry_in = ?delay, "cannot set up the leader lease");
                }
            }
            tokio::select! {
                _ = &mut *shutdown => return None,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.duration);
        }
    }

    /// Runs `lead` whenever this replica holds the lease, until `shutdown` resolves.
    ///
    /// `lead` gets a signal to stop gracefully (shutdown); when the lease is lost its future is
    /// dropped instead. Returns an error only if the controllers end on their own.
    pub async fn run<F, Fut>(
        self,
        readiness: Readiness,
        metrics: Arc<Metrics>,
        shutdown: impl Future<Output = ()> + Send,
        mut lead: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut(StopSignal) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut shutdown = pin!(shutdown.fuse());
        tracing::info!(identity = %self.identity, lease = %self.lease_name,
            namespace = %self.namespace, "leader election: standing by");
        loop {
            readiness.set_role(Role::Starting);
            let Some(manager) = self.manager_until(&mut shutdown).await else {
                return Ok(());
            };
            readiness.set_role(Role::Standby);

            // Standby until the lease is ours.
            let acquired = tokio::select! {
                _ = &mut shutdown => false,
                acquired = self.acquire(&manager) => acquired,
            };
            if !acquired {
                readiness.set_role(Role::Starting);
                return Ok(());
            }

            tracing::info!(identity = %self.identity, "leader election: acquired the lease, starting controllers");
            metrics.leader.set(1);
            readiness.set_role(Role::Leader);
            let end = self.lead(&manager, &mut shutdown, &mut lead).await;
            metrics.leader.set(0);
            readiness.set_role(Role::Starting);
            match end {
                TermEnd::Shutdown => {
                    match manager.release().await {
                        Ok(()) => {
                            tracing::info!(identity = %self.identity, "leader election: released the lease")
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not release the lease; it expires on its own")
                        }
                    }
                    return Ok(());
                }
                TermEnd::Lost => {
                    tracing::warn!(identity = %self.identity, "leader election: lost the lease, controllers stopped");
                    // A fresh manager next time round: this one may believe it still leads.
                }
                TermEnd::WorkEnded => {
                    if let Err(error) = manager.release().await {
                        tracing::warn!(%error, "could not release the lease");
                    }
                    anyhow::bail!("the controllers stopped unexpectedly");
                }
            }
        }
    }

    /// Waits until this replica holds the lease; errors are logged and retried.
    async fn acquire(&self, manager: &LeaseManager) -> bool {
        let mut delay = Duration::from_millis(500);
        loop {
            match manager.changed().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?delay, "leader election: cannot read the lease");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.duration);
                }
            }
        }
    }

    /// One leadership term: runs `lead` while renewing the lease.
    async fn lead<S, F, Fut>(
        &self,
        manager: &LeaseManager,
        shutdown: &mut S,
        lead: &mut F,
    ) -> TermEnd
    where
        S: Future<Output = ()> + Unpin + futures::future::FusedFuture,
        F: FnMut(StopSignal) -> Fut,
        Fut: Future<Output = ()>,
    {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let stop: StopSignal = async move {
            // An error means the sender is gone: stop as well.
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
        .boxed();
        let mut work = pin!(lead(stop));
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = &mut work => {
                    return if stopping { TermEnd::Shutdown } else { TermEnd::WorkEnded };
                }
                _ = &mut *shutdown, if !stopping && !shutdown.is_terminated() => {
                    tracing::info!("shutting down: letting in-flight reconciles finish");
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
                held = manager.changed() => match held {
                    Ok(true) => {}
                    Ok(false) => return TermEnd::Lost,
                    Err(error) => {
                        tracing::warn!(%error, "leader election: cannot renew the lease");
                        return TermEnd::Lost;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_timings_are_checked_instead_of_panicking() {
        let s = Duration::from_secs;
        assert_eq!(check_timings(s(15), s(5)), Ok(()));
        assert_eq!(check_timings(s(2), s(1)), Ok(()));
        assert_eq!(check_timings(s(1), s(0)), Err(TimingError::TooShort));
        assert_eq!(check_timings(s(10), s(10)), Err(TimingError::BadGrace));
        assert_eq!(check_timings(s(10), s(0)), Err(TimingError::BadGrace));
        assert!(matches!(
            check_timings(Duration::from_millis(2500), s(1)),
            Err(TimingError::NotWholeSeconds(_))
        ));
    }

    #[test]
    fn renewal_requests_time_out_within_the_grace() {
        assert_eq!(
            request_timeout(Duration::from_secs(5)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            request_timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
