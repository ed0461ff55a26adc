//! The one context every reconcile gets: clients, configuration read once at start-up,
//! metrics, the event reporter and per-object retry counts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use super::error::{Backoff, FailureCounts};
use super::similarity_function::code::HandlerBundles;
use crate::aws::call_metrics::AwsCallCounter;
use crate::aws::rate::{AwsRates, RateLimits};
use crate::aws::{AwsClients, AwsTimeouts};
use crate::metrics::Metrics;
use crate::runtime::health::Readiness;
use crate::runtime::http::Probes;
use crate::runtime::liveness::Liveness;

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
    /// How often an object waiting on AWS (Pending, Deleting) is looked at again at first.
    pub pending_interval: Duration,
    /// The slowest an object waiting on AWS is polled as its wait goes on: LMI starts execution
    /// environments in minutes, and polling every 10 s for all of that is 90 reads a version.
    pub slowest_pending_poll: Duration,
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
    /// Time limits of every AWS call.
    pub aws_timeouts: AwsTimeouts,
    /// The longest one reconcile may run; it is then abandoned and retried with backoff.
    pub reconcile_timeout: Duration,
    /// `/healthz` fails when reconciles are in flight and none finished for this long.
    pub stall_timeout: Duration,
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
            slowest_pending_poll: Duration::from_secs(60),
            backoff: Backoff::default(),
            handler_dir: PathBuf::from("/opt/lmi-operator/handler"),
            capacity_provider_concurrency: 2,
            similarity_function_concurrency: 4,
            aws_rates: AwsRates::default(),
            max_versions_per_capacity_provider: 100,
            aws_timeouts: AwsTimeouts::default(),
            reconcile_timeout: Duration::from_secs(300),
            stall_timeout: Duration::from_secs(900),
        }
    }
}

impl Config {
    /// When to look again at an object that has been waiting on AWS for `waited` (since its
    /// Ready condition last changed): every `pending_interval` at first, then a sixth of the
    /// wait so far, up to `slowest_pending_poll` (or the interval, if that is longer).
    pub fn pending_delay(&self, waited: Duration) -> Duration {
        (waited / 6).clamp(
            self.pending_interval,
            self.slowest_pending_poll.max(self.pending_interval),
        )
    }

    /// [`Config::pending_delay`] for an object being deleted since `deleted` (its deletion
    /// timestamp), at `now`.
    pub fn deleting_delay(
        &self,
        deleted: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
        now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    ) -> Duration {
        let waited = deleted
            .and_then(|t| now.0.duration_since(t.0).try_into().ok())
            .unwrap_or_default();
        self.pending_delay(waited)
    }

    /// [`Config::pending_delay`] for an object with these conditions, at `now`.
    pub fn pending_delay_for(
        &self,
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    ) -> Duration {
        let waited = conditions
            .iter()
            .find(|c| c.type_ == crate::api::conditions::READY)
            .and_then(|c| {
                now.0
                    .duration_since(c.last_transition_time.0)
                    .try_into()
                    .ok()
            })
            .unwrap_or_default();
        self.pending_delay(waited)
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
    /// Liveness (`/healthz`): each reconcile is marked in flight here.
    pub liveness: Liveness,
    /// The handler builds bundled with the operator (`--handler-dir`).
    pub handlers: HandlerBundles,
    recorder: Recorder,
    failures: FailureCounts,
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
        let liveness = Liveness::new(config.stall_timeout);
        let failures = FailureCounts::new(config.backoff.forget_after());
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            aws: AwsClients::with_call_metrics(
                &sdk_config,
                AwsCallCounter::new(metrics.aws_calls.clone()),
                RateLimits::new(config.aws_rates, metrics.aws_rates.clone()),
                config.aws_timeouts,
            ),
            sdk_config,
            regional: Mutex::new(HashMap::new()),
            handlers: HandlerBundles::new(&config.handler_dir),
            config,
            metrics,
            readiness: Readiness::default(),
            liveness,
            failures,
        }
    }

    /// What `/healthz` and `/readyz` read.
    pub fn probes(&self) -> Probes {
        Probes {
            readiness: self.readiness.clone(),
            liveness: self.liveness.clone(),
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
                            self.config.aws_timeouts,
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
        self.failures.record(key)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_failures(&self, key: &str) {
        self.failures.reset(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_objects_are_polled_less_often_the_longer_they_wait() {
        let config = Config::default();
        let secs = Duration::from_secs;
        assert_eq!(config.pending_delay(Duration::ZERO), secs(10));
        assert_eq!(config.pending_delay(secs(30)), secs(10));
        assert_eq!(config.pending_delay(secs(180)), secs(30));
        assert_eq!(config.pending_delay(secs(900)), secs(60));
        let slow = Config {
            pending_interval: secs(120),
            ..Config::default()
        };
        assert_eq!(
            slow.pending_delay(secs(900)),
            secs(120),
            "never faster than asked"
        );
    }
}
