//! The server handle tests hold: start on a free loopback port, hand out a `kube::Client` and a
//! kubeconfig, inject faults, read state, and restart with state kept.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::authz::{AuditEvent, Identity};
use crate::faults::Fault;
use crate::state::{CRD_GROUP, CRD_RESOURCE, Shared};
use crate::status::ApiError;
use crate::store::ObjKey;
use crate::{kubeconfig, routes};

/// Errors from starting, loading or restarting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("write kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read {path}: {source}")]
    ReadManifest {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {message}")]
    ParseManifest { path: PathBuf, message: String },
    #[error("install CRD {name}: {}", .source.message)]
    InstallCrd { name: String, source: ApiError },
    #[error("build kube client: {0}")]
    Client(String),
}

/// A running in-memory API server.
pub struct TestApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    serving: Mutex<Option<JoinHandle<()>>>,
    dir: tempfile::TempDir,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connections here means aborting this task closes every one of them.
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(routes::handle(shared, req.map(Body::new)).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

impl TestApiServer {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self, ServerError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (port 0 picks a free one).
    pub async fn start_on(addr: SocketAddr) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let shared = Shared::new();
        if let Ok(mut a) = shared.address.write() {
            *a = addr.to_string();
        }
        let dir = tempfile::tempdir().map_err(|source| ServerError::WriteKubeconfig {
            path: PathBuf::from("<tempdir>"),
            source,
        })?;
        let server = Self {
            shared: shared.clone(),
            addr,
            serving: Mutex::new(None),
            dir,
        };
        server.write_kubeconfig(&server.kubeconfig_path())?;
        *server.serving_slot() = Some(tokio::spawn(accept_loop(listener, shared)));
        Ok(server)
    }

    fn serving_slot(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let url = self
            .url()
            .parse()
            .unwrap_or_else(|_| unreachable!("a socket address is a valid URI"));
        let config = kube::Config::new(url);
        kube::Client::try_from(config)
            .unwrap_or_else(|e| unreachable!("plain-http client config is valid: {e}"))
    }

    /// A kubeconfig file for this server (written at start, removed when the server is dropped).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Writes a kubeconfig for this server to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), ServerError> {
        kubeconfig::write(path, &self.url()).map_err(|source| ServerError::WriteKubeconfig {
            path: path.into(),
            source,
        })
    }

    /// Issues a bearer token for service account `namespace`/`name`: requests with it act as
    /// `system:serviceaccount:<namespace>:<name>` (groups `system:serviceaccounts`,
    /// `system:serviceaccounts:<namespace>`, `system:authenticated`) and are authorized by the
    /// stored RBAC objects. The service account object itself need not exist.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let token = format!("lmi-test-{}", uuid::Uuid::new_v4().simple());
        self.shared
            .tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), Identity::service_account(namespace, name));
        token
    }

    /// A kube client config for this server that authenticates with `token`.
    pub fn config_with_token(&self, token: &str) -> Result<kube::Config, ServerError> {
        let url = self
            .url()
            .parse()
            .map_err(|e| ServerError::Client(format!("{e}")))?;
        let mut config = kube::Config::new(url);
        config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))
            .map_err(|e| ServerError::Client(e.to_string()))?;
        Ok(config)
    }

    /// A kube client that authenticates with `token` (see [`Self::service_account_token`]).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, ServerError> {
        kube::Client::try_from(self.config_with_token(token)?)
            .map_err(|e| ServerError::Client(e.to_string()))
    }

    /// Writes a kubeconfig for this server whose user authenticates with `token`.
    pub fn write_kubeconfig_with_token(&self, path: &Path, token: &str) -> Result<(), ServerError> {
        kubeconfig::write_with_token(path, &self.url(), Some(token)).map_err(|source| {
            ServerError::WriteKubeconfig {
                path: path.into(),
                source,
            }
        })
    }

    /// The requests handled so far, oldest first (the latest 200 000), each with its user,
    /// RBAC attributes and status code.
    pub fn audit(&self) -> Vec<AuditEvent> {
        self.shared.audit().iter().cloned().collect()
    }

    /// Empties the audit log.
    pub fn clear_audit(&self) {
        self.shared.audit().clear();
    }

    /// Creates (or replaces) a CRD directly, as `kubectl apply` would; its resource is served at once.
    pub fn install_crd(&self, crd: Value) -> Result<(), ServerError> {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        crate::loader::install_crd(&self.shared, crd)
            .map_err(|source| ServerError::InstallCrd { name, source })
    }

    /// Installs every CRD in the YAML/JSON files of `dir`; returns how many.
    pub fn load_crds(&self, dir: &Path) -> Result<usize, ServerError> {
        crate::loader::load_crds(&self.shared, dir)
    }

    /// Fails matching requests (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults().add(fault);
    }

    /// Fails the next `n` requests (of any kind except watches) with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.inject(Fault::status(status).times(n));
    }

    /// Adds `latency` before every request is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults().latency = latency;
    }

    /// Removes every fault and the latency.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Ends every open watch (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
    }

    /// Forgets the change history: watches from any earlier resource version get `410 Gone`.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// How often watches that asked for bookmarks get one (default 5 s).
    pub fn set_bookmark_interval(&self, every: Duration) {
        if let Ok(mut s) = self.shared.settings.write() {
            s.bookmark_interval = every;
        }
    }

    /// Stops serving: every connection (and watch) is closed, the port refuses connections.
    pub async fn stop(&self) {
        let handle = self.serving_slot().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
        self.drop_watches();
    }

    /// Serves again on the same port after [`stop`](Self::stop), with all state kept.
    pub async fn resume(&self) -> Result<(), ServerError> {
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: self.addr,
                source,
            })?;
        *self.serving_slot() = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
        Ok(())
    }

    /// Restarts like an API server process: connections drop, the port is closed for `downtime`,
    /// then it serves again with all objects kept and resource versions continuing.
    pub async fn restart(&self, downtime: Duration) -> Result<(), ServerError> {
        self.stop().await;
        tokio::time::sleep(downtime).await;
        self.resume().await
    }

    /// The current resource version (the latest change's).
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().current_rv()
    }

    /// One stored object (`group` "" for core; `namespace` "" for cluster-scoped).
    pub fn object(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.shared
            .lock()
            .get(&ObjKey::new(group, resource, namespace, name))
            .cloned()
    }

    /// Every stored object of a resource, in all namespaces.
    pub fn objects(&self, group: &str, resource: &str) -> Vec<Value> {
        self.shared
            .lock()
            .list(group, resource, None)
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every stored CRD.
    pub fn crds(&self) -> Vec<Value> {
        self.objects(CRD_GROUP, CRD_RESOURCE)
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Some(h) = self.serving_slot().take() {
            h.abort();
        }
        self.drop_watches();
    }
}
