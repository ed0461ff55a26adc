//! The real kubectl v1.35 (fetched by scripts/fetch-tools into .tools/bin) against the server:
//! apply (client-side and server-side), get with printer columns, -o yaml, describe, wait,
//! delete, explain, create namespace, and invalid manifests refused with the server's message.

use std::path::{Path, PathBuf};
use std::process::Output;

use kube::CustomResourceExt;
use lmi_test_apiserver::TestApiServer;

use crate::support::*;

fn kubectl_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl not found at {}: run scripts/fetch-tools (scripts/test does it first)",
        p.display()
    );
    p
}

pub struct Kubectl {
    pub server: TestApiServer,
    dir: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl against a server with the test CRDs (Widget, Gizmo).
    pub async fn new() -> Self {
        kubectl_path();
        Self {
            server: server().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// kubectl against a server with no CRDs.
    pub async fn empty() -> Self {
        kubectl_path();
        Self {
            server: TestApiServer::start().await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs kubectl on a blocking thread (the server runs on this test's runtime).
    pub async fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let kubeconfig = self.server.kubeconfig_path();
        let cache = self.dir.path().join("cache");
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(kubectl_path())
                .args(&args)
                .env("KUBECONFIG", kubeconfig)
                .env("KUBECACHEDIR", cache)
                .env("HOME", "/nonexistent")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// Runs kubectl and expects success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout.into_owned()
    }

    /// Runs kubectl and expects failure; returns stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

const WIDGET: &str = "apiVersion: test.lmi.dev/v1
kind: Widget
metadata:
  name: w1
spec:
  zone: eu-1a
";

#[tokio::test]
async fn kubectl_applies_crds_and_resources_and_reads_them_back() {
    let k = Kubectl::new().await;
    // A CRD applied by kubectl itself (the fixture's server already has it: apply configures it).
    let crd_yaml = serde_saphyr::to_string(&Gizmo::crd()).unwrap();
    let crd = k.file("gizmo-crd.yaml", &crd_yaml);
    assert!(
        k.ok(&["apply", "-f", &crd])
            .await
            .contains("customresourcedefinition.apiextensions.k8s.io/gizmos.test.lmi.dev")
    );

    let w = k.file("w1.yaml", WIDGET);
    assert_eq!(
        k.ok(&["apply", "-f", &w]).await.trim(),
        "widget.test.lmi.dev/w1 created"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &w]).await.trim(),
        "widget.test.lmi.dev/w1 unchanged"
    );
    let w3 = k.file("w1-size.yaml", &format!("{WIDGET}  size: 4\n"));
    assert_eq!(
        k.ok(&["apply", "-f", &w3]).await.trim(),
        "widget.test.lmi.dev/w1 configured"
    );

    let table = k.ok(&["get", "wdg"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        vec!["NAME", "ZONE", "SIZE", "READY", "AGE"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..3], &["w1", "eu-1a", "4"]);
    assert!(row[3].ends_with('s'), "age like 0s: {row:?}");

    let yaml = k.ok(&["get", "widget", "w1", "-o", "yaml"]).await;
    assert!(
        yaml.contains("  size: 4") && yaml.contains("generation: 2"),
        "{yaml}"
    );

    let g = k.file(
        "g.yaml",
        "apiVersion: test.lmi.dev/v1\nkind: Gizmo\nmetadata:\n  name: g1\nspec:\n  note: hello\n",
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &g]).await.trim(),
        "gizmo.test.lmi.dev/g1 serverside-applied"
    );
    assert!(k.ok(&["get", "gz"]).await.contains("g1"));

    // describe finds events about the object through the involvedObject field selector, both
    // core/v1 ones and those kube's Recorder publishes as events.k8s.io/v1 (one storage).
    let w1 = widgets(&k.server, "default").get("w1").await.unwrap();
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::default_namespaced(k.server.client());
    let event = serde_json::json!({"metadata": {"name": "w1.1"}, "type": "Normal", "reason": "Provisioned",
        "message": "widget is up", "lastTimestamp": "2026-01-01T00:00:00Z",
        "involvedObject": {"apiVersion": "test.lmi.dev/v1", "kind": "Widget", "name": "w1", "namespace": "default",
            "uid": w1.metadata.uid}});
    events
        .create(&Default::default(), &serde_json::from_value(event).unwrap())
        .await
        .unwrap();
    let recorder = kube::runtime::events::Recorder::new(
        k.server.client(),
        kube::runtime::events::Reporter {
            controller: "lmi-operator".into(),
            instance: None,
        },
    );
    let reference = kube::Resource::object_ref(&w1, &());
    let ev = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "DriftDetected".into(),
        note: Some("scaling changed behind Git's back".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let described = k.ok(&["describe", "widget", "w1"]).await;
    assert!(
        described.contains("Zone:") && described.contains("eu-1a"),
        "{described}"
    );
    assert!(
        described.contains("Provisioned") && described.contains("widget is up"),
        "{described}"
    );
    assert!(
        described.contains("DriftDetected")
            && described.contains("scaling changed behind Git's back"),
        "{described}"
    );
    let listed = k
        .ok(&[
            "get",
            "events.v1.events.k8s.io",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await;
    assert!(
        listed.contains("Provisioned") && listed.contains("DriftDetected"),
        "{listed}"
    );

    assert!(
        k.ok(&["delete", "widget", "w1"])
            .await
            .contains("widget.test.lmi.dev \"w1\" deleted")
    );
    assert!(
        k.fails(&["get", "widget", "w1"])
            .await
            .contains("Error from server (NotFound): widgets.test.lmi.dev \"w1\" not found")
    );
}

#[tokio::test]
async fn kubectl_server_side_apply_reports_conflicts_and_forces() {
    let k = Kubectl::new().await;
    let w = k.file("w1.yaml", WIDGET);
    k.ok(&["apply", "--server-side", "-f", &w]).await;
    let w2 = k.file("w2.yaml", &format!("{WIDGET}  size: 2\n"));
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "alice",
        "-f",
        &w2,
    ])
    .await;
    let w5 = k.file("w5.yaml", &format!("{WIDGET}  size: 5\n"));
    let err = k.fails(&["apply", "--server-side", "-f", &w5]).await;
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"alice\": .spec.size"),
        "{err}"
    );
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &w5])
        .await;
    assert_eq!(
        k.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"])
            .await,
        "5"
    );
}

#[tokio::test]
async fn kubectl_refuses_invalid_manifests_with_the_servers_message() {
    let k = Kubectl::new().await;
    let bad = k.file("bad.yaml", "apiVersion: test.lmi.dev/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  zone: z\n  size: 0\n  subnets: [a, b, c, d]\n");
    let err = k.fails(&["apply", "-f", &bad]).await;
    assert!(err.contains("The Widget \"bad\" is invalid:"), "{err}");
    assert!(
        err.contains(
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        ),
        "{err}"
    );
    assert!(
        err.contains("spec.subnets: Too many: 4: must have at most 3 items"),
        "{err}"
    );

    let cel = k.file("cel.yaml", "apiVersion: test.lmi.dev/v1\nkind: Widget\nmetadata:\n  name: big\nspec:\n  zone: z\n  size: 8\n");
    let err = k.fails(&["apply", "--server-side", "-f", &cel]).await;
    assert!(
        err.contains("spec: Invalid value: \"object\": sizes above 5 need mode Manual"),
        "{err}"
    );

    let unknown = k.file("unknown.yaml", "apiVersion: test.lmi.dev/v1\nkind: Widget\nmetadata:\n  name: u\nspec:\n  zone: z\n  colour: red\n");
    let err = k.fails(&["apply", "-f", &unknown]).await;
    assert!(
        err.contains("strict decoding error: unknown field \"spec.colour\""),
        "{err}"
    );

    let w = k.file("w1.yaml", WIDGET);
    k.ok(&["apply", "-f", &w]).await;
    let moved = k.file("moved.yaml", &WIDGET.replace("eu-1a", "eu-1b"));
    let err = k.fails(&["apply", "-f", &moved]).await;
    assert!(
        err.contains("spec.zone: Invalid value: \"string\": zone is immutable"),
        "{err}"
    );
}

#[tokio::test]
async fn kubectl_waits_for_a_condition_set_through_the_status_subresource() {
    let k = Kubectl::new().await;
    let w = k.file("w1.yaml", WIDGET);
    k.ok(&["apply", "-f", &w]).await;
    let api = widgets(&k.server, "default");
    let setter = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let patch =
            serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        api.patch_status("w1", &Default::default(), &kube::api::Patch::Merge(patch))
            .await
            .unwrap();
    });
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=20s",
        ])
        .await;
    setter.await.unwrap();
    assert_eq!(out.trim(), "widget.test.lmi.dev/w1 condition met");
    let table = k.ok(&["get", "wdg", "w1", "--no-headers"]).await;
    assert_eq!(table.split_whitespace().nth(3), Some("True"));
}

#[tokio::test]
async fn kubectl_explain_create_namespace_and_built_ins() {
    let k = Kubectl::new().await;
    let explained = k.ok(&["explain", "widget.spec"]).await;
    assert!(
        explained.contains("zone") && explained.contains("Availability zone; fixed at creation."),
        "{explained}"
    );

    assert_eq!(
        k.ok(&["create", "namespace", "team-a"]).await.trim(),
        "namespace/team-a created"
    );
    assert!(
        k.fails(&["create", "namespace", "team-a"])
            .await
            .contains("Error from server (AlreadyExists): namespaces \"team-a\" already exists")
    );
    let ns = k.ok(&["get", "ns", "team-a", "--no-headers"]).await;
    assert_eq!(
        ns.split_whitespace().take(2).collect::<Vec<_>>(),
        vec!["team-a", "Active"]
    );
    k.ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "team-a",
        "--from-literal=a=b",
    ])
    .await;
    let cm = k.file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\n  namespace: team-a\ndata:\n  k: v\n");
    k.ok(&["apply", "-f", &cm]).await;
    let cm2 = k.file("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c2\n  namespace: team-a\ndata:\n  k: v2\n");
    let out = k.run(&["apply", "-f", &cm2]).await;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no client-side warnings"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "c2",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.k}"
        ])
        .await,
        "v2"
    );
    let widgets_in_ns = k.file(
        "w.yaml",
        &WIDGET.replace("  name: w1\n", "  name: w1\n  namespace: team-a\n"),
    );
    k.ok(&["apply", "-f", &widgets_in_ns]).await;
    assert!(k.ok(&["get", "wdg", "-A"]).await.contains("team-a"));
    k.ok(&["delete", "namespace", "team-a"]).await;
    assert!(!k.ok(&["get", "ns"]).await.contains("team-a"));
}
