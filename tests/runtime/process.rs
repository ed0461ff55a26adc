//! The real `lmi-operator run` process, started with the arguments and environment of the
//! chart's Deployment (default values), authenticated as the chart's ServiceAccount and sent to
//! the AWS emulator by `AWS_ENDPOINT_URL`: it leads, becomes ready, reconciles, logs JSON, and
//! on SIGTERM finishes, releases the lease and exits 0.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::World;
use crate::harness::chart::{self, NAMESPACE};
use crate::harness::replica::{get, sample};
use crate::{apply_provider, lease_holder, ready, wait_for};

const POD_NAME: &str = "lmi-operator-7d9c-x2x";

/// A child process killed when dropped (a failing test must not leave it running).
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Operator {
    /// SIGTERM, as the kubelet sends it.
    fn terminate(&self) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(start.elapsed() < timeout, "still running after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .expect("read the log")
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
            })
            .collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmi_operator_run_as_the_chart_deploys_it_reconciles_and_stops_cleanly_on_sigterm() {
    let world = World::start().await;
    let net = world.good_network().await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("operator-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let kubeconfig = world.api.operator_kubeconfig().to_owned();

    // The container as the chart renders it: its arguments and environment, the downward API
    // filled in as the kubelet would, the listen addresses moved to free loopback ports.
    let container = chart::container(chart::default_objects());
    let (health, metrics) = (free_port(), free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_lmi-operator"));
    command.env_clear().args(container.args.unwrap_or_default());
    for var in container.env.unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => value.clone(),
            (None, Some(from)) => {
                let field = from.field_ref.as_ref().map(|f| f.field_path.as_str());
                match field {
                    Some("metadata.namespace") => NAMESPACE.to_owned(),
                    Some("metadata.name") => POD_NAME.to_owned(),
                    other => panic!("{}: unexpected valueFrom {other:?}", var.name),
                }
            }
            (None, None) => String::new(),
        };
        command.env(&var.name, value);
    }
    command
        .env("LMI_HEALTH_ADDR", format!("127.0.0.1:{health}"))
        .env("LMI_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
        .env("KUBECONFIG", &kubeconfig)
        .envs(lmi_test_support::client_env(world.proxy.endpoint()));
    let log = dir.join("operator.log");
    let mut operator = Operator {
        child: command
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lmi-operator"),
        log,
    };
    let health = format!("127.0.0.1:{health}").parse().expect("address");
    let metrics = format!("127.0.0.1:{metrics}").parse().expect("address");

    wait_for(
        "the process to be ready",
        Duration::from_secs(30),
        || async {
            get(health, "/readyz").await == (200, "ok: leader, caches synced\n".to_owned())
        },
    )
    .await;
    let holder = lease_holder(&world).await.expect("a lease holder");
    assert!(
        holder.starts_with(&format!("{POD_NAME}_")),
        "the Lease names the pod: {holder}"
    );

    apply_provider(&world, &net, "primary").await;
    world.wait_provider("primary", "Ready", ready).await;
    let text = get(metrics, "/metrics").await.1;
    assert!(
        sample(
            &text,
            r#"lmi_reconciles_total{kind="CapacityProvider",result="success"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "lmi_leader"), 1.0);

    operator.terminate();
    let status = operator.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        lease_holder(&world).await,
        None,
        "the lease was not released"
    );

    let lines = operator.log_lines();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in ["starting", "leader election: released the lease", "stopped"] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "no {expected:?} in the log: {messages:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
