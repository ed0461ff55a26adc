//! The one context every reconcile gets: clients, configuration read once at start-up,
//! metrics, the event reporter and per-object retry counts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::error::Backoff;
use super::similarity_function::code::HandlerBundles;
use crate::aws::AwsClients;
use crate::aws::call_metrics::AwsCallCounter;
use crate::aws::rate::{AwsRates, RateLimits};
use crate::metrics::Metrics;
use crate::runtime::health::Readiness;

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "lmi-operator";

/// Operator configuration, read once at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Names this cluster in ownership tags and derived AWS names.
    pub cluster_name: String,
    /// This installation of the operator, in the ownership tags (`identity::installation_id`).
    pub installation_id: String,
    /// S3 buckets handler code may come from (`spec.code.s3`); empty: any the grants allow.
    pub code_buckets: Vec<String>,
    /// The operator's own namespace.
    pub namespace: String,
    /// How often a Ready object is compared with AWS again (jittered).
    pub resync_interval: Duration,
    /// How often an object waiting on AWS (Pending, Deleting) is looked at again.
    pub pending_interval: Duration,
    /// Retry delays after errors.
    pub backoff: Backoff,
    /// Directory with `bootstrap-x86_64.zip` and `bootstrap-arm64.zip`.
    pub handler_dir: PathBuf,
    /// How many CapacityProviders are reconciled at once (never the same one twice).
    pub capacity_provider_concurrency: u16,
    /// How many SimilarityFunctions are reconciled at once (never the same one twice).
    pub similarity_function_concurrency: u16,
    /// Lambda request rates per account and region, shared by all reconciles.
    pub aws_rates: AwsRates,
    /// Function versions AWS allows per capacity provider.
    pub max_versions_per_capacity_provider: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_name: "default".into(),
            installation_id: "default".into(),
            code_buckets: Vec::new(),
            namespace: "lmi-system".into(),
            resync_interval: Duration::from_secs(300),
            pending_interval: Duration::from_secs(10),
            backoff: Backoff::default(),
            handler_dir: PathBuf::from("/opt/lmi-operator/handler"),
            capacity_provider_concurrency: 2,
            similarity_function_concurrency: 4,
            aws_rates: AwsRates::default(),
            max_versions_per_capacity_provider: 100,
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// AWS clients for the operator's region.
    pub aws: AwsClients,
    sdk_config: aws_config::SdkConfig,
    regional: Mutex<HashMap<String, AwsClients>>,
    /// Configuration.
    pub config: Config,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness (`/readyz`): each controller registers its cache here.
    pub readiness: Readiness,
    /// The handler builds bundled with the operator (`--handler-dir`).
    pub handlers: HandlerBundles,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// Builds the context.
    pub fn new(
        client: Client,
        sdk_config: aws_config::SdkConfig,
        config: Config,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            aws: AwsClients::with_call_metrics(
                &sdk_config,
                AwsCallCounter::new(metrics.aws_calls.clone()),
                RateLimits::new(config.aws_rates, metrics.aws_rates.clone()),
            ),
            sdk_config,
            regional: Mutex::new(HashMap::new()),
            handlers: HandlerBundles::new(&config.handler_dir),
            config,
            metrics,
            readiness: Readiness::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// AWS clients for `region` (the operator's own region when `None`).
    pub fn aws_for(&self, region: Option<&str>) -> AwsClients {
        match region {
            Some(r) if r != self.aws.region => {
                let mut regional = self.regional.lock().unwrap_or_else(|p| p.into_inner());
                regional
                    .entry(r.to_owned())
                    .or_insert_with(|| {
                        let config = self
                            .sdk_config
                            .to_builder()
                            .region(aws_config::Region::new(r.to_owned()))
                            .build();
                        AwsClients::with_call_metrics(
                            &config,
                            AwsCallCounter::new(self.metrics.aws_calls.clone()),
                            RateLimits::new(self.config.aws_rates, self.metrics.aws_rates.clone()),
                        )
                    })
                    .clone()
            }
            _ => self.aws.clone(),
        }
    }

    /// Publishes a Kubernetes event about `object`. Events are best effort: a failure is
    /// logged, never fails the reconcile.
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }

    /// Counts a failed reconcile of `key` and returns how many in a row.
    pub fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}
