//! Watches: newline-delimited JSON events streamed from a resource version (replayed from the
//! store's history, `410 Gone` as an ERROR event when it is compacted), `sendInitialEvents` with
//! the `k8s.io/initial-events-end` bookmark, periodic bookmarks, `timeoutSeconds`, label-selector
//! transitions, and an external switch that drops every open watch.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::reads::{Filter, present};
use crate::registry::ResourceType;
use crate::state::Shared;
use crate::status::{ApiError, ApiResult};
use crate::store::{Change, EventType};
use crate::table;

/// Parsed watch parameters.
pub struct WatchParams {
    pub namespace: Option<String>,
    pub filter: Filter,
    pub resource_version: String,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub table: bool,
}

impl WatchParams {
    pub fn parse(
        rt: &ResourceType,
        namespace: Option<String>,
        q: &HashMap<String, String>,
        table: bool,
    ) -> ApiResult<Self> {
        let timeout = match q.get("timeoutSeconds") {
            Some(t) => Duration::from_secs(
                t.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t}")))?,
            ),
            None => Duration::from_secs(1800),
        };
        let send_initial_events = crate::util::flag(q, "sendInitialEvents");
        if send_initial_events
            && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
        {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                &[crate::status::FieldError::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
                )],
            ));
        }
        Ok(Self {
            namespace: namespace.filter(|_| rt.namespaced),
            filter: Filter::parse(rt, q)?,
            resource_version: q.get("resourceVersion").cloned().unwrap_or_default(),
            send_initial_events,
            bookmarks: crate::util::flag(q, "allowWatchBookmarks"),
            timeout,
            table,
        })
    }
}

struct Encoder {
    rt: ResourceType,
    table: bool,
    columns_sent: bool,
}

impl Encoder {
    fn event(&mut self, ty: &str, obj: &Value) -> Bytes {
        let object = if self.table && ty != "BOOKMARK" && ty != "ERROR" {
            let with_columns = !self.columns_sent;
            self.columns_sent = true;
            table::table(
                &self.rt,
                std::slice::from_ref(obj),
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                with_columns,
            )
        } else if ty == "ERROR" {
            obj.clone()
        } else {
            present(&self.rt, obj.clone())
        };
        let mut line = json!({"type": ty, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
    fn bookmark(&mut self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.event("BOOKMARK", &json!({"metadata": meta}))
    }
}

/// What an event means for this watch (label/field-selector transitions included).
fn translate(p: &WatchParams, rt: &ResourceType, c: &Change) -> Option<(&'static str, Value)> {
    if (c.key.group.as_str(), c.key.resource.as_str()) != rt.storage() {
        return None;
    }
    if p.namespace
        .as_ref()
        .is_some_and(|ns| *ns != c.key.namespace)
    {
        return None;
    }
    let now = p.filter.matches(&present(rt, c.object.clone()));
    let before = c
        .previous
        .as_ref()
        .is_some_and(|o| p.filter.matches(&present(rt, o.clone())));
    match c.kind {
        EventType::Added if now => Some(("ADDED", c.object.clone())),
        EventType::Modified if now && before => Some(("MODIFIED", c.object.clone())),
        EventType::Modified if now => Some(("ADDED", c.object.clone())),
        EventType::Modified if before => Some(("DELETED", c.object.clone())),
        EventType::Deleted if before => Some(("DELETED", c.object.clone())),
        _ => None,
    }
}

/// Starts a watch; the response streams until timeout, client hang-up, or a dropped-watch fault.
pub fn watch(shared: Arc<Shared>, rt: ResourceType, p: WatchParams) -> ApiResult<Response> {
    let mut enc = Encoder {
        rt: rt.clone(),
        table: p.table,
        columns_sent: false,
    };
    let mut first: Vec<Bytes> = Vec::new();
    let (rx, start_rv, expired) = {
        let store = shared.lock();
        let current = store.current_rv();
        let from_now =
            p.send_initial_events || p.resource_version.is_empty() || p.resource_version == "0";
        let mut expired = false;
        if from_now {
            for (k, obj) in store.list(&rt.group, &rt.plural, p.namespace.as_deref()) {
                if p.namespace.as_ref().is_none_or(|ns| *ns == k.namespace) && p.filter.matches(obj)
                {
                    first.push(enc.event("ADDED", obj));
                }
            }
            if p.send_initial_events && p.bookmarks {
                first.push(enc.bookmark(current, true));
            }
        } else {
            let from: u64 = p.resource_version.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {}", p.resource_version))
            })?;
            match store.changes_since(from) {
                Some(changes) => {
                    for c in changes {
                        if let Some((ty, obj)) = translate(&p, &rt, &c) {
                            first.push(enc.event(ty, &obj));
                        }
                    }
                }
                None => {
                    let status = ApiError::gone(format!(
                        "too old resource version: {from} ({})",
                        store.oldest_resumable()
                    ))
                    .to_status();
                    first.push(enc.event("ERROR", &status));
                    expired = true;
                }
            }
        }
        (shared.changes.subscribe(), current, expired)
    };
    let (tx, body_rx) = mpsc::channel::<Bytes>(256);
    let bookmark_every = shared.settings().bookmark_interval;
    let drop_rx = shared.drop_watches.subscribe();
    tokio::spawn(stream_events(
        shared,
        rt,
        p,
        enc,
        first,
        rx,
        drop_rx,
        tx,
        start_rv,
        expired,
        bookmark_every,
    ));
    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn stream_events(
    shared: Arc<Shared>,
    rt: ResourceType,
    p: WatchParams,
    mut enc: Encoder,
    first: Vec<Bytes>,
    mut rx: broadcast::Receiver<Arc<Change>>,
    mut drop_rx: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
    start_rv: u64,
    expired: bool,
    bookmark_every: Duration,
) {
    for b in first {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    if expired {
        return;
    }
    let mut last_rv = start_rv;
    let deadline = tokio::time::sleep(p.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(bookmark_every);
    ticker.tick().await;
    drop_rx.mark_unchanged();
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = drop_rx.changed() => return,
            _ = tx.closed() => return,
            msg = rx.recv() => match msg {
                Ok(c) => {
                    if c.rv <= last_rv {
                        continue;
                    }
                    last_rv = c.rv;
                    if let Some((ty, obj)) = translate(&p, &rt, &c)
                        && tx.send(enc.event(ty, &obj)).await.is_err()
                    {
                        return;
                    }
                }
                // Too slow to keep up: end the watch; the client resumes from its last version.
                Err(_) => return,
            },
            _ = ticker.tick(), if p.bookmarks => {
                let current = shared.lock().current_rv();
                loop {
                    match rx.try_recv() {
                        Ok(c) => {
                            if c.rv <= last_rv {
                                continue;
                            }
                            last_rv = c.rv;
                            if let Some((ty, obj)) = translate(&p, &rt, &c)
                                && tx.send(enc.event(ty, &obj)).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(_) => return,
                    }
                }
                last_rv = last_rv.max(current);
                if tx.send(enc.bookmark(last_rv, false)).await.is_err() {
                    return;
                }
            }
        }
    }
}
