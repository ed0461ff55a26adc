//! `lmi-operator run`: the controllers against the cluster from `KUBECONFIG` (or in-cluster)
//! and AWS from the default credential chain (`AWS_ENDPOINT_URL` honoured).

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{CapacityProvider, SimilarityFunction};
use crate::aws::AwsTimeouts;
use crate::aws::rate::AwsRates;
use crate::controller::{Config, Context, Error, capacity_provider, similarity_function};
use crate::identity;
use crate::metrics::Metrics;
use crate::runtime::args::RuntimeArgs;

/// Flags of `lmi-operator run` (each with an environment fallback).
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Name of this cluster: part of every derived AWS name and of the ownership tags. Two
    /// clusters sharing an AWS account must use different names.
    #[arg(long, env = "LMI_CLUSTER_NAME")]
    pub cluster_name: String,

    /// The operator's namespace (its Lease lives there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "lmi-system")]
    pub namespace: String,

    /// Identity of this installation in the ownership tags of everything it creates. Default:
    /// the uid of the cluster's `kube-system` namespace and the operator's namespace, unique per
    /// cluster and namespace. Set it only to take over the AWS resources of a cluster that was
    /// rebuilt (use the old cluster's value, from the `lmi.dev/installation` tag).
    #[arg(long, env = "LMI_INSTALLATION_ID")]
    pub installation_id: Option<String>,

    /// S3 buckets SimilarityFunctions may load handler code from (`spec.code.s3`), comma
    /// separated: the buckets the operator's IAM policy lets Lambda read (`lmi-operator
    /// iam-policy --code-bucket`). Code from other buckets is refused before any AWS call.
    /// Empty (default): only the grants decide.
    #[arg(long, env = "LMI_CODE_BUCKETS", value_delimiter = ',')]
    pub code_buckets: Vec<String>,

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

    /// Capacity-provider read requests per second (Get, List, ListFunctionVersionsBy…), for the
    /// account and region, all reconciles together. AWS allows 15, not adjustable; 0: no limit.
    #[arg(long, env = "LMI_AWS_CAPACITY_PROVIDER_READS_PER_SECOND", default_value_t = AwsRates::default().capacity_provider_reads)]
    pub aws_capacity_provider_reads_per_second: f64,

    /// Capacity-provider write requests per second (Create, Update, Delete). AWS allows 1, not
    /// adjustable; 0: no limit.
    #[arg(long, env = "LMI_AWS_CAPACITY_PROVIDER_WRITES_PER_SECOND", default_value_t = AwsRates::default().capacity_provider_writes)]
    pub aws_capacity_provider_writes_per_second: f64,

    /// Lambda control-plane requests per second other than GetFunction (functions, versions,
    /// scaling, tags). AWS allows 15 per account and region; 0: no limit.
    #[arg(long, env = "LMI_AWS_CONTROL_PLANE_PER_SECOND", default_value_t = AwsRates::default().control_plane)]
    pub aws_control_plane_per_second: f64,

    /// Function versions AWS allows on one capacity provider (100, not adjustable): the
    /// budget admission shares among the provider's functions.
    #[arg(
        long,
        env = "LMI_MAX_VERSIONS_PER_CAPACITY_PROVIDER",
        default_value_t = 100
    )]
    pub max_versions_per_capacity_provider: usize,

    /// GetFunction requests per second. AWS allows 100; 0: no limit.
    #[arg(long, env = "LMI_AWS_GET_FUNCTION_PER_SECOND", default_value_t = AwsRates::default().get_function)]
    pub aws_get_function_per_second: f64,

    /// Time limit of one attempt of an AWS call, from sending the request to reading the whole
    /// response: a connection that stalls after connecting fails here and is retried.
    #[arg(long, env = "LMI_AWS_ATTEMPT_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub aws_attempt_timeout: Duration,

    /// Time limit of an AWS call, its retries included.
    #[arg(long, env = "LMI_AWS_OPERATION_TIMEOUT", default_value = "3m", value_parser = humantime::parse_duration)]
    pub aws_operation_timeout: Duration,

    /// Time limit of one reconcile: past it the reconcile is abandoned and retried with backoff.
    #[arg(long, env = "LMI_RECONCILE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub reconcile_timeout: Duration,

    /// `/healthz` fails (and the kubelet restarts the container) when reconciles are in flight
    /// and none has finished for this long. Keep it above `--reconcile-timeout`.
    #[arg(long, env = "LMI_STALL_TIMEOUT", default_value = "15m", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,

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
    /// The time limits must nest: an attempt within its call, a reconcile within the stall
    /// that fails liveness (or every slow reconcile would restart the container).
    fn check_timeouts(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.aws_attempt_timeout <= self.aws_operation_timeout,
            "--aws-attempt-timeout ({:?}) must not exceed --aws-operation-timeout ({:?})",
            self.aws_attempt_timeout,
            self.aws_operation_timeout
        );
        anyhow::ensure!(
            self.reconcile_timeout < self.stall_timeout,
            "--reconcile-timeout ({:?}) must be shorter than --stall-timeout ({:?})",
            self.reconcile_timeout,
            self.stall_timeout
        );
        Ok(())
    }

    fn config(&self, installation_id: String) -> Config {
        let mut config = Config {
            cluster_name: self.cluster_name.clone(),
            installation_id,
            code_buckets: self.code_buckets.clone(),
            namespace: self.namespace.clone(),
            resync_interval: self.resync_interval,
            pending_interval: self.pending_interval,
            handler_dir: self.handler_dir.clone(),
            max_versions_per_capacity_provider: self.max_versions_per_capacity_provider,
            aws_rates: AwsRates {
                capacity_provider_reads: self.aws_capacity_provider_reads_per_second,
                capacity_provider_writes: self.aws_capacity_provider_writes_per_second,
                control_plane: self.aws_control_plane_per_second,
                get_function: self.aws_get_function_per_second,
            },
            aws_timeouts: AwsTimeouts {
                attempt: self.aws_attempt_timeout,
                operation: self.aws_operation_timeout,
                ..AwsTimeouts::default()
            },
            reconcile_timeout: self.reconcile_timeout,
            stall_timeout: self.stall_timeout,
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
    identity::check_cluster_name(&args.cluster_name).map_err(anyhow::Error::msg)?;
    args.check_timeouts()?;
    let kube_config = kube::Config::infer()
        .await
        .context("finding Kubernetes (KUBECONFIG or in-cluster)")?;
    let client = Client::try_from(kube_config.clone()).context("connecting to Kubernetes")?;
    let installation_id = match &args.installation_id {
        Some(id) => id.clone(),
        None => installation_id(&client, &args.namespace).await?,
    };
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let metrics = Arc::new(Metrics::default());
    let runtime = args.runtime.runtime(&kube_config, &args.namespace).await?;
    let ctx = Arc::new(Context::new(
        client,
        sdk_config,
        args.config(installation_id),
        metrics,
    ));
    tracing::info!(
        cluster = %args.cluster_name,
        installation = %ctx.config.installation_id,
        region = %ctx.aws.region,
        "starting"
    );
    crate::runtime::operate(ctx, runtime, shutdown_signal(), |ctx, stop| {
        controllers(ctx, stop)
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// The default installation id: from the uid of `kube-system` (fixed for the cluster's life).
pub async fn installation_id(client: &Client, namespace: &str) -> anyhow::Result<String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let kube_system = namespaces
        .get("kube-system")
        .await
        .context("reading the kube-system namespace (its uid identifies the cluster)")?;
    let uid = kube_system
        .uid()
        .context("the kube-system namespace has no uid")?;
    Ok(identity::installation_id(&uid, namespace))
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
    let (store, writer) = reflector::store();
    // Like functions, a provider is woken by its spec, finalizers and deletion mark — not by its
    // own status writes (each pass writes `lastSyncTime`, which would wake it for a second
    // pass and double its AWS reads); resyncs come from the requeue of each reconcile.
    let own = watcher(providers, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(deletion_marked),
            Default::default(),
        );
    ctx.readiness.track(capacity_provider::KIND, store.clone());
    let provider_controller = Controller::for_stream(own, store)
        .with_config(concurrency(ctx.config.capacity_provider_concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_provider, provider_error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(name = %object.name, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile did not finish"),
            }
        });
    futures::join!(provider_controller, run_functions(ctx, shutdown));
}

type GuardedFunction = DeserializeGuard<SimilarityFunction>;

/// The SimilarityFunction controller. Its own objects wake it only when the spec, the
/// finalizers or the deletion mark change (not on its own status writes); a CapacityProvider
/// wakes the functions that reference it when what admission reads changes; a Namespace wakes
/// its functions when its labels change; a function whose spec changes or whose deletion starts
/// wakes the functions created after it on the same provider (they are admitted in creation
/// order against the provider's version budget and the grants' limits, so only they can gain or
/// lose their place). Resyncs
/// come from the requeue of each reconcile.
async fn run_functions(ctx: Arc<Context>, shutdown: Shared<BoxFuture<'static, ()>>) {
    let client = ctx.client.clone();
    let functions: Api<GuardedFunction> = Api::all(client.clone());
    let (store, writer) = reflector::store::<GuardedFunction>();
    let own = watcher(functions, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::finalizers)
                .combine(deletion_marked),
            Default::default(),
        );
    let providers: Api<CapacityProvider> = Api::all(client.clone());
    let providers = watcher(providers, watcher::Config::default().any_semantic())
        .default_backoff()
        .touched_objects()
        .predicate_filter(admission_facts, Default::default());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespaces = watcher(namespaces, watcher::Config::default().any_semantic())
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::labels, Default::default());
    let siblings = watcher(
        Api::<GuardedFunction>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(
        predicates::generation.combine(deletion_marked),
        Default::default(),
    );
    let by_provider = store.clone();
    let by_namespace = store.clone();
    let by_sibling = store.clone();
    ctx.readiness
        .track(similarity_function::KIND, store.clone());
    Controller::for_stream(own, store)
        .with_config(concurrency(ctx.config.similarity_function_concurrency))
        .watches_stream(providers, move |cp| {
            functions_where(&by_provider, |f| {
                f.spec.capacity_provider_ref.name == cp.name_any()
            })
        })
        .watches_stream(siblings, move |changed| {
            let Ok(changed) = changed.0 else {
                return Vec::new();
            };
            // The functions created after it on its provider: the provider's version budget and
            // the grants' limits are shared in creation order.
            let provider = &changed.spec.capacity_provider_ref.name;
            functions_where(&by_sibling, |f| {
                f.spec.capacity_provider_ref.name == *provider
                    && f.metadata.creation_timestamp > changed.metadata.creation_timestamp
            })
        })
        .watches_stream(namespaces, move |ns| {
            functions_where(&by_namespace, |f| f.namespace() == Some(ns.name_any()))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile_function, function_error_policy, ctx)
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

fn functions_where(
    store: &Store<GuardedFunction>,
    pick: impl Fn(&SimilarityFunction) -> bool,
) -> Vec<ObjectRef<GuardedFunction>> {
    store
        .state()
        .iter()
        .filter(|guard| guard.0.as_ref().is_ok_and(&pick))
        .map(|guard| ObjectRef::from_obj(guard.as_ref()))
        .collect()
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Predicate: whether the object is marked for deletion.
fn deletion_marked<K: Resource>(object: &K) -> Option<u64> {
    Some(hash_of(object.meta().deletion_timestamp.is_some()))
}

/// Predicate: what a function's admission reads from its provider (the spec, its AWS state and
/// ARN, the deletion mark) — not its resync timestamps.
fn admission_facts(cp: &CapacityProvider) -> Option<u64> {
    let status = cp.status.as_ref();
    Some(hash_of((
        cp.metadata.generation,
        cp.metadata.deletion_timestamp.is_some(),
        status.and_then(|s| s.state),
        status.and_then(|s| s.arn.clone()),
    )))
}

/// Runs one reconcile within `--reconcile-timeout`, marked in flight for liveness.
async fn bounded(
    ctx: &Context,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let _in_flight = ctx.liveness.reconciling();
    let limit = ctx.config.reconcile_timeout;
    tokio::time::timeout(limit, reconcile)
        .await
        .unwrap_or(Err(Error::TimedOut(limit)))
}

async fn reconcile_provider(
    guard: Arc<DeserializeGuard<CapacityProvider>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    match &guard.0 {
        Ok(cp) => {
            let reconcile = capacity_provider::reconcile(Arc::new(cp.clone()), ctx.clone());
            bounded(&ctx, reconcile).await
        }
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

async fn reconcile_function(
    guard: Arc<GuardedFunction>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    match &guard.0 {
        Ok(sf) => {
            let reconcile = similarity_function::reconcile(Arc::new(sf.clone()), ctx.clone());
            bounded(&ctx, reconcile).await
        }
        Err(invalid) => {
            report_invalid(guard.as_ref(), &invalid.error, &ctx).await;
            Ok(Action::await_change())
        }
    }
}

fn function_error_policy(guard: Arc<GuardedFunction>, error: &Error, ctx: Arc<Context>) -> Action {
    match &guard.0 {
        Ok(sf) => similarity_function::error_policy(Arc::new(sf.clone()), error, ctx),
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        let argv = ["lmi-operator", "--cluster-name", "c"].iter().chain(extra);
        Cli::try_parse_from(argv).expect("flags").run
    }

    #[test]
    fn the_default_time_limits_nest() {
        let a = args(&[]);
        a.check_timeouts().expect("defaults are consistent");
        let config = a.config("i".into());
        assert_eq!(config.aws_timeouts.attempt, Duration::from_secs(60));
        assert_eq!(config.reconcile_timeout, Duration::from_secs(300));
        assert!(config.stall_timeout > config.reconcile_timeout);
    }

    #[test]
    fn time_limits_that_do_not_nest_are_refused() {
        let e = args(&["--reconcile-timeout", "20m"])
            .check_timeouts()
            .expect_err("a reconcile longer than the stall");
        assert!(e.to_string().contains("--stall-timeout"), "{e}");
        let e = args(&["--aws-attempt-timeout", "5m"])
            .check_timeouts()
            .expect_err("an attempt longer than its call");
        assert!(e.to_string().contains("--aws-operation-timeout"), "{e}");
    }
}
