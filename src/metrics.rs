//! Prometheus metrics (prefix `lmi`): reconciles and their duration by kind and result,
//! failures by bounded reason, drift found, and AWS calls by operation and outcome.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::aws::rate::RateMetrics;

/// Labels: the kind reconciled.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `CapacityProvider` or `SimilarityFunction`.
    pub kind: &'static str,
}

/// Labels: kind and outcome of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The kind reconciled.
    pub kind: &'static str,
    /// `success`, `error`, or `cancelled` (stopped midway: shutdown or lost leadership).
    pub result: &'static str,
}

/// Labels: kind and bounded error reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The kind reconciled.
    pub kind: &'static str,
    /// A bounded reason (`Throttled`, `AccessDenied`, …).
    pub reason: &'static str,
}

/// Labels: an AWS call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    /// `lambda` or `ec2`.
    pub service: String,
    /// Operation name, e.g. `CreateCapacityProvider`.
    pub operation: String,
    /// `success` or a bounded error reason.
    pub outcome: String,
}

/// The operator's metrics.
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    duration: Family<ResultLabels, Histogram>,
    failures: Family<ReasonLabels, Counter>,
    drift: Family<KindLabels, Counter>,
    /// AWS calls by service, operation and outcome.
    pub aws_calls: Family<AwsCallLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
    /// Waits for the client-side AWS request rates (`crate::aws::rate`).
    pub aws_rates: RateMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 12))
            }),
            failures: Family::default(),
            drift: Family::default(),
            aws_calls: Family::default(),
            leader: Gauge::default(),
            aws_rates: RateMetrics::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `lmi` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("lmi");
        r.register(
            "reconciles",
            "Reconciles by kind and result",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind and result",
            self.duration.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciles by kind and reason",
            self.failures.clone(),
        );
        r.register(
            "drift_detected",
            "Resyncs that found drift, by kind",
            self.drift.clone(),
        );
        r.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome",
            self.aws_calls.clone(),
        );
        r.register(
            "aws_rate_limit_waits",
            "AWS calls that waited for the client-side request rate, by bucket",
            self.aws_rates.waits.clone(),
        );
        r.register(
            "aws_rate_limit_wait_seconds",
            "Seconds AWS calls waited for the client-side request rate, by bucket",
            self.aws_rates.wait_seconds.clone(),
        );
        r.register(
            "leader",
            "1 while this replica is the leader",
            self.leader.clone(),
        );
    }

    /// Starts timing a reconcile. [`ReconcileTimer::finish`] counts it with its result; a
    /// timer dropped unfinished (the reconcile was cancelled) counts as `cancelled`.
    pub fn reconcile_timer(&self, kind: &'static str) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            kind,
            start: Instant::now(),
            result: "cancelled",
        }
    }

    fn record(&self, kind: &'static str, result: &'static str, seconds: f64) {
        let labels = ResultLabels { kind, result };
        self.reconciles.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
    }

    /// Counts a failure by reason.
    pub fn failed(&self, kind: &'static str, reason: &'static str) {
        self.failures
            .get_or_create(&ReasonLabels { kind, reason })
            .inc();
    }

    /// Counts a resync that found drift.
    pub fn drift_found(&self, kind: &'static str) {
        self.drift.get_or_create(&KindLabels { kind }).inc();
    }
}

/// Times one reconcile; counts it and records its duration when finished or dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
    result: &'static str,
}

impl ReconcileTimer<'_> {
    /// The reconcile finished, successfully or not.
    pub fn finish(mut self, ok: bool) {
        self.result = if ok { "success" } else { "error" };
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .record(self.kind, self.result, self.start.elapsed().as_secs_f64());
    }
}
