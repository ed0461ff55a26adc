//! The test world for the operator runtime: the in-memory API server with the project's CRDs,
//! the AWS emulator behind the fault proxy, a good network, and operator instances started
//! in-process exactly as `lmi-operator run` starts them (`runtime::operate`), each with its own
//! clients, metrics, probe and metrics listeners, and a log of the Kubernetes requests it made.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use lmi_operator::api::CapacityProvider;
use lmi_operator::controller::{Config, Context};
use lmi_operator::metrics::Metrics;
use lmi_operator::run::controllers;
use lmi_operator::runtime::leader::LeaderElection;
use lmi_operator::runtime::{Runtime, operate};
use lmi_test_apiserver::TestApiServer;
use lmi_test_support::{AwsEmulator, FaultProxy, Network};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NAMESPACE: &str = "lmi-system";
pub const LEASE: &str = "lmi-operator-leader";
/// Short lease timings so that failover happens within seconds.
pub const LEASE_DURATION: Duration = Duration::from_secs(3);
pub const LEASE_GRACE: Duration = Duration::from_secs(1);

pub struct World {
    pub api: TestApiServer,
    pub aws: AwsEmulator,
    pub proxy: FaultProxy,
    pub network: Network,
    pub operator_role: String,
}

impl World {
    pub async fn start() -> World {
        let api = TestApiServer::start().await.expect("API server");
        api.load_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
            .expect("CRDs");
        let namespaces: Api<Namespace> = Api::all(api.client());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let aws = AwsEmulator::start().await.expect("AWS emulator");
        let proxy = FaultProxy::start(aws.endpoint())
            .await
            .expect("fault proxy");
        let network = Network::good(&aws.ec2()).await.expect("network");
        let operator_role = aws
            .create_role("lmi-capacity-provider-operator")
            .await
            .expect("role");
        World {
            api,
            aws,
            proxy,
            network,
            operator_role,
        }
    }

    /// A CapacityProvider on the good network.
    pub fn provider(&self, name: &str) -> CapacityProvider {
        serde_json::from_value(json!({
            "apiVersion": "lmi.dev/v1alpha1",
            "kind": "CapacityProvider",
            "metadata": {"name": name},
            "spec": {
                "vpc": {
                    "subnetIds": self.network.private_subnet_ids(),
                    "securityGroupIds": [self.network.security_group_id],
                },
                "operatorRoleArn": self.operator_role,
                "instances": {"architecture": "arm64"},
                "scaling": {"mode": "Auto", "maxVCpuCount": 64},
            }
        }))
        .expect("CapacityProvider")
    }

    pub fn providers(&self) -> Api<CapacityProvider> {
        Api::all(self.api.client())
    }

    pub async fn create_provider(&self, name: &str) {
        self.providers()
            .create(&PostParams::default(), &self.provider(name))
            .await
            .expect("create CapacityProvider");
    }

    /// The Lease holder, if any.
    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.api.client(), NAMESPACE);
        leases
            .get_opt(LEASE)
            .await
            .expect("read lease")
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    /// Waits until `check` holds, polling every 100 ms, or panics after `timeout`.
    pub async fn eventually<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        while !check().await {
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the provider's Ready condition is True for its current generation.
    pub async fn provider_ready(&self, name: &str) -> bool {
        let Some(cp) = self.providers().get_opt(name).await.expect("read provider") else {
            return false;
        };
        let generation = cp.metadata.generation;
        cp.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status == "True"
                    && Some(c.observed_generation.unwrap_or(-1)) == generation
            })
        })
    }
}

/// One Kubernetes request, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
}

/// A tower layer recording every request a kube client sends.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Request>>>);

impl RequestLog {
    pub fn requests(&self) -> Vec<Request> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<S> tower::Layer<S> for RequestLog {
    type Service = Recorded<S>;
    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded {
            inner,
            log: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    log: RequestLog,
}

impl<S, B> tower::Service<http::Request<B>> for Recorded<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.log
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Request {
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
                query: request.uri().query().unwrap_or_default().to_owned(),
            });
        self.inner.call(request)
    }
}

/// How an operator instance is started.
#[derive(Clone)]
pub struct Options {
    pub identity: String,
    pub leader_election: bool,
    pub resync_interval: Duration,
}

impl Options {
    pub fn replica(identity: &str) -> Self {
        Self {
            identity: identity.to_owned(),
            leader_election: true,
            resync_interval: Duration::from_secs(300),
        }
    }
}

/// One operator instance running in-process.
pub struct Operator {
    pub identity: String,
    pub probes: SocketAddr,
    pub metrics: SocketAddr,
    pub requests: RequestLog,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Operator {
    pub async fn start(world: &World, options: Options) -> Operator {
        let requests = RequestLog::default();
        let client = |timeout: Option<Duration>| {
            let mut config = kube::Config::new(world.api.url().parse().expect("url"));
            config.read_timeout = timeout;
            config.write_timeout = timeout;
            kube::client::ClientBuilder::try_from(config)
                .expect("client")
                .with_layer(&requests)
                .build()
        };
        let config = Config {
            cluster_name: "test".into(),
            namespace: NAMESPACE.into(),
            resync_interval: options.resync_interval,
            pending_interval: Duration::from_millis(500),
            ..Config::default()
        };
        let ctx = Arc::new(Context::new(
            client(None),
            world.proxy.sdk_config(),
            config,
            Arc::new(Metrics::default()),
        ));
        let leader_election = options.leader_election.then(|| LeaderElection {
            client: client(Some(Duration::from_secs(1))),
            lease_name: LEASE.into(),
            namespace: NAMESPACE.into(),
            identity: options.identity.clone(),
            duration: LEASE_DURATION,
            grace: LEASE_GRACE,
        });
        let probes = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metrics = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (probes_addr, metrics_addr) = (
            probes.local_addr().expect("addr"),
            metrics.local_addr().expect("addr"),
        );
        let runtime = Runtime {
            leader_election,
            probes,
            metrics: Some(metrics),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(operate(
            ctx,
            runtime,
            async move {
                let _ = stopped.await;
            },
            |ctx, stop| controllers(ctx, stop),
        ));
        Operator {
            identity: options.identity,
            probes: probes_addr,
            metrics: metrics_addr,
            requests,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Kills the instance as a crash would: no graceful stop, no lease release.
    pub fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.stop = None;
    }

    /// SIGTERM: stops gracefully and returns what `operate` returned.
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("stopped within 30s")
            .expect("task")
    }

    pub async fn scrape(&self) -> String {
        get(self.metrics, "/metrics").await.1
    }

    pub async fn readyz(&self) -> (u16, String) {
        get(self.probes, "/readyz").await
    }

    /// A sample's value (0 when absent): `series` is the full name with labels as printed.
    pub async fn sample(&self, series: &str) -> f64 {
        sample(&self.scrape().await, series)
    }

    /// Reconciles this instance counted, whatever their kind and result.
    pub async fn reconciles(&self) -> f64 {
        sum(&self.scrape().await, "lmi_reconciles_total")
    }

    /// AWS requests this instance sent.
    pub async fn aws_calls(&self) -> f64 {
        sum(&self.scrape().await, "lmi_aws_calls_total")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of one exact series in an exposition.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every sample of a metric, whatever its labels.
pub fn sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A plain HTTP/1.0 GET: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}
