//! Operator replicas as `lmi-operator run` starts them — `runtime::operate` with leader election,
//! the probe and metrics listeners and the controllers — in-process against a [`World`], each
//! with its own clients (authenticated as the chart's ServiceAccount) and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lmi_operator::controller::Context;
use lmi_operator::metrics::Metrics;
use lmi_operator::run::controllers;
use lmi_operator::runtime::leader::{LeaderElection, request_timeout};
use lmi_operator::runtime::{Runtime, operate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::World;
use super::chart::{NAMESPACE, lease_name};

/// Short lease timings so that failover takes seconds (the chart's default is 15s/5s).
pub const LEASE_DURATION: Duration = Duration::from_secs(3);
pub const LEASE_GRACE: Duration = Duration::from_secs(1);

/// How a replica is started.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Its identity in the Lease.
    pub identity: String,
    /// Off: the controllers start at once and no Lease is used.
    pub leader_election: bool,
    /// How long its Lease lasts without renewal ([`LEASE_DURATION`] unless a test needs a long
    /// one to tell "acquired at once" from "waited for expiry" on a slow machine).
    pub lease_duration: Duration,
}

impl ReplicaOptions {
    pub fn named(identity: &str) -> Self {
        Self {
            identity: identity.to_owned(),
            leader_election: true,
            lease_duration: LEASE_DURATION,
        }
    }
}

/// One replica running in-process.
pub struct Replica {
    pub identity: String,
    /// `/healthz` and `/readyz`.
    pub probes: SocketAddr,
    /// `/metrics`.
    pub metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Starts a replica with the world's configuration (`world.config`), talking to the API
    /// server as the chart's ServiceAccount and to AWS through the fault proxy.
    pub async fn start(world: &World, options: ReplicaOptions) -> Replica {
        // `LMI_TEST_LOG=debug` (or tracing directives) shows the operator's logs.
        if let Ok(filter) = std::env::var("LMI_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let ctx = Arc::new(Context::new(
            world.operator_client(),
            world.proxy.sdk_config(),
            world.config.clone(),
            Arc::new(Metrics::default()),
        ));
        let leader_election = options.leader_election.then(|| {
            // The Lease gets its own client whose requests time out within the grace, as
            // `lmi-operator run` builds it.
            let mut kube = world.operator_config.clone();
            kube.read_timeout = Some(request_timeout(LEASE_GRACE));
            kube.write_timeout = Some(request_timeout(LEASE_GRACE));
            LeaderElection {
                client: kube::Client::try_from(kube).expect("lease client"),
                lease_name: lease_name(),
                namespace: NAMESPACE.into(),
                identity: options.identity.clone(),
                duration: options.lease_duration,
                grace: LEASE_GRACE,
            }
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
            controllers,
        ));
        Replica {
            identity: options.identity,
            probes: probes_addr,
            metrics: metrics_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Kills the replica as a crash would: no graceful stop, no lease release.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
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

    /// The `/metrics` exposition.
    pub async fn scrape(&self) -> String {
        get(self.metrics, "/metrics").await.1
    }

    /// `/readyz`: status and body.
    pub async fn readyz(&self) -> (u16, String) {
        get(self.probes, "/readyz").await
    }

    /// A sample's value (0 when absent): `series` is the name with labels as exposed.
    pub async fn sample(&self, series: &str) -> f64 {
        sample(&self.scrape().await, series)
    }

    /// Reconciles this replica counted, whatever their kind and result.
    pub async fn reconciles(&self) -> f64 {
        sum(&self.scrape().await, "lmi_reconciles_total")
    }

    /// AWS requests this replica sent.
    pub async fn aws_calls(&self) -> f64 {
        sum(&self.scrape().await, "lmi_aws_calls_total")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The value of one exact series in an exposition (0 when absent).
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
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A plain HTTP/1.0 GET: status and body (status 0 when nothing answers).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: operator\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).await.is_err() {
        return (0, String::new());
    }
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}
