//! The Kubernetes side of a test world: a real control plane (`etcd` and `kube-apiserver`) of its
//! own, with
//! `crds/` and the chart's ServiceAccount and RBAC installed as `helm install` would, and the
//! fault proxy the operator talks to it through.
//!
//! Each world gets a control plane to itself: the operator under test watches every object of
//! the cluster, as it does in production, so worlds must not share one. Starting one costs about
//! three seconds of CPU, so a pool thread keeps the next one ready while a test runs.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use lmi_test_support::kube::{ApiFault, AuditEvent, ControlPlane, ControlPlaneOptions, KubeProxy};

use super::chart::{self, OperatorIdentity};

/// A control plane with the CRDs and the chart installed, ready for a world.
struct Prepared {
    plane: ControlPlane,
    identity: OperatorIdentity,
}

type Ready = Result<Prepared, String>;

/// How many control planes are prepared ahead: as many as tests run at once by default (two
/// on the 2-core machines this runs on), so a test rarely waits for one.
const PREPARED_AHEAD: usize = 2;

/// The pool: threads with their own runtimes that each keep one control plane ready.
fn pool() -> &'static Mutex<Receiver<Ready>> {
    static POOL: OnceLock<Mutex<Receiver<Ready>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (ready, taken) = sync_channel::<Ready>(0);
        for n in 0..PREPARED_AHEAD {
            let ready = ready.clone();
            std::thread::Builder::new()
                .name(format!("lmi-control-plane-pool-{n}"))
                .spawn(move || prepare_forever(&ready))
                .expect("start the control plane pool");
        }
        Mutex::new(taken)
    })
}

fn prepare_forever(ready: &SyncSender<Ready>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    loop {
        let prepared = runtime.block_on(prepare()).map_err(|e| e.to_string());
        if ready.send(prepared).is_err() {
            return;
        }
    }
}

async fn prepare() -> Result<Prepared, lmi_test_support::SupportError> {
    // No kube-controller-manager: worlds never delete namespaces or rely on garbage
    // collection, and it would cost every world CPU (the chart and kubectl tests, and the
    // sandbox, run it).
    let plane = ControlPlane::start(ControlPlaneOptions::default()).await?;
    let admin = plane.admin_client().await?;
    plane
        .install_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await?;
    let identity = chart::install(&plane, &admin).await;
    Ok(Prepared { plane, identity })
}

/// A world's cluster.
pub struct Cluster {
    plane: ControlPlane,
    /// Between the operator and the API server.
    pub proxy: KubeProxy,
    /// Who the operator is: the chart's ServiceAccount.
    pub identity: OperatorIdentity,
    kubeconfig: PathBuf,
    /// Audit events before this one are forgotten ([`Cluster::clear_audit`]).
    audit_from: std::sync::atomic::AtomicUsize,
}

impl Cluster {
    /// A fresh cluster from the pool, with its proxy.
    pub async fn start() -> Cluster {
        let prepared = pool()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv()
            .expect("the control plane pool stopped")
            .unwrap_or_else(|e| panic!("start a control plane: {e}"));
        let proxy = KubeProxy::start(prepared.plane.url(), prepared.plane.ca_pem())
            .await
            .expect("start the API server proxy");
        let kubeconfig = prepared.plane.dir().join("operator.kubeconfig");
        prepared
            .plane
            .write_kubeconfig(&kubeconfig, &prepared.identity.token, Some(&proxy.url()))
            .expect("write the operator's kubeconfig");
        Cluster {
            plane: prepared.plane,
            proxy,
            identity: prepared.identity,
            kubeconfig,
            audit_from: Default::default(),
        }
    }

    /// A client acting as the cluster admin (straight to the API server, no faults).
    pub async fn admin(&self) -> Client {
        self.plane.admin_client().await.expect("admin client")
    }

    /// The client configuration of the operator: the chart's ServiceAccount, through the proxy.
    pub async fn operator_config(&self) -> kube::Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("the operator's client configuration")
    }

    /// A kubeconfig for the operator (through the proxy), for `lmi-operator run`.
    pub fn operator_kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Every completed request so far (since [`Cluster::clear_audit`]), oldest first.
    pub fn audit(&self) -> Vec<AuditEvent> {
        let from = self.audit_from.load(std::sync::atomic::Ordering::SeqCst);
        self.plane.audit().into_iter().skip(from).collect()
    }

    /// Forgets the requests audited so far.
    pub fn clear_audit(&self) {
        let all = self.plane.audit().len();
        self.audit_from
            .store(all, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers matching requests of the operator with an error.
    pub fn inject(&self, fault: ApiFault) {
        self.proxy.inject(fault);
    }

    /// Delays every request of the operator.
    pub fn set_latency(&self, latency: Duration) {
        self.proxy.set_latency(latency);
    }

    /// Ends every watch the operator has open.
    pub fn drop_watches(&self) {
        self.proxy.drop_watches();
    }

    /// The API server goes away for `pause` (as seen by the operator) and comes back.
    pub async fn restart(&self, pause: Duration) {
        self.proxy
            .restart(pause)
            .await
            .expect("restart the API server proxy");
    }

    /// How many of the operator's requests were answered with an injected fault so far.
    pub fn faults_fired(&self) -> usize {
        self.proxy.fired()
    }

    /// No more faults.
    pub fn clear_faults(&self) {
        self.proxy.clear_faults();
    }
}
