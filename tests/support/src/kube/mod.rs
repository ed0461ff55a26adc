//! A real Kubernetes control plane for tests, envtest-style: `etcd` and `kube-apiserver` (and
//! `kube-controller-manager` for namespace deletion and garbage collection) started on loopback
//! ports in a temporary directory, with RBAC and Node authorization on, a static admin token,
//! a service-account token signer (so `TokenRequest` issues real ServiceAccount tokens that RBAC
//! then judges) and an audit log.
//!
//! The binaries come from `$KUBEBUILDER_ASSETS` (the envtest convention) or `.tools/k8s/bin`,
//! where `scripts/fetch-tools` puts them.

mod audit;
mod certs;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use crate::process::Supervised;
pub use audit::AuditEvent;
pub use http::Method;
pub use proxy::{ApiFault, KubeProxy};

use crate::error::SupportError;

/// The admin's user name (group `system:masters`).
pub const ADMIN: &str = "admin";
/// How long the control plane may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the Kubernetes binaries are: `$KUBEBUILDER_ASSETS`, else `.tools/k8s/bin` of the
/// workspace.
pub fn binaries_dir() -> PathBuf {
    match std::env::var_os("KUBEBUILDER_ASSETS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/k8s/bin"),
    }
}

fn binary(name: &str) -> Result<PathBuf, SupportError> {
    let path = binaries_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(SupportError::ControlPlane(format!(
            "{} is missing: run scripts/fetch-tools (it finds etcd, kube-apiserver and \
             kube-controller-manager in $KUBEBUILDER_ASSETS or ../shared/k8s/bin), or point \
             KUBEBUILDER_ASSETS at a directory holding them",
            path.display()
        )))
    }
}

fn free_port() -> Result<u16, SupportError> {
    crate::process::free_port()
        .map_err(|e| SupportError::ControlPlane(format!("find a free port: {e}")))
}

/// The control plane's environment: fewer garbage collections while the API server builds its
/// caches, about a sixth less CPU to start, at the price of memory tests have.
const GO_ENV: &[(&str, &str)] = &[("GOGC", "400")];

/// Prefix of a control plane's directory, followed by the test process id.
const DIR_PREFIX: &str = "lmi-control-plane-";

/// Removes the directories of control planes whose test process is gone (one killed, or one a
/// pool had prepared ahead when the process ended: their processes died with it).
fn remove_stale_directories() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How to start a control plane.
#[derive(Clone, Debug, Default)]
pub struct ControlPlaneOptions {
    /// Also run kube-controller-manager (namespace lifecycle, garbage collector, Deployments
    /// and ReplicaSets) when its binary is there.
    pub controller_manager: bool,
}

/// A running control plane. Dropping it stops the API server, then the rest, and removes its
/// directory.
pub struct ControlPlane {
    // Dropped in this order: the API server before etcd (once etcd is gone, the API server
    // hangs in its graceful shutdown).
    apiserver: Supervised,
    controller_manager: Option<Supervised>,
    etcd: Supervised,
    url: String,
    ca_pem: String,
    admin_token: String,
    audit_log: PathBuf,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub async fn start(options: ControlPlaneOptions) -> Result<ControlPlane, SupportError> {
        remove_stale_directories();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| SupportError::ControlPlane(format!("make a directory: {e}")))?;
        let path = dir.path().to_owned();
        let certs = certs::write(&path)?;
        let admin_token = format!("admin-{}", rand::random::<u64>());
        let write = |name: &str, text: &str| -> Result<PathBuf, SupportError> {
            let file = path.join(name);
            std::fs::write(&file, text)
                .map_err(|e| SupportError::ControlPlane(format!("write {name}: {e}")))?;
            Ok(file)
        };
        let tokens = write(
            "tokens.csv",
            &format!("{admin_token},{ADMIN},admin-uid,\"system:masters\"\n"),
        )?;
        let policy = write("audit-policy.yaml", audit::POLICY)?;
        let audit_log = path.join("audit.log");

        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd = Supervised::start(
            "etcd",
            &binary("etcd")?,
            &[
                format!("--data-dir={}", path.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                "--unsafe-no-fsync".into(),
                "--log-level=error".into(),
            ],
            GO_ENV,
            path.join("etcd.log"),
        )?;
        let p = |f: &Path| f.display().to_string();
        let apiserver = Supervised::start(
            "kube-apiserver",
            &binary("kube-apiserver")?,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--tls-cert-file={}", p(&certs.serving_cert)),
                format!("--tls-private-key-file={}", p(&certs.serving_key)),
                format!("--token-auth-file={}", p(&tokens)),
                "--authorization-mode=Node,RBAC".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!(
                    "--service-account-key-file={}",
                    p(&certs.service_account_public_key)
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    p(&certs.service_account_key)
                ),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--allow-privileged=true".into(),
                format!("--audit-policy-file={}", p(&policy)),
                format!("--audit-log-path={}", p(&audit_log)),
                "--audit-log-mode=blocking".into(),
            ],
            GO_ENV,
            path.join("kube-apiserver.log"),
        )?;
        let mut plane = ControlPlane {
            apiserver,
            controller_manager: None,
            etcd,
            url: format!("https://127.0.0.1:{api_port}"),
            ca_pem: certs.ca_pem,
            admin_token,
            audit_log,
            dir,
        };
        plane.wait_ready().await?;
        let kcm = binaries_dir().join("kube-controller-manager");
        if options.controller_manager && kcm.is_file() {
            let kubeconfig = plane.dir.path().join("admin.kubeconfig");
            plane.write_kubeconfig(&kubeconfig, &plane.admin_token, None)?;
            plane.controller_manager = Some(Supervised::start(
                "kube-controller-manager",
                &kcm,
                &[
                    format!("--kubeconfig={}", kubeconfig.display()),
                    "--controllers=namespace,garbagecollector,deployment,replicaset".into(),
                    "--leader-elect=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    "--secure-port=0".into(),
                    "--concurrent-gc-syncs=5".into(),
                ],
                GO_ENV,
                plane.dir.path().join("kube-controller-manager.log"),
            )?);
        }
        Ok(plane)
    }

    async fn wait_ready(&mut self) -> Result<(), SupportError> {
        let admin = self.admin_client().await?;
        let start = Instant::now();
        loop {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| SupportError::ControlPlane(e.to_string()))?;
            if admin.request_text(request).await.is_ok_and(|t| t == "ok") {
                return Ok(());
            }
            for process in [&mut self.etcd, &mut self.apiserver] {
                if let Some(status) = process.exited() {
                    return Err(SupportError::ControlPlane(format!(
                        "{} exited ({status}) before the API server was ready:\n{}",
                        process.name,
                        process.tail(30)
                    )));
                }
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(SupportError::ControlPlane(format!(
                    "the API server was not ready within {START_TIMEOUT:?}:\n{}",
                    self.apiserver.tail(30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// PEM of the CA the API server's certificate chains to.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (YAML) for `server` (default: the API server itself) with `token`.
    pub fn kubeconfig(&self, token: &str, server: Option<&str>) -> String {
        let server = server.unwrap_or(&self.url);
        let ca = if server.starts_with("https:") {
            use base64::Engine as _;
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
            )
        } else {
            String::new()
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: \
             {server}{ca}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: \
             test\n  context:\n    cluster: test\n    user: user\n    namespace: default\n\
             current-context: test\n"
        )
    }

    /// Writes [`ControlPlane::kubeconfig`] to `path` (for kubectl, helm, a subprocess).
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        token: &str,
        server: Option<&str>,
    ) -> Result<(), SupportError> {
        std::fs::write(path, self.kubeconfig(token, server))
            .map_err(|e| SupportError::ControlPlane(format!("write {}: {e}", path.display())))
    }

    /// A client for `server` (default: the API server) authenticating with `token`.
    pub async fn client(
        &self,
        token: &str,
        server: Option<&str>,
    ) -> Result<kube::Client, SupportError> {
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig(token, server))
            .map_err(|e| SupportError::ControlPlane(format!("kubeconfig: {e}")))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| SupportError::ControlPlane(format!("kubeconfig: {e}")))?;
        kube::Client::try_from(config)
            .map_err(|e| SupportError::ControlPlane(format!("client: {e}")))
    }

    /// A client acting as the cluster admin.
    pub async fn admin_client(&self) -> Result<kube::Client, SupportError> {
        self.client(&self.admin_token, None).await
    }

    /// The admin's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A token for the ServiceAccount `namespace/name` (which must exist), issued by the API
    /// server's `TokenRequest` API: requests with it are `system:serviceaccount:<ns>:<name>`,
    /// judged by RBAC.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, SupportError> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.admin_client().await?, namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec!["https://kubernetes.default.svc.cluster.local".into()]),
                expiration_seconds: Some(24 * 3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                SupportError::ControlPlane(format!("TokenRequest for {namespace}/{name}: {e}"))
            })?;
        issued
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| SupportError::ControlPlane("TokenRequest returned no token".into()))
    }

    /// Creates every CustomResourceDefinition in the YAML files of `dir` (as they are: the API
    /// server checks them — structural schemas, CEL rules within the cost budget) and waits
    /// until it serves them (`Established`).
    pub async fn install_crds(&self, dir: &Path) -> Result<(), SupportError> {
        let fail = |what: String| SupportError::ControlPlane(what);
        let crds: Api<CustomResourceDefinition> = Api::all(self.admin_client().await?);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| fail(format!("read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        let mut names = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(format!("read {}: {e}", file.display())))?;
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
                .map_err(|e| fail(format!("{} is not a CRD: {e}", file.display())))?;
            names.push(crd.metadata.name.clone().unwrap_or_default());
            crds.create(&PostParams::default(), &crd)
                .await
                .map_err(|e| fail(format!("the API server refused {}: {e}", file.display())))?;
        }
        let start = Instant::now();
        for name in names {
            loop {
                let established = crds.get(&name).await.ok().is_some_and(|crd| {
                    crd.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                if established {
                    break;
                }
                if start.elapsed() > Duration::from_secs(30) {
                    return Err(fail(format!("CRD {name} never became Established")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Every completed request so far, oldest first.
    pub fn audit(&self) -> Vec<AuditEvent> {
        audit::read(&self.audit_log)
    }

    /// The directory holding the control plane's files and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
