//! The server's shared state: the store, the registry derived from stored CRDs, the broadcast of
//! changes to open watches, and the fault switches. Survives a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::authz::{AuditEvent, Identity};
use crate::faults::Faults;
use crate::registry::Registry;
use crate::store::{Change, ObjKey, Store};

/// How many requests the audit log keeps (a long-running sandbox must not grow without bound).
pub const AUDIT_CAPACITY: usize = 200_000;

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_RESOURCE: &str = "customresourcedefinitions";

/// Tunables.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often open watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

pub struct Shared {
    store: Mutex<Store>,
    registry: RwLock<Arc<Registry>>,
    pub changes: broadcast::Sender<Arc<Change>>,
    /// Bumped to end every open watch.
    pub drop_watches: watch::Sender<u64>,
    pub faults: Mutex<Faults>,
    pub settings: RwLock<Settings>,
    /// `host:port` the server listens on (for discovery's serverAddressByClientCIDRs).
    pub address: RwLock<String>,
    /// Bearer tokens the server issued, and whom they authenticate.
    pub tokens: RwLock<HashMap<String, Identity>>,
    /// The latest requests handled, oldest first (at most [`AUDIT_CAPACITY`]).
    pub audit: Mutex<VecDeque<AuditEvent>>,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        let (changes, _) = broadcast::channel(65_536);
        let (drop_watches, _) = watch::channel(0);
        let shared = Arc::new(Self {
            store: Mutex::new(Store::new()),
            registry: RwLock::new(Arc::new(Registry::new(&[]))),
            changes,
            drop_watches,
            faults: Mutex::new(Faults::default()),
            settings: RwLock::new(Settings::default()),
            address: RwLock::new(String::new()),
            tokens: RwLock::new(HashMap::new()),
            audit: Mutex::new(VecDeque::new()),
        });
        {
            let mut store = shared.lock();
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {
                        "name": ns, "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": crate::util::now(),
                        "labels": {"kubernetes.io/metadata.name": ns},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                });
                store.put(ObjKey::new("", "namespaces", "", ns), obj);
            }
        }
        shared
    }

    /// Locks the store. Never held across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn audit(&self) -> MutexGuard<'_, VecDeque<AuditEvent>> {
        self.audit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends to the audit log, forgetting the oldest entry when it is full.
    pub fn record(&self, event: AuditEvent) {
        let mut log = self.audit();
        if log.len() >= AUDIT_CAPACITY {
            log.pop_front();
        }
        log.push_back(event);
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stores an object and tells open watches (call with the store lock held).
    pub fn put(&self, store: &mut Store, key: ObjKey, object: Value) -> Arc<Change> {
        let is_crd = key.group == CRD_GROUP && key.resource == CRD_RESOURCE;
        let change = store.put(key, object);
        let _ = self.changes.send(change.clone());
        if is_crd {
            self.rebuild_registry(store);
        }
        change
    }

    /// Removes an object and tells open watches (call with the store lock held).
    pub fn remove(&self, store: &mut Store, key: &ObjKey) -> Option<Arc<Change>> {
        let change = store.remove(key)?;
        let _ = self.changes.send(change.clone());
        if key.group == CRD_GROUP && key.resource == CRD_RESOURCE {
            // Deleting a CRD deletes its custom resources.
            if let Some(group) = change.object["spec"]["group"].as_str()
                && let Some(plural) = change.object["spec"]["names"]["plural"].as_str()
            {
                for k in store.keys_of(group, plural) {
                    if let Some(c) = store.remove(&k) {
                        let _ = self.changes.send(c);
                    }
                }
            }
            self.rebuild_registry(store);
        }
        Some(change)
    }

    fn rebuild_registry(&self, store: &Store) {
        let crds: Vec<Value> = store
            .list(CRD_GROUP, CRD_RESOURCE, None)
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect();
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Registry::new(&crds));
    }
}
