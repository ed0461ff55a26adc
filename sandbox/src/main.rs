//! `lmi-sandbox`: the whole product on one machine, without a cluster or an AWS account.
//!
//! Starts the AWS emulator (moto with the LMI API) holding a ready-made network, the IAM roles
//! and the sample catalogs the examples name; starts the in-memory Kubernetes API server with
//! our CRDs; runs the real `lmi-operator` binary against both; applies `examples/` with the
//! real `kubectl`; waits until every resource is Ready; prints what a user would check; and
//! keeps everything running until Ctrl-C. `scripts/sandbox` builds what it needs and runs it.

use lmi_sandbox::{absolute, detail, fixtures, kubectl, manifests, path_str, report, step, stop};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use lmi_test_apiserver::TestApiServer;
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
    /// Directory with `bootstrap-x86_64.zip` and `bootstrap-arm64.zip` for the operator.
    #[arg(long)]
    handler_dir: PathBuf,
    /// A `bootstrap` binary for this machine, to run a sample query through the handler.
    #[arg(long)]
    handler: Option<PathBuf>,
    /// Directory of manifests to apply.
    #[arg(long, default_value = "examples")]
    examples: PathBuf,
    /// Directory of the CRDs to install.
    #[arg(long, default_value = "crds")]
    crds: PathBuf,
    /// Where the kubeconfig, logs and rendered manifests go.
    #[arg(long, default_value = ".sandbox")]
    state: PathBuf,
    /// Port of the API server (0: any free port).
    #[arg(long, default_value_t = 0)]
    api_port: u16,
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
        ("handler directory", &args.handler_dir),
        ("CRD directory", &args.crds),
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

    step("starting the in-memory Kubernetes API server");
    let api = TestApiServer::start_on(([127, 0, 0, 1], args.api_port).into())
        .await
        .context("start the API server")?;
    let crds = api
        .load_crds(&args.crds)
        .with_context(|| format!("install the CRDs of {}", args.crds.display()))?;
    let kubeconfig = absolute(&args.state.join("kubeconfig"))?;
    api.write_kubeconfig(&kubeconfig)
        .context("write the kubeconfig")?;
    detail(&format!(
        "{} with {crds} CRDs; kubeconfig {}",
        api.url(),
        kubeconfig.display()
    ));

    step("starting lmi-operator");
    let log_path = args.state.join("operator.log");
    let mut operator = lmi_sandbox::spawn_operator(
        &args.operator,
        &args.handler_dir,
        aws.client_env(),
        &kubeconfig,
        &log_path,
        &["--resync-interval", "30s", "--pending-interval", "1s"],
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
    let client = api.client();
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

    if let Some(_handler) = &args.handler {
        step("a sample similarity query through the handler");
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
