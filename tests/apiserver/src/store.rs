//! The object store: every object by group/resource/namespace/name, one global resource-version
//! counter (like etcd's revision), and a bounded history of changes that watches replay from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

/// Where an object lives: its group, resource (plural), namespace ("" when cluster-scoped), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as stored in the history and broadcast to open watches.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    /// The object after the change (for `Deleted`, its last state with the deletion's version).
    pub object: Value,
    /// The object before the change (for label-selector transitions on watches).
    pub previous: Option<Value>,
}

/// How many changes watches can resume from before they get `410 Gone`.
pub const DEFAULT_HISTORY: usize = 10_000;

#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches may start from any version >= this one (versions below are compacted).
    oldest_resumable: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY,
            oldest_resumable: 1,
        }
    }
    pub fn current_rv(&self) -> u64 {
        self.rv
    }
    pub fn oldest_resumable(&self) -> u64 {
        self.oldest_resumable
    }
    /// Forget the history: watches from any earlier version get `410 Gone`.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_resumable = self.rv;
    }
    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }
    /// Objects of one resource, optionally in one namespace, in key order.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<(&ObjKey, &Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.group == group
                    && k.resource == resource
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .collect()
    }
    /// Keys of every namespaced object in `namespace`.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect()
    }
    pub fn keys_of(&self, group: &str, resource: &str) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|k| k.group == group && k.resource == resource)
            .cloned()
            .collect()
    }
    /// Changes after `rv` (exclusive), or `None` when `rv` is older than the retained history.
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.oldest_resumable {
            return None;
        }
        Some(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, change: Change) -> Arc<Change> {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_resumable = dropped.rv;
            }
        }
        change
    }

    /// Stores a new or changed object, stamping its `metadata.resourceVersion`.
    pub fn put(&mut self, key: ObjKey, mut object: Value) -> Arc<Change> {
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let previous = self.objects.insert(key.clone(), object.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv,
            kind,
            key,
            object,
            previous,
        })
    }

    /// Removes an object; the `Deleted` change carries its final state at a new version.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Arc<Change>> {
        let mut object = self.objects.remove(key)?;
        let previous = Some(object.clone());
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        Some(self.record(Change {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            object,
            previous,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_increase_and_history_replays_after_a_version() {
        let mut s = Store::new();
        let k = ObjKey::new("", "configmaps", "default", "a");
        let c1 = s.put(k.clone(), json!({"metadata": {"name": "a"}}));
        let c2 = s.put(k.clone(), json!({"metadata": {"name": "a"}}));
        assert!(c2.rv > c1.rv);
        assert_eq!(c1.kind, EventType::Added);
        assert_eq!(c2.kind, EventType::Modified);
        let since = s.changes_since(c1.rv).unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].rv, c2.rv);
        s.compact();
        assert!(s.changes_since(c1.rv).is_none());
        assert!(s.changes_since(s.current_rv()).unwrap().is_empty());
    }
}
