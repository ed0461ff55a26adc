//! `lmi-sandbox`: the whole product on one machine, without a cluster or an AWS account.
//!
//! Starts the AWS emulator (moto with the LMI API) holding a ready-made network, the IAM roles
//! and the sample catalogs the examples name; starts a real Kubernetes control plane (etcd,
//! kube-apiserver, kube-controller-manager) and `helm install`s the chart into it (CRDs,
//! ServiceAccount, RBAC; its Deployment's pods stay Pending: there are no nodes); runs the real
//! `lmi-operator` binary here, with the installed ServiceAccount's token, against both; applies
//! `examples/` with the real `kubectl`; waits until every resource is Ready; prints what a user
//! would check; and keeps everything running until Ctrl-C. `scripts/sandbox` builds what it
//! needs and runs it.

use lmi_sandbox::{
    absolute, detail, fixtures, kubectl, manifests, path_str, query, report, step, stop,
};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use lmi_test_support::kube::{ControlPlane, ControlPlaneOptions};
use lmi_test_support::{AwsEmulator, EmulatorOptions};

/// Flags of `lmi-sandbox` (`scripts/sandbox` passes the paths of what it built).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The `lmi-operator` binary to run.
    #[arg(long)]
    operator: PathBuf,
    /// The `kubectl` binary used to apply the examples and show them.
    #[arg(long)]
    kubectl: PathBuf,
    /// The `helm` binary that installs the chart.
    #[arg(long)]
    helm: PathBuf,
    /// The Helm chart to install.
    #[arg(long, default_value = "charts/lmi-operator")]
    chart: PathBuf,
    /// Directory with `bootstrap-x86_64.zip` and `bootstrap-arm64.zip` for the operator.
    #[arg(long)]
    handler_dir: PathBuf,
    /// Directory of manifests to apply.
    #[arg(long, default_value = "examples")]
    examples: PathBuf,
    /// Where the kubeconfig, logs and rendered manifests go.
    #[arg(long, default_value = ".sandbox")]
    state: PathBuf,
    /// How long capacity providers and versions stay Pending in the emulator, as in AWS.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    state_delay: Duration,
    /// How long to wait for everything to become Ready.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Exit (cleanly, status 0) once everything is Ready instead of waiting for Ctrl-C.
    #[arg(long)]
    exit_when_ready: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => {}
        Err(error) => {
            eprintln!("sandbox failed: {error:#}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    for (what, path) in [
        ("operator binary", &args.operator),
        ("kubectl", &args.kubectl),
        ("helm", &args.helm),
        ("chart", &args.chart),
        ("handler directory", &args.handler_dir),
    ] {
        if !path.exists() {
            bail!("the {what} {} does not exist", path.display());
        }
    }
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("create {}", args.state.display()))?;
    let examples = manifests::read(&args.examples)?;

    step("starting the AWS emulator (moto with the Lambda Managed Instances API)");
    let aws = AwsEmulator::start_with(EmulatorOptions {
        state_delay: args.state_delay,
        ..EmulatorOptions::default()
    })
    .await
    .context("start the AWS emulator")?;
    detail(&format!("AWS endpoint {}", aws.endpoint()));

    step("creating the sandbox account: network, IAM roles, sample catalogs");
    let fixtures = fixtures::create(&aws, &examples).await?;
    report::fixtures(&fixtures);

    step("starting a Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)");
    let plane = ControlPlane::start(ControlPlaneOptions {
        controller_manager: true,
    })
    .await
    .context("start the control plane (scripts/fetch-tools finds its binaries)")?;
    let kubeconfig = absolute(&args.state.join("kubeconfig"))?;
    plane
        .write_kubeconfig(&kubeconfig, plane.admin_token(), None)
        .context("write the kubeconfig")?;
    detail(&format!(
        "{} (logs in {}); kubeconfig {}",
        plane.url(),
        plane.dir().display(),
        kubeconfig.display()
    ));

    step("helm install lmi charts/lmi-operator --namespace lmi-system --create-namespace");
    lmi_sandbox::helm_install(&args.helm, &kubeconfig, &args.chart).await?;
    let token = plane
        .service_account_token(lmi_sandbox::NAMESPACE, lmi_sandbox::SERVICE_ACCOUNT)
        .await
        .context("a token for the chart's ServiceAccount")?;
    let operator_kubeconfig = absolute(&args.state.join("operator.kubeconfig"))?;
    plane
        .write_kubeconfig(&operator_kubeconfig, &token, None)
        .context("write the operator's kubeconfig")?;
    detail("CRDs, ServiceAccount, RBAC installed; the operator runs as that ServiceAccount");

    step("starting lmi-operator");
    let log_path = args.state.join("operator.log");
    let mut operator = lmi_sandbox::spawn_operator(
        &args.operator,
        &args.handler_dir,
        aws.client_env(),
        &operator_kubeconfig,
        &log_path,
        &[
            "--resync-interval",
            "30s",
            "--pending-interval",
            "1s",
            "--namespace",
            lmi_sandbox::NAMESPACE,
        ],
    )?;
    detail(&format!("logs in {}", log_path.display()));

    let rendered = args.state.join("examples");
    manifests::write_rendered(&examples, &fixtures.ids, &rendered)?;
    step(&format!(
        "kubectl apply -f {} (examples/ with the sandbox's subnet and security group ids)",
        rendered.display()
    ));
    kubectl(
        &args.kubectl,
        &kubeconfig,
        &["apply", "-f", path_str(&rendered)?],
    )
    .await?;

    step("waiting until every CapacityProvider and SimilarityFunction is Ready");
    let started = Instant::now();
    let client = plane.admin_client().await?;
    let ready = tokio::select! {
        ready = report::wait_ready(&client, &examples, args.timeout) => ready,
        exit = operator.wait() => Err(anyhow::anyhow!(
            "the operator exited ({}) before everything was Ready; see {}",
            exit.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            log_path.display()
        )),
        _ = shutdown() => {
            stop(&mut operator).await;
            return Ok(());
        }
    };
    if let Err(error) = ready {
        report::operator_log_tail(&log_path);
        stop(&mut operator).await;
        return Err(error);
    }
    detail(&format!(
        "all Ready in {:.1}s",
        started.elapsed().as_secs_f64()
    ));

    step("kubectl get lmicp,simfn -A");
    kubectl(
        &args.kubectl,
        &kubeconfig,
        &["get", "lmicp,simfn", "-A", "-o", "wide"],
    )
    .await?;
    step("what the operator created in AWS");
    report::aws_side(&aws).await?;

    if let Some((namespace, name)) = examples.functions.first() {
        step(&format!(
            "a sample similarity query: Invoke on the published version ({namespace}/{name})"
        ));
        match query::sample(&client, &aws, namespace, name).await {
            Ok(answer) => query::print(&answer),
            Err(error) => {
                stop(&mut operator).await;
                return Err(error.context("the sample query"));
            }
        }
    }

    println!();
    println!("sandbox ready");
    println!(
        "  export KUBECONFIG={}   # then: kubectl get lmicp,simfn -A; kubectl describe simfn -A",
        kubeconfig.display()
    );
    println!(
        "  AWS emulator: {}   operator log: {}",
        aws.endpoint(),
        log_path.display()
    );
    if args.exit_when_ready {
        stop(&mut operator).await;
        return Ok(());
    }
    println!("  Ctrl-C stops everything.");
    tokio::select! {
        _ = shutdown() => {}
        exit = operator.wait() => {
            report::operator_log_tail(&log_path);
            bail!("the operator exited unexpectedly ({exit:?}); see {}", log_path.display());
        }
    }
    step("shutting down");
    stop(&mut operator).await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
