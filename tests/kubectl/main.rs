//! The real kubectl v1.35 (`.tools/bin`, from `scripts/fetch-tools`) with the project's CRDs and
//! examples against the real kube-apiserver: `apply -f crds/` and `apply -f examples/`
//! (client-side, then server-side), `get` with the printer columns, `explain`, a field selector
//! on the provider a function names, `wait` on a condition the status subresource sets, and
//! corpus manifests refused with the API server's message.

use std::path::{Path, PathBuf};
use std::process::Output;

use kube::api::{Api, Patch, PatchParams};
use lmi_operator::api::CapacityProvider;
use lmi_test_support::kube::{ControlPlane, ControlPlaneOptions};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl_path() -> PathBuf {
    let p = root().join(".tools/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl not found at {}: run scripts/fetch-tools (scripts/test does it first)",
        p.display()
    );
    p
}

/// kubectl as the admin of a fresh control plane.
struct Kubectl {
    plane: ControlPlane,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn start() -> Kubectl {
        kubectl_path();
        let plane = ControlPlane::start(ControlPlaneOptions::default())
            .await
            .expect("start the control plane");
        let dir = tempfile::tempdir().expect("scratch directory");
        let kubeconfig = dir.path().join("kubeconfig");
        plane
            .write_kubeconfig(&kubeconfig, plane.admin_token(), None)
            .expect("kubeconfig");
        Kubectl {
            plane,
            kubeconfig,
            dir,
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let kubeconfig = self.kubeconfig.clone();
        let cache = self.dir.path().join("cache");
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(kubectl_path())
                .args(&args)
                .env("KUBECONFIG", kubeconfig)
                .env("KUBECACHEDIR", cache)
                .env("HOME", "/nonexistent")
                .output()
                .expect("run kubectl")
        })
        .await
        .expect("kubectl thread")
    }

    /// Runs kubectl and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
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
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write a manifest");
        p.to_string_lossy().into_owned()
    }
}

fn path(relative: &str) -> String {
    root().join(relative).to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_projects_crds_and_examples() {
    let k = Kubectl::start().await;
    let out = k.ok(&["apply", "-f", &path("crds")]).await;
    for crd in ["capacityproviders.lmi.dev", "similarityfunctions.lmi.dev"] {
        assert!(
            out.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{crd} created"
            )),
            "{out}"
        );
    }
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/capacityproviders.lmi.dev",
        "crd/similarityfunctions.lmi.dev",
        "--timeout=30s",
    ])
    .await;

    let examples = path("examples");
    let out = k.ok(&["apply", "-f", &examples]).await;
    assert!(out.contains("namespace/similarity-prod created"), "{out}");
    assert!(
        out.contains("capacityprovider.lmi.dev/graviton-prod created"),
        "{out}"
    );
    assert!(
        out.contains("similarityfunction.lmi.dev/products created"),
        "{out}"
    );
    // A second client-side apply changes nothing; then the same files server-side.
    let again = k.ok(&["apply", "-f", &examples]).await;
    assert!(!again.contains("configured"), "{again}");
    let out = k.ok(&["apply", "--server-side", "-f", &examples]).await;
    assert!(out.contains("serverside-applied"), "{out}");

    let providers = k.ok(&["get", "lmicp"]).await;
    let header: Vec<&str> = providers
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "REASON", "STATE", "ARCH", "AGE"],
        "{providers}"
    );
    assert_eq!(providers.lines().count(), 3, "{providers}");
    let wide = k.ok(&["get", "lmicp", "-o", "wide"]).await;
    assert!(
        wide.lines().next().unwrap_or_default().contains("MAX VCPU"),
        "{wide}"
    );
    let functions = k.ok(&["get", "simfn", "-A"]).await;
    assert!(functions.starts_with("NAMESPACE"), "{functions}");
    assert_eq!(functions.lines().count(), 3, "{functions}");
    // The CRD's selectable field: the functions on one provider.
    let on_dev = k
        .ok(&[
            "get",
            "simfn",
            "-A",
            "--field-selector",
            "spec.capacityProviderRef.name=shared-dev",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(
        on_dev.trim(),
        "similarityfunction.lmi.dev/products",
        "{on_dev}"
    );
    let everything = k.ok(&["get", "lmi", "-A", "-o", "name"]).await;
    assert_eq!(
        everything.lines().count(),
        4,
        "the category lists both kinds: {everything}"
    );

    let explained = k.ok(&["explain", "lmicp.spec.tenants"]).await;
    for field in [
        "executionRoleArns",
        "catalogSources",
        "functionNames",
        "limits",
    ] {
        assert!(explained.contains(field), "{field}: {explained}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_waits_for_the_ready_condition_the_status_subresource_sets() {
    let k = Kubectl::start().await;
    k.plane
        .install_crds(&root().join("crds"))
        .await
        .expect("crds");
    k.ok(&[
        "apply",
        "-f",
        &path("examples/capacityprovider-shared-dev.yaml"),
    ])
    .await;
    let waiting = k.run(&[
        "wait",
        "--for=condition=Ready",
        "lmicp/shared-dev",
        "--timeout=30s",
    ]);
    let admin = k.plane.admin_client().await.expect("admin");
    let providers: Api<CapacityProvider> = Api::all(admin);
    let status = serde_json::json!({
        "apiVersion": "lmi.dev/v1alpha1", "kind": "CapacityProvider",
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "Available", "message": "m",
            "lastTransitionTime": "2026-12-03T00:00:00Z", "observedGeneration": 1,
        }]},
    });
    let (out, _) = tokio::join!(waiting, async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        providers
            .patch_status(
                "shared-dev",
                &PatchParams::apply("test").force(),
                &Patch::Apply(&status),
            )
            .await
            .expect("status");
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_refuses_corpus_manifests_with_the_api_servers_message() {
    let k = Kubectl::start().await;
    k.plane
        .install_crds(&root().join("crds"))
        .await
        .expect("crds");
    let err = k
        .fails(&[
            "apply",
            "-f",
            &path("tests/validation/invalid/cp-17-subnets.yaml"),
        ])
        .await;
    assert!(
        err.contains("The CapacityProvider \"cp\" is invalid"),
        "{err}"
    );
    assert!(err.contains("spec.vpc.subnetIds: Too many: 17"), "{err}");

    let err = k
        .fails(&[
            "apply",
            "--server-side",
            "-f",
            &path("tests/validation/invalid/cp-subnet-ids-and-selector.yaml"),
        ])
        .await;
    assert!(
        err.contains("set exactly one of vpc.subnetIds or vpc.subnetSelector"),
        "{err}"
    );

    let text =
        std::fs::read_to_string(root().join("tests/validation/immutable/cp-change-region.yaml"))
            .expect("read the pair");
    let (old, new) = text.split_once("\n---\n").expect("two documents");
    k.ok(&["apply", "-f", &k.file("old.yaml", old)]).await;
    let err = k.fails(&["apply", "-f", &k.file("new.yaml", new)]).await;
    assert!(err.contains("spec.region"), "{err}");
    assert!(err.contains("region is immutable"), "{err}");
}
