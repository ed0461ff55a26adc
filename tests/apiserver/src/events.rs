//! core/v1 and events.k8s.io/v1 Events are two views of one storage, as in the API server: the
//! operator's kube `Recorder` writes events.k8s.io/v1, `kubectl describe` reads core/v1.

use serde_json::{Map, Value};

use crate::registry::{Builtin, ResourceType};

/// events.k8s.io/v1 field ↔ core/v1 field.
const FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: Value, from_v1: bool, api_version: &str) -> Value {
    let Value::Object(m) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in m {
        let key = FIELDS
            .iter()
            .find(|(v1, core)| if from_v1 { v1 == &k } else { core == &k })
            .map(|(v1, core)| {
                if from_v1 {
                    core.to_string()
                } else {
                    v1.to_string()
                }
            })
            .unwrap_or(k);
        out.insert(key, v);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// The stored (core/v1) form of an object written through `rt`.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if rt.builtin() == Some(Builtin::EventsV1) {
        rename(obj, true, "v1")
    } else {
        obj
    }
}

/// The form `rt` presents of a stored object.
pub fn from_storage(rt: &ResourceType, obj: Value) -> Value {
    if rt.builtin() == Some(Builtin::EventsV1) {
        rename(obj, false, "events.k8s.io/v1")
    } else {
        obj
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_v1_maps_onto_core_events_and_back() {
        let rt = crate::registry::builtins()
            .into_iter()
            .find(|t| t.group == "events.k8s.io")
            .unwrap();
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Widget", "name": "w"}, "note": "hello", "reason": "R", "reportingController": "ctl"});
        let core = to_storage(&rt, v1.clone());
        assert_eq!(core["involvedObject"]["name"], "w");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "ctl");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(from_storage(&rt, core), v1);
    }
}
