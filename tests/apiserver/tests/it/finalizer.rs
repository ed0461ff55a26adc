//! The finalizer flow of `kube::runtime::finalizer`, as the operator runs it: the finalizer is
//! added, delete only marks the object, cleanup removes the finalizer and the object goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use serde_json::json;

use crate::support::*;

const FINALIZER: &str = "test.lmi.dev/cleanup";

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[tokio::test]
async fn finalizer_holds_deletion_until_cleanup_removes_it() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    let applied = Arc::new(AtomicUsize::new(0));
    let cleaned = Arc::new(AtomicUsize::new(0));
    let run = |w: Widget| {
        let (api, applied, cleaned) = (api.clone(), applied.clone(), cleaned.clone());
        async move {
            finalizer(&api, FINALIZER, Arc::new(w), |ev| async move {
                match ev {
                    Event::Apply(_) => applied.fetch_add(1, Ordering::SeqCst),
                    Event::Cleanup(_) => cleaned.fetch_add(1, Ordering::SeqCst),
                };
                Ok::<_, Never>(Action::await_change())
            })
            .await
            .unwrap()
        }
    };

    // First pass adds the finalizer (a JSON patch with a `test` op), without reconciling.
    run(api.get("a").await.unwrap()).await;
    let w = api.get("a").await.unwrap();
    assert_eq!(
        w.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_string()][..])
    );
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "finalizers are metadata: no generation bump"
    );
    run(w).await;
    assert_eq!(applied.load(Ordering::SeqCst), 1);

    // Delete only marks the object while the finalizer is there.
    api.delete("a", &DeleteParams::background()).await.unwrap();
    let w = api.get("a").await.unwrap();
    assert!(w.metadata.deletion_timestamp.is_some());
    let err = status_of(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [FINALIZER, "other/new"]}})),
        )
        .await,
    );
    assert_eq!(err.code, 422, "no new finalizers while deleting");

    run(w).await;
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    assert!(
        api.get_opt("a").await.unwrap().is_none(),
        "gone once the last finalizer is removed"
    );
}
