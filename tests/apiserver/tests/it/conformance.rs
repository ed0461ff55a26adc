//! Conformance-style table: one write per row against a fresh object, checking the status code,
//! whether `resourceVersion` moved, and how `metadata.generation` changed — the semantics the
//! operator's observedGeneration logic and watches depend on.

use serde_json::{Value, json};

use crate::support::*;

struct Case {
    name: &'static str,
    method: &'static str,
    /// Path below the widget's URL ("" or "/status").
    sub: &'static str,
    content_type: &'static str,
    /// `{rv}` is replaced with the object's current resourceVersion.
    body: Value,
    query: &'static str,
    code: u16,
    rv_changes: bool,
    generation: i64,
}

fn case(
    name: &'static str,
    method: &'static str,
    sub: &'static str,
    content_type: &'static str,
    body: Value,
) -> Case {
    Case {
        name,
        method,
        sub,
        content_type,
        body,
        query: "",
        code: 200,
        rv_changes: true,
        generation: 1,
    }
}

impl Case {
    fn expect(mut self, code: u16, rv_changes: bool, generation: i64) -> Self {
        (self.code, self.rv_changes, self.generation) = (code, rv_changes, generation);
        self
    }
    fn query(mut self, q: &'static str) -> Self {
        self.query = q;
        self
    }
}

const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json-patch+json";
const SMP: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const PUT: &str = "application/json";

fn full(spec: Value, rv: &str) -> Value {
    json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "w", "resourceVersion": rv}, "spec": spec})
}

fn cases() -> Vec<Case> {
    vec![
        case("label change", "PATCH", "", MERGE, json!({"metadata": {"labels": {"a": "b"}}})).expect(200, true, 1),
        case("annotation via json patch", "PATCH", "", JSON, json!([{"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}}])).expect(200, true, 1),
        case("spec change", "PATCH", "", MERGE, json!({"spec": {"size": 4}})).expect(200, true, 2),
        case("spec set to its current value", "PATCH", "", MERGE, json!({"spec": {"size": 3}})).expect(200, false, 1),
        case("status change", "PATCH", "/status", MERGE, json!({"status": {"observedGeneration": 1}})).expect(200, true, 1),
        case("spec sent to status is ignored", "PATCH", "/status", MERGE, json!({"spec": {"size": 4}})).expect(200, false, 1),
        case("finalizer added", "PATCH", "", MERGE, json!({"metadata": {"finalizers": ["x/y"]}})).expect(200, true, 1),
        case("apply changing spec", "PATCH", "", APPLY, json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"zone": "z", "size": 5}}))
            .query("fieldManager=t&force=true").expect(200, true, 2),
        case("apply conflicting with the creator", "PATCH", "", APPLY, json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"zone": "z", "size": 5}}))
            .query("fieldManager=t").expect(409, false, 1),
        case("strategic merge patch on a CR", "PATCH", "", SMP, json!({"spec": {"size": 4}})).expect(415, false, 1),
        case("json patch test failure", "PATCH", "", JSON, json!([{"op": "test", "path": "/spec/size", "value": 9}])).expect(422, false, 1),
        case("merge patch with a stale resourceVersion", "PATCH", "", MERGE, json!({"metadata": {"resourceVersion": "1"}, "spec": {"size": 4}})).expect(409, false, 1),
        case("put with the current resourceVersion", "PUT", "", PUT, full(json!({"zone": "z", "size": 6, "mode": "Manual"}), "{rv}")).expect(200, true, 2),
        case("put with a stale resourceVersion", "PUT", "", PUT, full(json!({"zone": "z", "size": 6}), "1")).expect(409, false, 1),
        case("put without a resourceVersion", "PUT", "", PUT, full(json!({"zone": "z"}), "")).expect(422, false, 1),
        case("put breaking an immutable field", "PUT", "", PUT, full(json!({"zone": "other"}), "{rv}")).expect(422, false, 1),
        case("put to status keeps spec", "PUT", "/status", PUT, json!({"apiVersion": "test.lmi.dev/v1", "kind": "Widget",
            "metadata": {"name": "w", "resourceVersion": "{rv}"}, "spec": {"zone": "zz", "size": 9}, "status": {"observedGeneration": 1}}))
            .expect(200, true, 1),
        case("unsupported patch type", "PATCH", "", "text/plain", json!({})).expect(415, false, 1),
        case("dry-run spec change", "PATCH", "", MERGE, json!({"spec": {"size": 4}})).query("dryRun=All").expect(200, false, 1),
        case("patch turning the object into a string", "PATCH", "", MERGE, json!("not an object")).expect(400, false, 1),
        case("put of a non-object", "PUT", "", PUT, json!([1, 2])).expect(400, false, 1),
        case("put with metadata of the wrong type", "PUT", "", PUT, json!({"metadata": "w"})).expect(400, false, 1),
    ]
}

async fn send(
    client: &reqwest_like::Client,
    method: &str,
    url: &str,
    ct: &str,
    body: String,
) -> (u16, Value) {
    client.send(method, url, ct, body).await
}

/// A minimal HTTP client over hyper, so the table can send exactly the bytes it means.
mod reqwest_like {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::rt::TokioExecutor;
    use serde_json::Value;

    pub struct Client(
        HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>,
    );

    impl Client {
        pub fn new() -> Self {
            Self(HyperClient::builder(TokioExecutor::new()).build_http())
        }
        pub async fn send(&self, method: &str, url: &str, ct: &str, body: String) -> (u16, Value) {
            let req = http::Request::builder()
                .method(method)
                .uri(url)
                .header("content-type", ct)
                .body(Full::new(bytes::Bytes::from(body)))
                .unwrap();
            let resp = self.0.request(req).await.unwrap();
            let code = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }
    }
}

#[tokio::test]
async fn write_semantics_table() {
    let s = server().await;
    let client = reqwest_like::Client::new();
    let mut failures = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let api = widgets(&s, "default");
        let name = "w";
        let _ = api.delete(name, &Default::default()).await;
        // Clear finalizers left by a previous row so the delete completes.
        if let Ok(Some(_)) = api.get_opt(name).await {
            api.patch(
                name,
                &Default::default(),
                &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
        }
        let before = create_widget(&api, name, "z").await;
        let rv = before.metadata.resource_version.clone().unwrap();
        let url = format!(
            "{}/apis/test.lmi.dev/v1/namespaces/default/widgets/{name}{}?{}",
            s.url(),
            c.sub,
            c.query
        );
        let body = c.body.to_string().replace("{rv}", &rv);
        let (code, resp) = send(&client, c.method, &url, c.content_type, body).await;
        let after = api.get(name).await.unwrap();
        let rv_changed = after.metadata.resource_version.as_deref() != Some(rv.as_str());
        let generation = after.metadata.generation.unwrap_or_default();
        let expected_code = c.code;
        if code != expected_code || rv_changed != c.rv_changes || generation != c.generation {
            failures.push(format!(
                "row {i} {:?}: got code {code} rv_changed {rv_changed} generation {generation}, want {} {} {} ({resp})",
                c.name, expected_code, c.rv_changes, c.generation
            ));
        }
        if code >= 400 {
            assert_eq!(
                resp["kind"], "Status",
                "row {i} {}: errors are Status objects",
                c.name
            );
            assert_eq!(resp["code"], code, "row {i}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn deletion_semantics() {
    let s = server().await;
    let api = widgets(&s, "default");
    let mut w = widget("d", "z");
    w.metadata.finalizers = Some(vec!["a/b".into(), "c/d".into()]);
    api.create(&Default::default(), &w).await.unwrap();
    api.delete("d", &Default::default()).await.unwrap();
    let marked = api.get("d").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.metadata.generation,
        Some(2),
        "marking for deletion bumps the generation"
    );
    // A second delete changes nothing.
    api.delete("d", &Default::default()).await.unwrap();
    assert_eq!(
        api.get("d").await.unwrap().metadata.resource_version,
        marked.metadata.resource_version
    );
    // Removing one finalizer keeps it; removing the last deletes it.
    api.patch(
        "d",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": ["c/d"]}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("d").await.unwrap().is_some());
    api.patch(
        "d",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("d").await.unwrap().is_none());
    // Preconditions.
    create_widget(&api, "p", "z").await;
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let err = status_of(api.delete("p", &dp).await);
    assert_eq!(err.code, 409);
    assert!(
        err.message
            .contains("Precondition failed: UID in precondition: wrong"),
        "{}",
        err.message
    );
}
