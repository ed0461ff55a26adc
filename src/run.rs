//! `lmi-operator run`: the controllers against the cluster from `KUBECONFIG` (or in-cluster)
//! and AWS from the default credential chain (`AWS_ENDPOINT_URL` honoured).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::{FutureExt, StreamExt};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::future::Future;

use crate::api::CapacityProvider;
use crate::controller::{Config, Context, Error, capacity_provider};
use crate::metrics::Metrics;
use crate::runtime::args::RuntimeArgs;

/// Flags of `lmi-operator run` (each with an environment fallback).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Name of this cluster: part of every derived AWS name and of the ownership tags. Two
    /// clusters sharing an AWS account must use different names.
    #[arg(long, env = "LMI_CLUSTER_NAME")]
    pub cluster_name: String,

    /// The operator's namespace; providers admit it by default.
    #[arg(long, env = "POD_NAMESPACE", default_value = "lmi-system")]
    pub namespace: String,

    /// How often Ready resources are compared with AWS for drift (jittered ±20%), e.g. `5m`.
    #[arg(long, env = "LMI_RESYNC_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,

    /// How often resources waiting on AWS (Pending, Deleting) are looked at again.
    #[arg(long, env = "LMI_PENDING_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub pending_interval: Duration,

    /// Retry delay after errors that need a human (invalid input, access denied).
    #[arg(long, env = "LMI_TERMINAL_RETRY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub terminal_retry: Duration,

    /// Directory holding `bootstrap-x86_64.zip` and `bootstrap-arm64.zip`, the handler builds
    /// deployed by default.
    #[arg(
        long,
        env = "LMI_HANDLER_DIR",
        default_value = "/opt/lmi-operator/handler"
    )]
    pub handler_dir: PathBuf,

    /// Log format: `json` (default, for log pipelines) or `text`.
    #[arg(long, env = "LMI_LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,

    /// Leader election, listen addresses, log level, concurrency.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// How logs are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl RunArgs {
    fn config(&self) -> Config {
        let mut config = Config {
            cluster_name: self.cluster_name.clone(),
            namespace: self.namespace.clone(),
            resync_interval: self.resync_interval,
            pending_interval: self.pending_interval,
            handler_dir: self.handler_dir.clone(),
            ..Config::default()
        };
        config.backoff.terminal = self.terminal_retry;
        config.capacity_provider_concurrency = self.runtime.capacity_provider_concurrency;
        config.similarity_function_concurrency = self.runtime.similarity_function_concurrency;
        config
    }
}

/// Sets up logging with `filter` (`--log-level`: a level or `tracing` directives).
pub fn init_tracing(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid --log-level {filter:?}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// Runs the controllers (under leader election unless turned off) and the probe and metrics
/// endpoints until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format, &args.runtime.log_level)?;
    let kube_config = kube::Config::infer()
        .await
        .context("finding Kubernetes (KUBECONFIG or in-cluster)")?;
    let client = Client::try_from(kube_config.clone()).context("connecting to Kubernetes")?;
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let metrics = Arc::new(Metrics::default());
    let runtime = args.runtime.runtime(&kube_config, &args.namespace).await?;
    let ctx = Arc::new(Context::new(client, sdk_config, args.config(), metrics));
    tracing::info!(cluster = %args.cluster_name, region = %ctx.aws.region, "starting");
    crate::runtime::operate(ctx, runtime, shutdown_signal(), |ctx, stop| {
        controllers(ctx, stop)
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs every controller until `shutdown` resolves, then lets in-flight reconciles finish.
pub async fn controllers(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    let shutdown = shutdown.boxed().shared();
    let providers: Api<DeserializeGuard<CapacityProvider>> = Api::all(ctx.client.clone());
    let provider_controller = Controller::new(providers, watcher::Config::default().any_semantic())
        .with_config(concurrency(ctx.config.capacity_provider_concurrency));
    ctx.readiness
        .track(capacity_provider::KIND, provider_controller.store());
    provider_controller
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_provider, provider_error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(name = %object.name, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile did not finish"),
            }
        })
        .await;
}

/// Controller settings: at most `n` objects of the kind reconciled at once.
fn concurrency(n: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(n)
}

async fn reconcile_provider(
    guard: Arc<DeserializeGuard<CapacityProvider>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    match &guard.0 {
        Ok(cp) => capacity_provider::reconcile(Arc::new(cp.clone()), ctx).await,
        Err(invalid) => {
            report_invalid(guard.as_ref(), &invalid.error, &ctx).await;
            Ok(Action::await_change())
        }
    }
}

fn provider_error_policy(
    guard: Arc<DeserializeGuard<CapacityProvider>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    match &guard.0 {
        Ok(cp) => capacity_provider::error_policy(Arc::new(cp.clone()), error, ctx),
        Err(_) => Action::await_change(),
    }
}

/// An object the operator cannot read (written against another schema): tell its owner, and
/// wait for it to change.
async fn report_invalid<K: Resource<DynamicType = ()>>(object: &K, error: &str, ctx: &Context) {
    tracing::warn!(name = %object.name_any(), %error, "cannot read object");
    ctx.event(
        &object.object_ref(&()),
        true,
        "InvalidObject",
        "Reconcile",
        format!("the operator cannot read this object: {error}"),
    )
    .await;
}
