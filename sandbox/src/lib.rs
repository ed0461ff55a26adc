//! The local sandbox and the scale benchmark: the operator against a real Kubernetes control
//! plane and the AWS emulator on one machine. See `scripts/sandbox` and `scripts/bench-scale`.

pub mod catalog;
pub mod fixtures;
pub mod manifests;
pub mod query;
pub mod report;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

/// Starts `lmi-operator run` (cluster name `sandbox`, text logs into `log_path`) against the API
/// server of `kubeconfig` and the AWS endpoint in `aws_env`, with `extra` flags.
pub fn spawn_operator(
    operator: &Path,
    handler_dir: &Path,
    aws_env: Vec<(&'static str, String)>,
    kubeconfig: &Path,
    log_path: &Path,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let log = File::create(log_path).with_context(|| format!("create {}", log_path.display()))?;
    let err_log = log.try_clone()?;
    Command::new(operator)
        .args(["run", "--cluster-name", "sandbox", "--log-format", "text"])
        // Probes and metrics on one free loopback port: several sandboxes (or a sandbox and
        // the tests) may run on one machine. One process: no leader election.
        .arg("--leader-election=false")
        .args([
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .arg("--handler-dir")
        .arg(absolute(handler_dir)?)
        .envs(aws_env)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", operator.display()))
}

/// The namespace the chart is installed into.
pub const NAMESPACE: &str = "lmi-system";
/// The ServiceAccount the chart creates for release `lmi`.
pub const SERVICE_ACCOUNT: &str = "lmi-lmi-operator";

/// `helm install lmi <chart>` into [`NAMESPACE`] of the cluster of `kubeconfig` (cluster name
/// `sandbox`), with helm's own state kept under `target/helm`.
pub async fn helm_install(helm: &Path, kubeconfig: &Path, chart: &Path) -> anyhow::Result<()> {
    let out = Command::new(helm)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["install", "lmi"])
        .arg(chart)
        .args(["--namespace", NAMESPACE, "--create-namespace"])
        .args(["--set", "clusterName=sandbox"])
        .env("HELM_CONFIG_HOME", "target/helm/config")
        .env("HELM_CACHE_HOME", "target/helm/cache")
        .env("HELM_DATA_HOME", "target/helm/data")
        .output()
        .await
        .with_context(|| format!("run {}", helm.display()))?;
    if !out.status.success() {
        bail!(
            "helm install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Asks the operator to stop (SIGTERM, as Kubernetes does) and waits for it.
pub async fn stop(operator: &mut Child) {
    if let Some(pid) = operator.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(20), operator.wait())
        .await
        .is_err()
    {
        let _ = operator.kill().await;
    }
}

/// Runs kubectl with the sandbox kubeconfig, its output going to ours.
pub async fn kubectl(kubectl: &Path, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .status()
        .await
        .with_context(|| format!("run {}", kubectl.display()))?;
    if !status.success() {
        bail!("kubectl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    Ok(std::env::current_dir()?.join(path))
}

pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

pub fn step(text: &str) {
    println!("==> {text}");
}

pub fn detail(text: &str) {
    println!("    {text}");
}
