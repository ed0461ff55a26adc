//! Client-side request rates: every Lambda call waits for its account-and-region bucket before
//! it is sent, so that all reconciles together stay within AWS's rates and a cluster with
//! hundreds of resources never throttles itself into backoff storms.
//!
//! AWS's figures, per account and region:
//! - capacity-provider APIs, "15 requests per second" for all reads and "1 request per second"
//!   for all writes combined, neither adjustable (Lambda developer guide, "Lambda Managed
//!   Instances quotas");
//! - Lambda's control plane, "15 requests per second across all control plane API requests"
//!   except invocations, `GetFunction` (100 per second) and `GetPolicy` (Lambda developer guide,
//!   "Lambda quotas").
//!
//! The defaults keep 10% below them. AWS measures the rate where requests arrive, so a client
//! pacing when it *sends* is refused whenever one request travels faster than the one before:
//! capacity-provider writes, at one a second, are therefore paced from the previous write's
//! *answer* (one write in flight, the next sent a period after the last answer), which keeps
//! their arrivals a period apart whatever the network does. The rates are flags
//! (`--aws-*-per-second`) for an account other tools also use.
//! Waits are counted in `lmi_aws_rate_limit_waits` and `lmi_aws_rate_limit_wait_seconds`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Which of AWS's rates a call counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Get/ListCapacityProviders, ListFunctionVersionsByCapacityProvider.
    CapacityProviderRead,
    /// Create/Update/DeleteCapacityProvider.
    CapacityProviderWrite,
    /// Every other Lambda control-plane call (functions, versions, scaling, tags).
    ControlPlane,
    /// GetFunction.
    GetFunction,
}

impl Bucket {
    fn label(self) -> &'static str {
        match self {
            Bucket::CapacityProviderRead => "capacity_provider_read",
            Bucket::CapacityProviderWrite => "capacity_provider_write",
            Bucket::ControlPlane => "control_plane",
            Bucket::GetFunction => "get_function",
        }
    }
}

/// Requests per second for each bucket (0: unlimited).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AwsRates {
    /// Capacity-provider reads, combined.
    pub capacity_provider_reads: f64,
    /// Capacity-provider writes, combined.
    pub capacity_provider_writes: f64,
    /// Lambda control-plane calls other than GetFunction.
    pub control_plane: f64,
    /// GetFunction.
    pub get_function: f64,
}

impl Default for AwsRates {
    /// 90% of AWS's rates (module documentation).
    fn default() -> Self {
        Self {
            capacity_provider_reads: 13.5,
            capacity_provider_writes: 0.9,
            control_plane: 13.5,
            get_function: 90.0,
        }
    }
}

/// Labels of the rate-limit metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    /// `capacity_provider_read`, `capacity_provider_write`, `control_plane` or `get_function`.
    pub bucket: &'static str,
}

/// Counters of the waits (shared with [`crate::metrics::Metrics`]).
#[derive(Clone, Debug, Default)]
pub struct RateMetrics {
    /// Calls that had to wait, by bucket.
    pub waits: Family<BucketLabels, Counter>,
    /// Seconds waited, by bucket.
    pub wait_seconds: Family<BucketLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
}

/// The buckets of one account and region, shared by every clone of the clients.
#[derive(Clone)]
pub struct RateLimits {
    reads: Option<Arc<DefaultDirectRateLimiter>>,
    control_plane: Option<Arc<DefaultDirectRateLimiter>>,
    get_function: Option<Arc<DefaultDirectRateLimiter>>,
    /// Capacity-provider writes: one at a time, a period after the last answer.
    writes: Option<(Duration, Arc<tokio::sync::Mutex<Option<Instant>>>)>,
    metrics: RateMetrics,
}

/// Held for the duration of a call (`let _permit = rates.acquire(..).await`): for a
/// capacity-provider write, the next one waits until a period after this one was answered.
#[must_use = "hold the permit until the call is answered"]
pub struct Permit {
    write: Option<tokio::sync::OwnedMutexGuard<Option<Instant>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(last) = self.write.as_mut() {
            **last = Some(Instant::now());
        }
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Buckets for `rates`.
    pub fn new(rates: AwsRates, metrics: RateMetrics) -> Self {
        let writes = rates.capacity_provider_writes;
        Self {
            reads: limiter(rates.capacity_provider_reads),
            control_plane: limiter(rates.control_plane),
            get_function: limiter(rates.get_function),
            writes: (writes.is_finite() && writes > 0.0).then(|| {
                (
                    Duration::from_secs_f64(1.0 / writes),
                    Arc::new(tokio::sync::Mutex::new(None)),
                )
            }),
            metrics,
        }
    }

    /// No limits (tests of other behaviour).
    pub fn unlimited() -> Self {
        Self::new(
            AwsRates {
                capacity_provider_reads: 0.0,
                capacity_provider_writes: 0.0,
                control_plane: 0.0,
                get_function: 0.0,
            },
            RateMetrics::default(),
        )
    }

    /// Waits until a call of `bucket` may be sent; hold the permit until it is answered.
    pub async fn acquire(&self, bucket: Bucket) -> Permit {
        let start = Instant::now();
        let mut waited = false;
        let mut write = None;
        let limiter = match bucket {
            Bucket::CapacityProviderRead => self.reads.as_deref(),
            Bucket::ControlPlane => self.control_plane.as_deref(),
            Bucket::GetFunction => self.get_function.as_deref(),
            Bucket::CapacityProviderWrite => None,
        };
        if let Some(limiter) = limiter
            && limiter.check().is_err()
        {
            limiter.until_ready().await;
            waited = true;
        }
        if bucket == Bucket::CapacityProviderWrite
            && let Some((period, gate)) = &self.writes
        {
            let last = gate.clone().lock_owned().await;
            if let Some(ready) = last.map(|t| t + *period)
                && ready > Instant::now()
            {
                tokio::time::sleep_until(ready.into()).await;
            }
            waited = start.elapsed() > Duration::from_millis(1);
            write = Some(last);
        }
        if waited {
            let labels = BucketLabels {
                bucket: bucket.label(),
            };
            self.metrics.waits.get_or_create(&labels).inc();
            self.metrics
                .wait_seconds
                .get_or_create(&labels)
                .inc_by(start.elapsed().as_secs_f64());
        }
        Permit { write }
    }
}

/// A bucket of `per_second` requests that holds one second's worth (at least one); `None` for
/// 0 (or a value that is no rate).
fn limiter(per_second: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    let period = Duration::from_secs_f64(1.0 / per_second);
    // at least 1, and at most what fits a u32 (a rate that high is no limit in practice)
    let burst = NonZeroU32::new(per_second.floor().clamp(1.0, f64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period).map(|q| Arc::new(RateLimiter::direct(q.allow_burst(burst))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_lets_its_burst_through_then_paces_to_its_rate() {
        let rates = AwsRates {
            capacity_provider_reads: 20.0,
            ..AwsRates::default()
        };
        let limits = RateLimits::new(rates, RateMetrics::default());
        let start = Instant::now();
        for _ in 0..30 {
            let _permit = limits.acquire(Bucket::CapacityProviderRead).await;
        }
        // a burst of 20, then 10 more at 20 per second: about half a second
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
        let labels = BucketLabels {
            bucket: "capacity_provider_read",
        };
        assert_eq!(limits.metrics.waits.get_or_create(&labels).get(), 10);
        assert!(limits.metrics.wait_seconds.get_or_create(&labels).get() >= 0.4);
    }

    #[tokio::test]
    async fn buckets_are_independent_and_zero_means_unlimited() {
        let rates = AwsRates {
            capacity_provider_writes: 1.0,
            control_plane: 0.0,
            ..AwsRates::default()
        };
        let limits = RateLimits::new(rates, RateMetrics::default());
        drop(limits.acquire(Bucket::CapacityProviderWrite).await);
        let start = Instant::now();
        for _ in 0..1000 {
            let _permit = limits.acquire(Bucket::ControlPlane).await;
        }
        let _permit = limits.acquire(Bucket::CapacityProviderRead).await;
        assert!(start.elapsed() < Duration::from_millis(200));
        assert!(limiter(f64::NAN).is_none());
        assert!(limiter(-1.0).is_none());
        assert!(limiter(f64::INFINITY).is_none());
    }

    #[tokio::test]
    async fn writes_go_one_at_a_time_a_period_after_the_last_answer() {
        let rates = AwsRates {
            capacity_provider_writes: 10.0,
            ..AwsRates::default()
        };
        let limits = RateLimits::new(rates, RateMetrics::default());
        let first = limits.acquire(Bucket::CapacityProviderWrite).await;
        // a second write waits while the first is in flight ...
        let second = {
            let limits = limits.clone();
            tokio::spawn(async move {
                let _permit = limits.acquire(Bucket::CapacityProviderWrite).await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answered = Instant::now();
        drop(first);
        // ... and is sent a period (100 ms) after the first was answered
        let sent = second.await.expect("second write");
        assert!(
            sent >= answered + Duration::from_millis(95),
            "{:?}",
            sent - answered
        );
    }

    #[test]
    fn the_defaults_stay_below_awss_rates() {
        let r = AwsRates::default();
        assert!(r.capacity_provider_reads < 15.0 && r.capacity_provider_writes < 1.0);
        assert!(r.control_plane < 15.0 && r.get_function < 100.0);
    }
}
