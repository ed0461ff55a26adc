//! Readiness: what `/readyz` answers.
//!
//! A replica is ready when it does what its role asks of it:
//! - **leader** (or leader election off): every controller's cache has finished its first list
//!   (the reflector store is ready), so reconciles see the whole cluster;
//! - **standby**: it is following the lease and would take over if the leader went away.
//!   A standby must count as ready, or a two-replica Deployment would never finish a rollout
//!   and a PodDisruptionBudget would count the spare as unavailable.
//!
//! Not ready: starting up (before the first lease decision), after losing the lease until the
//! next decision, while the leader's caches fill, and during shutdown.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::{Lookup, Store};

/// How often a cache that is not ready yet is looked at again.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// The role this replica plays right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Starting, shutting down, or between roles.
    Starting,
    /// Following the lease; another replica reconciles.
    Standby,
    /// Running the controllers.
    Leader,
}

#[derive(Debug)]
struct State {
    role: Role,
    /// Bumped every time the controllers start, so that a cache-sync task of an earlier term
    /// cannot mark the current one synced.
    term: u64,
    /// Cache sync by kind, for the current term.
    caches: BTreeMap<&'static str, bool>,
}

/// Shared readiness state (cheap to clone).
#[derive(Clone, Debug)]
pub struct Readiness {
    state: Arc<Mutex<State>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                role: Role::Starting,
                term: 0,
                caches: BTreeMap::new(),
            })),
        }
    }
}

/// Why the replica is not ready, for the `/readyz` body.
#[derive(Debug, PartialEq, Eq)]
pub enum NotReady {
    /// No role yet.
    Starting,
    /// Leading, but these caches have not finished their first list.
    CachesSyncing(Vec<&'static str>),
    /// Leading, but no controller has started yet.
    NoControllers,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Starting => f.write_str("starting: no leadership decision yet"),
            NotReady::CachesSyncing(kinds) => {
                write!(f, "leader: waiting for caches: {}", kinds.join(", "))
            }
            NotReady::NoControllers => f.write_str("leader: controllers not started yet"),
        }
    }
}

impl Readiness {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.lock().role
    }

    /// Enters `role`. Becoming leader starts a new term with no caches; any other role forgets
    /// the caches of the previous term.
    pub fn set_role(&self, role: Role) {
        let mut state = self.lock();
        state.role = role;
        state.term += 1;
        state.caches.clear();
    }

    /// Registers the cache of a controller for `kind` and marks it synced once its first list
    /// is complete. Call it synchronously for every controller before any of them is polled,
    /// so that readiness never sees only some of them.
    pub fn track<K>(&self, kind: &'static str, store: Store<K>)
    where
        K: Lookup + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + Hash + Clone + Send + Sync,
    {
        let term = {
            let mut state = self.lock();
            state.caches.insert(kind, false);
            state.term
        };
        let readiness = self.clone();
        tokio::spawn(async move {
            // Polled again every 100 ms rather than awaited once: kube-runtime's
            // `wait_until_ready` sits on a oneshot receiver that keeps only the last waiter's
            // waker, and the controller waits on the same store, so a single await here can
            // sleep through the store becoming ready. An error means the controller stopped
            // before its cache filled: stay not synced.
            let ready = loop {
                match tokio::time::timeout(RECHECK, store.wait_until_ready()).await {
                    Ok(result) => break result.is_ok(),
                    Err(_elapsed) => continue,
                }
            };
            if ready {
                let mut state = readiness.lock();
                if state.term == term
                    && let Some(synced) = state.caches.get_mut(kind)
                {
                    *synced = true;
                    tracing::info!(kind, "cache synced");
                }
            }
        });
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<Role, NotReady> {
        let state = self.lock();
        match state.role {
            Role::Starting => Err(NotReady::Starting),
            Role::Standby => Ok(Role::Standby),
            Role::Leader if state.caches.is_empty() => Err(NotReady::NoControllers),
            Role::Leader => {
                let waiting: Vec<&'static str> = state
                    .caches
                    .iter()
                    .filter(|(_, synced)| !**synced)
                    .map(|(kind, _)| *kind)
                    .collect();
                if waiting.is_empty() {
                    Ok(Role::Leader)
                } else {
                    Err(NotReady::CachesSyncing(waiting))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn a_starting_replica_is_not_ready_and_a_standby_is() {
        let r = Readiness::default();
        assert_eq!(r.check(), Err(NotReady::Starting));
        r.set_role(Role::Standby);
        assert_eq!(r.check(), Ok(Role::Standby));
    }

    #[tokio::test]
    async fn a_leader_is_ready_only_once_every_cache_has_synced() {
        let r = Readiness::default();
        r.set_role(Role::Leader);
        assert_eq!(r.check(), Err(NotReady::NoControllers));

        let (a_reader, mut a_writer) = reflector::store::<ConfigMap>();
        let (b_reader, mut b_writer) = reflector::store::<ConfigMap>();
        r.track("A", a_reader);
        r.track("B", b_reader);
        settle().await;
        assert_eq!(r.check(), Err(NotReady::CachesSyncing(vec!["A", "B"])));

        a_writer.apply_watcher_event(&Event::Init);
        a_writer.apply_watcher_event(&Event::InitDone);
        settle().await;
        assert_eq!(r.check(), Err(NotReady::CachesSyncing(vec!["B"])));

        b_writer.apply_watcher_event(&Event::Init);
        b_writer.apply_watcher_event(&Event::InitDone);
        settle().await;
        assert_eq!(r.check(), Ok(Role::Leader));
    }

    #[tokio::test]
    async fn a_cache_is_seen_synced_while_the_controller_waits_on_it_too() {
        let r = Readiness::default();
        r.set_role(Role::Leader);
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        r.track("A", reader.clone());
        settle().await;
        // The controller's applier waits on the same store after readiness does.
        let controller = tokio::spawn(async move { reader.wait_until_ready().await.is_ok() });
        settle().await;
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        assert!(controller.await.expect("controller task"));
        tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while r.check() != Ok(Role::Leader) {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("readiness saw the cache synced");
    }

    #[tokio::test]
    async fn a_cache_of_an_earlier_term_does_not_make_a_new_term_ready() {
        let r = Readiness::default();
        r.set_role(Role::Leader);
        let (old_reader, mut old_writer) = reflector::store::<ConfigMap>();
        r.track("A", old_reader);
        // The lease is lost and won again before the old cache finishes its list.
        r.set_role(Role::Standby);
        r.set_role(Role::Leader);
        let (new_reader, _new_writer) = reflector::store::<ConfigMap>();
        r.track("A", new_reader);
        old_writer.apply_watcher_event(&Event::Init);
        old_writer.apply_watcher_event(&Event::InitDone);
        settle().await;
        assert_eq!(r.check(), Err(NotReady::CachesSyncing(vec!["A"])));
    }
}
