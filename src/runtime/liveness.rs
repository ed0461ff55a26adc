//! Liveness: what `/healthz` answers.
//!
//! The process is alive while its reconciles make progress. A reconcile that hangs (a call that
//! never returns, a lock never released) holds one of the controller's concurrency slots; once
//! every slot hangs, nothing is reconciled again while the process still answers HTTP. Each
//! reconcile is bounded by `--reconcile-timeout`, so this should never happen; the watchdog is
//! the backstop for what a timeout cannot interrupt (blocking code on the runtime's threads):
//! `/healthz` fails when reconciles are in flight and none has finished for `--stall-timeout`,
//! and the kubelet restarts the container.
//!
//! Idle is not stalled: a standby, or a leader with nothing to do, has nothing in flight.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Progress {
    /// Reconciles started and not finished.
    in_flight: usize,
    /// When a reconcile last finished, or work started after an idle spell.
    last: Instant,
}

/// Shared liveness state (cheap to clone).
#[derive(Clone, Debug)]
pub struct Liveness {
    progress: Arc<Mutex<Progress>>,
    stall_after: Duration,
}

/// Why `/healthz` fails.
#[derive(Debug, PartialEq, Eq)]
pub struct Stalled {
    /// Reconciles in flight.
    pub in_flight: usize,
    /// How long none has finished.
    pub for_: Duration,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stalled: {} reconciles in flight and none finished for {}s",
            self.in_flight,
            self.for_.as_secs()
        )
    }
}

impl Liveness {
    /// Fails once reconciles are in flight and none has finished for `stall_after`.
    pub fn new(stall_after: Duration) -> Self {
        Self {
            progress: Arc::new(Mutex::new(Progress {
                in_flight: 0,
                last: Instant::now(),
            })),
            stall_after,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a reconcile in flight until the returned guard is dropped (finished, failed,
    /// timed out or cancelled alike).
    pub fn reconciling(&self) -> InFlight {
        let mut progress = self.lock();
        if progress.in_flight == 0 {
            progress.last = Instant::now();
        }
        progress.in_flight += 1;
        InFlight(self.clone())
    }

    /// `Ok` while alive, else why not.
    pub fn check(&self) -> Result<(), Stalled> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), Stalled> {
        let progress = self.lock();
        let idle_for = now.saturating_duration_since(progress.last);
        if progress.in_flight > 0 && idle_for > self.stall_after {
            Err(Stalled {
                in_flight: progress.in_flight,
                for_: idle_for,
            })
        } else {
            Ok(())
        }
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new(Duration::from_secs(900))
    }
}

/// A reconcile in flight (see [`Liveness::reconciling`]).
#[derive(Debug)]
pub struct InFlight(Liveness);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut progress = self.0.lock();
        progress.in_flight = progress.in_flight.saturating_sub(1);
        progress.last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(60);

    #[test]
    fn idle_is_alive_however_long() {
        let l = Liveness::new(STALL);
        assert_eq!(l.check_at(Instant::now() + STALL * 10), Ok(()));
    }

    #[test]
    fn work_that_finishes_nothing_for_too_long_is_stalled() {
        let l = Liveness::new(STALL);
        let hung = l.reconciling();
        let start = Instant::now();
        assert_eq!(l.check_at(start + STALL / 2), Ok(()));
        let stalled = l.check_at(start + STALL * 2).expect_err("stalled");
        assert_eq!(stalled.in_flight, 1);
        assert!(stalled.to_string().contains("1 reconciles in flight"));
        drop(hung);
        assert_eq!(l.check_at(Instant::now() + STALL / 2), Ok(()));
    }

    #[test]
    fn a_finished_reconcile_beside_a_hung_one_is_progress() {
        let l = Liveness::new(STALL);
        let _hung = l.reconciling();
        drop(l.reconciling());
        let finished = Instant::now();
        assert_eq!(l.check_at(finished + STALL / 2), Ok(()));
        assert!(l.check_at(finished + STALL * 2).is_err());
    }

    #[test]
    fn work_starting_after_an_idle_spell_starts_the_clock() {
        let l = Liveness::new(STALL);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        let _busy = l.reconciling();
        // Idle time before the work began does not count against it.
        assert_eq!(
            l.check_at(started + STALL - Duration::from_millis(10)),
            Ok(())
        );
    }
}
