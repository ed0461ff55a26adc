//! The kube client against the server: create, get, list, update, patch, delete, validation.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_assigns_uid_timestamps_generation_and_generated_names() {
    let s = server().await;
    let api = widgets(&s, "default");
    let w = create_widget(&api, "a", "eu-1a").await;
    assert!(w.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(w.metadata.creation_timestamp.is_some());
    assert_eq!(w.metadata.generation, Some(1));
    assert_eq!(w.spec.size, 3);

    let mut generated = widget("", "eu-1a");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("w-".into());
    let created = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("w-") && name.len() == 7, "{name}");

    let err = status_of(
        api.create(&PostParams::default(), &widget("a", "eu-1a"))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "widgets.test.lmi.dev \"a\" already exists");
}

#[tokio::test]
async fn namespaces_isolate_objects_and_must_exist() {
    let s = server().await;
    let nss: Api<Namespace> = Api::all(s.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap(),
    )
    .await
    .unwrap();
    create_widget(&widgets(&s, "default"), "same", "z").await;
    create_widget(&widgets(&s, "team-a"), "same", "z").await;
    assert_eq!(
        widgets(&s, "team-a")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let all: Api<Widget> = Api::all(s.client());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    let err = status_of(
        widgets(&s, "nope")
            .create(&PostParams::default(), &widget("x", "z"))
            .await,
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
}

#[tokio::test]
async fn get_of_a_missing_object_is_a_404_status() {
    let s = server().await;
    let err = status_of(widgets(&s, "default").get("ghost").await);
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "widgets.test.lmi.dev \"ghost\" not found");
    assert!(
        widgets(&s, "default")
            .get_opt("ghost")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn update_with_a_stale_resource_version_conflicts() {
    let s = server().await;
    let api = widgets(&s, "default");
    let w = create_widget(&api, "a", "z").await;
    let mut first = w.clone();
    first.spec.size = 4;
    api.replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = w;
    stale.spec.size = 5;
    let err = status_of(api.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on widgets.test.lmi.dev \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn schema_errors_are_all_reported_in_one_422() {
    let s = server().await;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        s.client(),
        "default",
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "bad"},
        "spec": {"size": 0, "subnets": ["a", "b", "c", "d"], "mode": "Turbo"}
    }))
    .unwrap();
    let err = status_of(api.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "Widget.test.lmi.dev \"bad\" is invalid: [spec.zone: Required value, spec.mode: Unsupported value: \"Turbo\": supported values: \"Auto\", \"Manual\", \"null\", spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1, spec.subnets: Too many: 4: must have at most 3 items]"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes.len(), 4);
    assert_eq!(causes[3].field, "spec.subnets");
    assert_eq!(causes[3].reason, "FieldValueTooMany");
}

#[tokio::test]
async fn cel_rules_run_including_transition_rules() {
    let s = server().await;
    let api = widgets(&s, "default");
    let mut big = widget("big", "z");
    big.spec.size = 8;
    let err = status_of(api.create(&PostParams::default(), &big).await);
    assert_eq!(
        err.message,
        "Widget.test.lmi.dev \"big\" is invalid: spec: Invalid value: \"object\": sizes above 5 need mode Manual"
    );
    big.spec.mode = Some(Mode::Manual);
    api.create(&PostParams::default(), &big).await.unwrap();

    let patch = Patch::Merge(json!({"spec": {"zone": "elsewhere"}}));
    let err = status_of(api.patch("big", &PatchParams::default(), &patch).await);
    assert_eq!(
        err.message,
        "Widget.test.lmi.dev \"big\" is invalid: spec.zone: Invalid value: \"string\": zone is immutable"
    );
}

#[tokio::test]
async fn unknown_fields_are_pruned_or_refused_by_field_validation() {
    let s = server().await;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        s.client(),
        "default",
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "p"},
        "spec": {"zone": "z", "colour": "red"}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(
        created.data["spec"],
        json!({"zone": "z", "size": 3}),
        "pruned and defaulted"
    );

    let body = serde_json::to_vec(&json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget",
        "metadata": {"name": "q"}, "spec": {"zone": "z", "colour": "red"}}))
    .unwrap();
    let req = http::Request::post(
        "/apis/test.lmi.dev/v1/namespaces/default/widgets?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(body)
    .unwrap();
    let err = status_of(s.client().request::<serde_json::Value>(req).await);
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .ends_with("strict decoding error: unknown field \"spec.colour\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn merge_and_json_patches_apply_and_bump_generation_only_on_spec_changes() {
    let s = server().await;
    let api = widgets(&s, "default");
    create_widget(&api, "a", "z").await;
    let w = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "label change keeps the generation"
    );
    let w = api
        .patch::<()>(
            "a",
            &PatchParams::default(),
            &Patch::Json(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/size", "value": 4}
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!((w.spec.size, w.metadata.generation), (4, Some(2)));
    let w = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2}, "spec": {"size": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(w.spec.size, 4, "status writes ignore spec");
    assert_eq!(w.status.unwrap().observed_generation, Some(2));
    assert_eq!(w.metadata.generation, Some(2));
}

#[tokio::test]
async fn main_resource_writes_ignore_status() {
    let s = server().await;
    let api = widgets(&s, "default");
    let mut w = widget("a", "z");
    w.status = Some(WidgetStatus {
        observed_generation: Some(7),
        ..Default::default()
    });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert!(
        created.status.is_none(),
        "create drops status when a status subresource exists"
    );
    let w = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 7}})),
        )
        .await
        .unwrap();
    assert!(w.status.is_none());
}

#[tokio::test]
async fn list_supports_label_and_field_selectors_and_paging() {
    let s = server().await;
    let api = widgets(&s, "default");
    for i in 0..5 {
        let mut w = widget(&format!("w{i}"), if i % 2 == 0 { "even" } else { "odd" });
        w.metadata.labels = Some([("i".to_string(), i.to_string())].into());
        api.create(&PostParams::default(), &w).await.unwrap();
    }
    let l = api
        .list(&ListParams::default().labels("i in (1,2)"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 2);
    let l = api
        .list(&ListParams::default().fields("spec.zone=even"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 3);
    let l = api
        .list(&ListParams::default().fields("metadata.name=w4"))
        .await
        .unwrap();
    assert_eq!(l.items.len(), 1);
    let err = status_of(api.list(&ListParams::default().fields("spec.size=3")).await);
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "field label not supported: spec.size")
    );

    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(2);
    loop {
        let page = api.list(&lp).await.unwrap();
        names.extend(page.items.iter().map(|w| w.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names, vec!["w0", "w1", "w2", "w3", "w4"]);
}

#[tokio::test]
async fn built_in_kinds_round_trip_and_secrets_get_string_data_encoded() {
    let s = server().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(cms.get("c").await.unwrap().data.unwrap()["k"], "v");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(s.client());
    let sec =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"p": "hunter2"}}))
            .unwrap();
    let got = secrets.create(&PostParams::default(), &sec).await.unwrap();
    assert_eq!(got.data.unwrap()["p"].0, b"hunter2".to_vec());
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    assert!(got.string_data.is_none());
}

#[tokio::test]
async fn cluster_scoped_kinds_live_outside_namespaces() {
    let s = server().await;
    let gizmos: Api<Gizmo> = Api::all(s.client());
    gizmos
        .create(
            &PostParams::default(),
            &Gizmo::new("g", GizmoSpec { note: "hi".into() }),
        )
        .await
        .unwrap();
    assert_eq!(gizmos.get("g").await.unwrap().spec.note, "hi");
    assert!(s.object("test.lmi.dev", "gizmos", "", "g").is_some());
    gizmos.delete("g", &DeleteParams::default()).await.unwrap();
    assert!(gizmos.get_opt("g").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_content() {
    let s = server().await;
    let nss: Api<Namespace> = Api::all(s.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap(),
    )
    .await
    .unwrap();
    create_widget(&widgets(&s, "doomed"), "a", "z").await;
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    assert!(nss.get_opt("doomed").await.unwrap().is_none());
    assert!(s.object("test.lmi.dev", "widgets", "doomed", "a").is_none());
}

#[tokio::test]
async fn deleting_a_crd_stops_serving_its_resource() {
    let s = server().await;
    create_widget(&widgets(&s, "default"), "a", "z").await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(s.client());
    let crd = crds.get("widgets.test.lmi.dev").await.unwrap();
    let established = crd
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    crds.delete("widgets.test.lmi.dev", &DeleteParams::default())
        .await
        .unwrap();
    let err = status_of(widgets(&s, "default").list(&ListParams::default()).await);
    assert_eq!(err.code, 404);
    assert!(s.objects("test.lmi.dev", "widgets").is_empty());
}

#[tokio::test]
async fn leases_support_optimistic_concurrency_for_leader_election() {
    let s = server().await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(s.client(), "kube-system");
    let lease = serde_json::from_value(json!({"metadata": {"name": "lmi-operator"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}}))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut mine = created.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    leases
        .replace("lmi-operator", &PostParams::default(), &mine)
        .await
        .unwrap();
    let mut theirs = created;
    theirs.spec.as_mut().unwrap().holder_identity = Some("pod-c".into());
    let err = status_of(
        leases
            .replace("lmi-operator", &PostParams::default(), &theirs)
            .await,
    );
    assert_eq!(err.code, 409);
    let got = leases.get("lmi-operator").await.unwrap();
    assert_eq!(got.spec.unwrap().holder_identity.as_deref(), Some("pod-b"));
}
