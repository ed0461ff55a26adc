//! Server-side apply through kube: field managers, status via apply, conflicts and force.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::*;

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

#[tokio::test]
async fn apply_creates_then_updates_and_records_managed_fields() {
    let s = server().await;
    let api = widgets(&s, "default");
    let cfg = json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "a"}, "spec": {"zone": "z", "size": 2}});
    let w = api
        .patch("a", &apply("gitops"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!((w.spec.size, w.metadata.generation), (2, Some(1)));
    let mf = w.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("gitops"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    assert_eq!(
        mf[0].fields_v1.as_ref().unwrap().0,
        json!({"f:spec": {"f:size": {}, "f:zone": {}}})
    );

    // Re-applying the same configuration is a no-op: same resource version.
    let again = api
        .patch("a", &apply("gitops"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, w.metadata.resource_version);

    // Dropping a field from the configuration removes it (size falls back to its default).
    let cfg2 = json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "a"}, "spec": {"zone": "z"}});
    let w = api
        .patch("a", &apply("gitops"), &Patch::Apply(&cfg2))
        .await
        .unwrap();
    assert_eq!((w.spec.size, w.metadata.generation), (3, Some(2)));
}

#[tokio::test]
async fn status_is_written_by_apply_on_the_status_subresource_with_list_map_merge() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    let ready = json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "a"},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}});
    api.patch_status("a", &apply("controller"), &Patch::Apply(&ready))
        .await
        .unwrap();
    let synced = json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "a"},
        "status": {"conditions": [{"type": "Synced", "status": "False"}]}});
    let w = api
        .patch_status("a", &apply("other"), &Patch::Apply(&synced))
        .await
        .unwrap();
    let st = w.status.unwrap();
    let types: Vec<&str> = st.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        vec!["Ready", "Synced"],
        "conditions merge by type across managers"
    );
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "status changes never bump generation"
    );
    let status_entry = w
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("controller"))
        .unwrap();
    assert_eq!(status_entry.subresource.as_deref(), Some("status"));
}

#[tokio::test]
async fn conflicting_apply_is_a_409_until_forced() {
    let s = server().await;
    let api = widgets(&s, "default");
    let cfg = |size: i32| json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "a"}, "spec": {"zone": "z", "size": size}});
    api.patch("a", &apply("alice"), &Patch::Apply(&cfg(2)))
        .await
        .unwrap();
    let err = status_of(api.patch("a", &apply("bob"), &Patch::Apply(&cfg(4))).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.size"
    );
    let w = api
        .patch("a", &apply("bob").force(), &Patch::Apply(&cfg(4)))
        .await
        .unwrap();
    assert_eq!(w.spec.size, 4);
    // An update by another manager takes ownership; the next apply conflicts with it.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 5}})),
    )
    .await
    .unwrap();
    let err = status_of(api.patch("a", &apply("bob"), &Patch::Apply(&cfg(4))).await);
    assert!(
        err.message.contains("using test.lmi.dev/v1: .spec.size"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn apply_without_a_field_manager_is_refused() {
    let s = server().await;
    let client = s.client();
    let req = http::Request::patch("/apis/test.lmi.dev/v1/namespaces/default/widgets/a")
        .header("content-type", "application/apply-patch+yaml")
        .body(br#"{"apiVersion":"test.lmi.dev/v1","kind":"Widget","metadata":{"name":"a"},"spec":{"zone":"z"}}"#.to_vec())
        .unwrap();
    let err = client.request::<serde_json::Value>(req).await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 400),
        other => panic!("{other:?}"),
    }
}
