//! Flags of `lmi-operator run` that configure the process rather than the reconcilers: leader
//! election, listen addresses, log level, and how many objects of each kind are reconciled at
//! once. Every flag has an environment fallback (the chart sets those).

use std::net::SocketAddr;
use std::time::Duration;

/// Runtime flags, flattened into `lmi-operator run`.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Runtime")]
pub struct RuntimeArgs {
    /// Run the controllers only while holding a Lease (in the Lease namespace, which must
    /// exist), so that several replicas — or the old and the new pod of a rolling update — never
    /// reconcile at once. On by default; off suits a single process run by hand (the local
    /// sandbox), and a Deployment without it must use the `Recreate` strategy (the chart does).
    #[arg(
        long,
        env = "LMI_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub leader_election: bool,

    /// Name of the `coordination.k8s.io/v1` Lease the replicas compete for.
    #[arg(long, env = "LMI_LEASE_NAME", default_value = "lmi-operator-leader")]
    pub lease_name: String,

    /// Namespace of the Lease [default: the operator's namespace, `--namespace`].
    #[arg(long, env = "LMI_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// How long the lease stays valid after the leader last renewed it: the longest a standby
    /// waits before taking over from a leader that died (whole seconds, at least 2s).
    #[arg(long, env = "LMI_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long before expiry the leader renews the lease; also the clock skew tolerated between
    /// nodes (whole seconds, at least 1s, less than the duration).
    #[arg(long, env = "LMI_LEASE_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub lease_grace: Duration,

    /// This replica's identity in the Lease [default: `$POD_NAME` plus a random suffix].
    #[arg(long, env = "LMI_LEADER_IDENTITY")]
    pub leader_identity: Option<String>,

    /// Name of this pod (from the downward API); names the replica in the Lease and in events.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Address for the `/healthz` and `/readyz` probes.
    #[arg(long, env = "LMI_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,

    /// Address for Prometheus `/metrics`; the same address as `--health-addr` serves everything
    /// on one port.
    #[arg(long, env = "LMI_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or `tracing` directives
    /// such as `info,lmi_operator=debug,kube=warn`.
    #[arg(long, env = "LMI_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// How many CapacityProviders are reconciled at once (each object is only ever reconciled
    /// once at a time). Capacity provider calls are slow and rate-limited: keep it small.
    #[arg(long, env = "LMI_CAPACITY_PROVIDER_CONCURRENCY", default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..))]
    pub capacity_provider_concurrency: u16,

    /// How many SimilarityFunctions are reconciled at once.
    #[arg(long, env = "LMI_SIMILARITY_FUNCTION_CONCURRENCY", default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..))]
    pub similarity_function_concurrency: u16,
}

impl RuntimeArgs {
    /// The identity to hold the lease under: explicit, else the pod name (or host name) with a
    /// random suffix, so that a restarted container is never mistaken for its predecessor.
    pub fn identity(&self) -> String {
        if let Some(id) = &self.leader_identity {
            return id.clone();
        }
        let base = self
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "lmi-operator".to_owned());
        let suffix: String = (0..6)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        format!("{base}_{suffix}")
    }
}

impl RuntimeArgs {
    /// Binds the listeners and sets up leader election for `namespace` (the operator's).
    pub async fn runtime(
        &self,
        kube_config: &kube::Config,
        namespace: &str,
    ) -> anyhow::Result<super::Runtime> {
        use anyhow::Context as _;

        let leader_election = if self.leader_election {
            super::leader::check_timings(self.lease_duration, self.lease_grace)?;
            // The Lease gets its own client whose requests time out within the grace, so that
            // a hung API server makes the leader step down before a standby may take over.
            let mut config = kube_config.clone();
            let timeout = super::leader::request_timeout(self.lease_grace);
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            config.reset_reader_on_write = true;
            let client = kube::Client::try_from(config).context("building the Lease client")?;
            Some(super::leader::LeaderElection {
                client,
                lease_name: self.lease_name.clone(),
                namespace: self
                    .lease_namespace
                    .clone()
                    .unwrap_or_else(|| namespace.to_owned()),
                identity: self.identity(),
                duration: self.lease_duration,
                grace: self.lease_grace,
            })
        } else {
            None
        };
        let probes = tokio::net::TcpListener::bind(self.health_addr)
            .await
            .with_context(|| format!("listening on {} (--health-addr)", self.health_addr))?;
        let metrics = if self.metrics_addr == self.health_addr {
            None
        } else {
            Some(
                tokio::net::TcpListener::bind(self.metrics_addr)
                    .await
                    .with_context(|| {
                        format!("listening on {} (--metrics-addr)", self.metrics_addr)
                    })?,
            )
        };
        Ok(super::Runtime {
            leader_election,
            probes,
            metrics,
        })
    }
}
