//! Bearer tokens, RBAC from stored ClusterRoles, Roles and bindings, and the audit log, through
//! the real kube client and kubectl.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use lmi_test_apiserver::{ADMIN, TestApiServer};
use serde_json::json;

const SA: &str = "system:serviceaccount:ops:robot";

async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// A server with namespaces `ops` and `team`, and the robot's token.
async fn server() -> (TestApiServer, String) {
    let server = TestApiServer::start().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(server.client());
    for ns in ["ops", "team"] {
        create(&namespaces, json!({"metadata": {"name": ns}})).await;
    }
    let token = server.service_account_token("ops", "robot");
    (server, token)
}

fn forbidden(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => s.message,
        other => panic!("expected a 403, got {other:?}"),
    }
}

#[tokio::test]
async fn a_service_account_may_do_only_what_its_bindings_grant() {
    let (server, token) = server().await;
    let robot = server.client_with_token(&token).unwrap();
    let admin = server.client();

    let cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "team");
    let e = cms.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(
        forbidden(e),
        format!(
            "configmaps is forbidden: User \"{SA}\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""
        )
    );

    create(
        &Api::<ClusterRole>::all(admin.clone()),
        json!({"metadata": {"name": "cm-reader"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
    )
    .await;
    create(
        &Api::<ClusterRoleBinding>::all(admin.clone()),
        json!({"metadata": {"name": "robot-reads"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ops"}]}),
    )
    .await;
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Reading is granted, writing is not.
    let e = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(forbidden(e).contains("cannot create resource \"configmaps\""));

    // A binding for another service account grants this one nothing.
    let leases: Api<Lease> = Api::namespaced(robot.clone(), "ops");
    create(
        &Api::<Role>::namespaced(admin.clone(), "ops"),
        json!({"metadata": {"name": "lease"},
               "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                          "resourceNames": ["leader"], "verbs": ["get", "patch"]},
                         {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), "ops"),
        json!({"metadata": {"name": "other"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lease"},
               "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": "ops"}]}),
    )
    .await;
    let e = leases.get_opt("leader").await.unwrap_err();
    assert!(forbidden(e).contains("cannot get resource \"leases\""));

    // Bound: the named Lease only, in its namespace only.
    create(
        &Api::<RoleBinding>::namespaced(admin.clone(), "ops"),
        json!({"metadata": {"name": "robot"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lease"},
               "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ops"}]}),
    )
    .await;
    create(
        &leases,
        json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
    )
    .await;
    leases
        .patch(
            "leader",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .unwrap();
    assert!(leases.get("leader").await.is_ok());
    let e = leases.get("other").await.unwrap_err();
    assert!(forbidden(e).starts_with("leases.coordination.k8s.io \"other\" is forbidden"));
    let e = Api::<Lease>::namespaced(robot, "team")
        .get("leader")
        .await
        .unwrap_err();
    assert!(forbidden(e).ends_with("in the namespace \"team\""));
}

#[tokio::test]
async fn discovery_is_open_to_every_authenticated_user_and_unknown_tokens_are_refused() {
    let (server, token) = server().await;
    let robot = server.client_with_token(&token).unwrap();
    robot.apiserver_version().await.unwrap();
    kube::discovery::Discovery::new(robot).run().await.unwrap();

    let stranger = server.client_with_token("not-issued").unwrap();
    match stranger.apiserver_version().await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized")),
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_and_the_answer() {
    let (server, token) = server().await;
    server.clear_audit();
    let robot = server.client_with_token(&token).unwrap();
    let _ = Api::<ConfigMap>::namespaced(robot, "team")
        .get("c")
        .await
        .unwrap_err();
    let _ = Api::<ConfigMap>::namespaced(server.client(), "team")
        .get("c")
        .await
        .unwrap_err();
    let audit = server.audit();
    let seen: Vec<(&str, &str, &str, &str, &str, u16)> = audit
        .iter()
        .map(|e| {
            let a = &e.attributes;
            (
                e.user.as_str(),
                a.verb.as_str(),
                a.resource.as_str(),
                a.namespace.as_str(),
                a.name.as_str(),
                e.code,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (SA, "get", "configmaps", "team", "c", 403),
            (ADMIN, "get", "configmaps", "team", "c", 404),
        ]
    );
}

/// kubectl (client-go) sends credentials only over TLS, so against this plain-HTTP server it
/// always acts as the admin; kube-rs sends the token, which is what a kubeconfig with a token is
/// for (`lmi-operator run` in the end-to-end tests).
#[tokio::test]
async fn a_kubeconfig_with_a_token_authenticates_a_kube_client() {
    let (server, token) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig_with_token(&path, &token).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let e = Api::<ConfigMap>::namespaced(client, "team")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(forbidden(e).contains(&format!("User \"{SA}\" cannot list")));
}
