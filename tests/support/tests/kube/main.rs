//! The test control plane itself: the real etcd and kube-apiserver start, authenticate the admin
//! and ServiceAccount tokens, judge them by RBAC, audit every request, and stop without leaving
//! a process behind; the proxy in front of them injects faults and drops watches.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use lmi_test_support::kube::{ApiFault, ControlPlane, ControlPlaneOptions, KubeProxy};
use serde_json::json;

async fn plane() -> ControlPlane {
    ControlPlane::start(ControlPlaneOptions::default())
        .await
        .expect("start the control plane")
}

fn object<K: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_is_judged_by_rbac_and_audited() {
    let plane = plane().await;
    let admin = plane.admin_client().await.expect("admin client");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    // The API server made its own namespaces: it is a real one.
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_owned()), "{names:?}");

    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    accounts
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "reader"}})),
        )
        .await
        .expect("create the ServiceAccount");
    let token = plane
        .service_account_token("default", "reader")
        .await
        .expect("a token");
    let reader = plane.client(&token, None).await.expect("reader client");
    let as_reader: Api<Namespace> = Api::all(reader.clone());
    let refused = as_reader.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 403),
        "{refused:?}"
    );

    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "read-namespaces"},
                "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}],
            })),
        )
        .await
        .expect("role");
    Api::<ClusterRoleBinding>::all(admin)
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "reader-reads"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "read-namespaces"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}],
            })),
        )
        .await
        .expect("binding");
    let deadline = Instant::now() + Duration::from_secs(10);
    while as_reader.list(&ListParams::default()).await.is_err() {
        assert!(Instant::now() < deadline, "RBAC never allowed the binding");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let user = "system:serviceaccount:default:reader";
    let audit = plane.audit();
    let refusals: Vec<_> = audit
        .iter()
        .filter(|e| e.user == user && !e.authorized)
        .collect();
    assert!(!refusals.is_empty(), "the refusal is audited");
    assert!(
        refusals
            .iter()
            .all(|e| e.code == 403 && e.resource == "namespaces")
    );
    assert!(
        audit
            .iter()
            .any(|e| e.user == user && e.authorized && e.verb == "list" && e.code == 200),
        "the allowed list is audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_injects_errors_and_ends_watches_which_clients_then_resume() {
    let plane = plane().await;
    let proxy = KubeProxy::start(plane.url(), plane.ca_pem())
        .await
        .expect("proxy");
    let client = plane
        .client(plane.admin_token(), Some(&proxy.url()))
        .await
        .expect("client through the proxy");
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    maps.create(
        &PostParams::default(),
        &object(json!({"metadata": {"name": "a"}})),
    )
    .await
    .expect("create through the proxy");

    proxy.inject(
        ApiFault::status(409)
            .method(http::Method::GET)
            .path_contains("configmaps/a"),
    );
    let conflict = maps.get("a").await.unwrap_err();
    assert!(
        matches!(&conflict, kube::Error::Api(s) if s.code == 409),
        "{conflict:?}"
    );
    assert!(
        maps.get("a").await.is_ok(),
        "a fault fires as often as asked"
    );

    let mut stream = maps
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .expect("watch")
        .boxed();
    let first = stream.try_next().await.expect("event");
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");
    proxy.drop_watches();
    // Bookmarks may still be on the way; then the stream ends.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Bookmark(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends at once");
    assert!(matches!(end, Ok(None)), "{end:?}");

    proxy
        .restart(Duration::from_millis(200))
        .await
        .expect("restart");
    assert!(maps.get("a").await.is_ok(), "serves again after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_control_plane_stops_every_process() {
    let plane = plane().await;
    let dir = plane.dir().to_owned();
    let url = plane.url().to_owned();
    drop(plane);
    assert!(!dir.exists(), "its directory is removed");
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on the API server's port any more"
    );
}
