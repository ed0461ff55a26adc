//! `kube::runtime::watcher` against the server: list-then-watch, resuming after dropped watches
//! and restarts without missing or repeating events, 410 recovery, bookmarks, initial events.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::time::timeout;

use crate::support::*;

type Events =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Event<Widget>, watcher::Error>> + Send>>;

fn watch(api: Api<Widget>, cfg: watcher::Config) -> Events {
    use kube::runtime::WatchStreamExt;
    watcher::watcher(api, cfg).default_backoff().boxed()
}

/// Next non-init event's (kind, name, size), skipping Init/InitDone bookkeeping.
async fn next_change(events: &mut Events) -> (&'static str, String, i32) {
    loop {
        let ev = timeout(Duration::from_secs(10), events.next())
            .await
            .expect("event within 10s")
            .expect("stream open");
        // Errors (connection refused while restarting, 410 before a relist) are retried by
        // the watcher itself; tests only look at what it delivers.
        let Ok(ev) = ev else { continue };
        match ev {
            Event::Apply(w) => return ("apply", w.metadata.name.unwrap(), w.spec.size),
            Event::Delete(w) => return ("delete", w.metadata.name.unwrap(), w.spec.size),
            Event::InitApply(w) => return ("init", w.metadata.name.unwrap(), w.spec.size),
            Event::Init | Event::InitDone => continue,
        }
    }
}

async fn set_size(api: &Api<Widget>, name: &str, size: i32) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": size}})),
    )
    .await
    .unwrap();
}

async fn run_watcher_across_disruption(
    cfg: watcher::Config,
    disrupt: impl AsyncFnOnce(&lmi_test_apiserver::TestApiServer),
) {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    let mut events = watch(api.clone(), cfg);
    assert_eq!(next_change(&mut events).await, ("init", "a".into(), 3));
    set_size(&api, "a", 4).await;
    assert_eq!(next_change(&mut events).await, ("apply", "a".into(), 4));
    disrupt(&s).await;
    // Changes made while the watch is down must arrive exactly once, in order.
    set_size(&api, "a", 5).await;
    create_widget(&api, "b", "z").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = next_change(&mut events).await;
        if ev.0 == "init" && ev.2 == 4 {
            // A relist may replay the state it already had; it must not go backwards past 4.
            continue;
        }
        seen.push(ev);
    }
    assert!(
        seen.contains(&("apply", "a".into(), 5)) || seen.contains(&("init", "a".into(), 5)),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| e.1 == "b"), "{seen:?}");
    api.delete("b", &DeleteParams::default()).await.unwrap();
    assert_eq!(next_change(&mut events).await.0, "delete");
}

#[tokio::test]
async fn watcher_resumes_after_dropped_watches_without_missing_or_repeating() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    let mut events = watch(api.clone(), watcher::Config::default());
    assert_eq!(next_change(&mut events).await, ("init", "a".into(), 3));
    for size in [4, 5, 1] {
        set_size(&api, "a", size).await;
        assert_eq!(next_change(&mut events).await, ("apply", "a".into(), size));
        s.drop_watches();
    }
    // Writes while no watch is open are replayed from the resource version the watcher holds.
    s.drop_watches();
    set_size(&api, "a", 2).await;
    set_size(&api, "a", 3).await;
    assert_eq!(next_change(&mut events).await, ("apply", "a".into(), 2));
    assert_eq!(next_change(&mut events).await, ("apply", "a".into(), 3));
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(next_change(&mut events).await, ("delete", "a".into(), 3));
}

#[tokio::test]
async fn watcher_survives_a_restart_with_state_kept() {
    run_watcher_across_disruption(watcher::Config::default(), async |s| {
        let before = s.resource_version();
        s.restart(Duration::from_millis(200)).await.unwrap();
        assert_eq!(
            s.resource_version(),
            before,
            "restart keeps state and versions"
        );
    })
    .await;
}

#[tokio::test]
async fn watcher_recovers_from_410_gone_by_relisting() {
    run_watcher_across_disruption(watcher::Config::default(), async |s| {
        s.compact();
        s.drop_watches();
    })
    .await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_end_bookmark() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    create_widget(&api, "b", "z").await;
    let mut events = watch(api.clone(), watcher::Config::default().streaming_lists());
    let mut init = vec![
        next_change(&mut events).await.1,
        next_change(&mut events).await.1,
    ];
    init.sort();
    assert_eq!(init, vec!["a", "b"]);
    set_size(&api, "b", 2).await;
    assert_eq!(next_change(&mut events).await, ("apply", "b".into(), 2));
}

#[tokio::test]
async fn raw_watch_from_a_version_replays_later_changes_and_sends_bookmarks() {
    let s = server().await;
    s.set_bookmark_interval(Duration::from_millis(100));
    let api = widgets(&s, "default");
    let a = create_widget(&api, "a", "z").await;
    let rv = a.metadata.resource_version.unwrap();
    set_size(&api, "a", 4).await;
    let wp = WatchParams::default().timeout(5);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Modified(w) => assert_eq!(w.spec.size, 4),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    let bookmark = timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match bookmark {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
        ),
        other => panic!("expected BOOKMARK, got {other:?}"),
    }

    s.compact();
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let s = server().await;
    let api = widgets(&s, "default");
    let wp = WatchParams::default().timeout(1);
    let stream = api.watch(&wp, "0").await.unwrap();
    let all: Vec<_> = timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("closed after ~1s");
    assert!(all.is_empty());
}

#[tokio::test]
async fn label_selector_watches_see_objects_enter_and_leave() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    let rv = s.resource_version().to_string();
    let wp = WatchParams::default().labels("team=x").timeout(10);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "y"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        stream.try_next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
}
