//! Drift (pure): how a function's `$LATEST`, its scaling and its tags differ from the desired
//! state. Settings the spec leaves to Lambda are not compared (Lambda's defaults are not drift).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::api::common::DriftEntry;
use crate::aws::model::{FunctionConfig, ObservedFunction, ScalingConfig};

const ABSENT: &str = "<absent>";

fn entry(field: &str, desired: String, observed: String, correctable: bool) -> DriftEntry {
    DriftEntry {
        field: field.to_owned(),
        desired,
        observed,
        correctable,
    }
}

fn text<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| ABSENT.into())
}

/// What status shows of an observed value that is not the tenant's to read: an environment
/// variable set outside Git may hold a secret, and a role or provider ARN set outside Git may
/// name another team's (or account's) resources. The status is readable by everyone who can
/// read the function; the value itself goes to the operator's log only.
const ANOTHER_VALUE: &str = "<another value, not shown>";

fn withheld<T: ToString>(field: &str, v: Option<T>) -> String {
    match v {
        Some(v) => {
            tracing::info!(field, observed = %v.to_string(), "drift value withheld from status");
            ANOTHER_VALUE.into()
        }
        None => ABSENT.into(),
    }
}

/// Lambda's invocations per execution environment when the function does not set them: 8 per
/// vCPU for an OS-only runtime such as Rust on `provided.al2023` (Lambda developer guide,
/// "Building Lambda Managed Instances functions in Rust"), the vCPUs being the memory over the
/// memory per vCPU. `None` when the configuration does not say both.
pub fn default_max_concurrency(config: &FunctionConfig) -> Option<i32> {
    let memory = f64::from(config.memory_mib?);
    let per_vcpu = config.memory_gib_per_vcpu?;
    if per_vcpu <= 0.0 {
        return None;
    }
    let vcpus = (memory / (per_vcpu * 1024.0)).floor().max(1.0);
    Some(8 * vcpus as i32)
}

/// Differences in the configuration that goes into a published version (everything but the
/// code and the description), named by the spec field a user would change.
pub fn version_config(desired: &FunctionConfig, observed: &FunctionConfig) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    let mut cmp = |field: &str, d: Option<String>, o: Option<String>, correctable: bool| {
        if d.is_some() && d != o {
            let observed = if matches!(field, "roleArn" | "capacityProviderRef") {
                withheld(field, o)
            } else {
                text(o)
            };
            out.push(entry(field, text(d), observed, correctable));
        }
    };
    cmp(
        "runtime",
        desired.runtime.clone(),
        observed.runtime.clone(),
        true,
    );
    cmp(
        "handler",
        desired.handler.clone(),
        observed.handler.clone(),
        true,
    );
    cmp(
        "memoryMiB",
        desired.memory_mib.map(|m| m.to_string()),
        observed.memory_mib.map(|m| m.to_string()),
        true,
    );
    cmp(
        "timeoutSeconds",
        desired.timeout_seconds.map(|t| t.to_string()),
        observed.timeout_seconds.map(|t| t.to_string()),
        true,
    );
    cmp(
        "roleArn",
        Some(desired.role_arn.clone()),
        Some(observed.role_arn.clone()),
        true,
    );
    // A function moves to another provider with UpdateFunctionConfiguration; its next version
    // is published there.
    cmp(
        "capacityProviderRef",
        desired.capacity_provider_arn.clone(),
        observed.capacity_provider_arn.clone(),
        true,
    );
    // Unset in the spec means Lambda's default, which AWS may report as absent or as its
    // figure; any other value was set before and is reverted (the update leaves the member out,
    // and Lambda replaces the structure whole).
    match (desired.max_concurrency, observed.max_concurrency) {
        (Some(_), _) => cmp(
            "maxConcurrencyPerEnvironment",
            desired.max_concurrency.map(|c| c.to_string()),
            observed.max_concurrency.map(|c| c.to_string()),
            true,
        ),
        (None, Some(o)) => {
            if let Some(default) = default_max_concurrency(desired)
                && o != default
            {
                cmp(
                    "maxConcurrencyPerEnvironment",
                    Some(format!("Lambda's default ({default})")),
                    Some(o.to_string()),
                    true,
                );
            }
        }
        (None, None) => {}
    }
    let ratio = |r: Option<f64>| r.map(|r| format!("{r}"));
    let same_ratio = match (desired.memory_gib_per_vcpu, observed.memory_gib_per_vcpu) {
        (Some(d), Some(o)) => (d - o).abs() < 1e-9,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if !same_ratio {
        out.push(entry(
            "memoryGiBPerVCpu",
            text(ratio(desired.memory_gib_per_vcpu)),
            text(ratio(observed.memory_gib_per_vcpu)),
            true,
        ));
    }
    out.extend(environment(&desired.environment, &observed.environment));
    out
}

/// Differences in environment variables, one entry per variable.
pub fn environment(
    desired: &BTreeMap<String, String>,
    observed: &BTreeMap<String, String>,
) -> Vec<DriftEntry> {
    let names: BTreeSet<&String> = desired.keys().chain(observed.keys()).collect();
    names
        .into_iter()
        .filter(|n| desired.get(*n) != observed.get(*n))
        .map(|n| {
            let field = format!("environment.{n}");
            let observed = withheld(&field, observed.get(n));
            entry(&field, text(desired.get(n)), observed, true)
        })
        .collect()
}

/// How `$LATEST` differs from the desired code (`desired_sha`: `None` while an S3 source has
/// not been loaded yet), architecture and configuration, description included.
pub fn latest(
    desired: &FunctionConfig,
    desired_sha: Option<&str>,
    latest: &ObservedFunction,
) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    if let Some(sha) = desired_sha
        && latest.code_sha256.as_deref() != Some(sha)
    {
        out.push(entry(
            "code.sha256",
            sha.to_owned(),
            text(latest.code_sha256.as_deref()),
            true,
        ));
    }
    if desired.architecture.is_some() && desired.architecture != latest.config.architecture {
        out.push(entry(
            "architecture",
            text(desired.architecture.as_deref()),
            text(latest.config.architecture.as_deref()),
            true,
        ));
    }
    out.extend(version_config(desired, &latest.config));
    if desired.description != latest.config.description {
        out.push(entry(
            "description",
            text(desired.description.as_deref()),
            text(latest.config.description.as_deref()),
            true,
        ));
    }
    out
}

/// How the scaling a version holds differs from the desired one, member by member (the
/// desired scaling names both: `desired::scaling`).
pub fn scaling(desired: &ScalingConfig, held: Option<&ScalingConfig>) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    let have = held.cloned().unwrap_or_default();
    if desired.min != have.min {
        out.push(entry(
            "scaling.minExecutionEnvironments",
            text(desired.min),
            text(have.min),
            true,
        ));
    }
    if desired.max != have.max {
        out.push(entry(
            "scaling.maxExecutionEnvironments",
            text(desired.max),
            text(have.max),
            true,
        ));
    }
    out
}

/// Whether Lambda applies the desired scaling.
pub fn scaling_applied(desired: &ScalingConfig, applied: Option<&ScalingConfig>) -> bool {
    applied.cloned().unwrap_or_default() == *desired
}

/// Tags missing or with another value (extra tags are not drift; tags the operator set before
/// and the spec no longer names are found by `removed_tags`).
pub fn tags(
    desired: &BTreeMap<String, String>,
    observed: &HashMap<String, String>,
) -> Vec<DriftEntry> {
    desired
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| entry(&format!("tags.{k}"), v.clone(), text(observed.get(k)), true))
        .collect()
}

/// Keys the operator set before (`managed`, from status) that the spec no longer names and AWS
/// still holds: to be removed.
pub fn removed_tags(
    desired: &BTreeMap<String, String>,
    observed: &HashMap<String, String>,
    managed: &[String],
) -> Vec<String> {
    managed
        .iter()
        .filter(|k| !desired.contains_key(*k) && observed.contains_key(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FunctionConfig {
        FunctionConfig {
            runtime: Some("provided.al2023".into()),
            handler: Some("bootstrap".into()),
            architecture: Some("arm64".into()),
            memory_mib: Some(4096),
            timeout_seconds: Some(30),
            role_arn: "arn:aws:iam::123456789012:role/fn".into(),
            description: None,
            environment: BTreeMap::from([("LMI_MAX_TOP_K".into(), "100".into())]),
            capacity_provider_arn: Some("arn:cp".into()),
            max_concurrency: None,
            memory_gib_per_vcpu: Some(2.0),
        }
    }

    fn latest_as(config: FunctionConfig, sha: &str) -> ObservedFunction {
        ObservedFunction {
            arn: "arn:fn".into(),
            version: "$LATEST".into(),
            state: None,
            state_name: None,
            state_reason: None,
            state_reason_code: None,
            last_update_status: None,
            last_update_reason: None,
            revision_id: None,
            last_modified: None,
            code_sha256: Some(sha.into()),
            config,
        }
    }

    #[test]
    fn an_identical_function_has_no_drift() {
        assert!(latest(&config(), Some("sha"), &latest_as(config(), "sha")).is_empty());
    }

    #[test]
    fn lambdas_defaults_for_unset_settings_are_not_drift() {
        let desired = config();
        let default = default_max_concurrency(&desired).expect("memory and ratio given");
        let mut observed = config();
        observed.max_concurrency = Some(default);
        assert!(version_config(&desired, &observed).is_empty());
        observed.max_concurrency = None;
        assert!(version_config(&desired, &observed).is_empty());
    }

    #[test]
    fn a_concurrency_removed_from_the_spec_is_reverted_to_lambdas_default() {
        let desired = config();
        let default = default_max_concurrency(&desired).expect("memory and ratio given");
        let mut observed = config();
        observed.max_concurrency = Some(default + 92);
        let drift = version_config(&desired, &observed);
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert_eq!(drift[0].field, "maxConcurrencyPerEnvironment");
        assert!(drift[0].correctable);
    }

    #[test]
    fn lambdas_default_concurrency_is_eight_per_vcpu() {
        let mut c = config();
        c.memory_mib = Some(8192);
        c.memory_gib_per_vcpu = Some(2.0);
        assert_eq!(default_max_concurrency(&c), Some(32));
        c.memory_gib_per_vcpu = Some(8.0);
        assert_eq!(default_max_concurrency(&c), Some(8));
        c.memory_gib_per_vcpu = None;
        assert_eq!(default_max_concurrency(&c), None);
    }

    #[test]
    fn changed_code_memory_and_environment_are_each_reported() {
        let mut observed = config();
        observed.memory_mib = Some(2048);
        observed
            .environment
            .insert("LMI_MAX_TOP_K".into(), "5".into());
        observed.environment.insert("EXTRA".into(), "x".into());
        let d = latest(&config(), Some("sha"), &latest_as(observed, "other"));
        let fields: Vec<&str> = d.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "code.sha256",
                "memoryMiB",
                "environment.EXTRA",
                "environment.LMI_MAX_TOP_K"
            ]
        );
        assert_eq!(d[1].desired, "4096");
        assert_eq!(d[1].observed, "2048");
        assert_eq!(d[2].desired, "<absent>");
        // Values set outside Git are not copied into status (they may be secrets).
        assert_eq!(d[2].observed, ANOTHER_VALUE);
        assert_eq!(d[3].desired, "100");
        assert_eq!(d[3].observed, ANOTHER_VALUE);
        assert!(d.iter().all(|e| e.correctable));
    }

    #[test]
    fn an_unknown_s3_hash_is_not_code_drift() {
        assert!(latest(&config(), None, &latest_as(config(), "whatever")).is_empty());
    }

    #[test]
    fn another_capacity_provider_is_a_move() {
        let mut observed = config();
        observed.capacity_provider_arn = Some("arn:other".into());
        let d = version_config(&config(), &observed);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "capacityProviderRef");
        assert_eq!(
            d[0].observed, ANOTHER_VALUE,
            "another team's provider is not named"
        );
        assert!(d[0].correctable);
    }

    #[test]
    fn description_counts_for_latest_only() {
        let mut observed = config();
        observed.description = Some("edited by hand".into());
        assert!(version_config(&config(), &observed).is_empty());
        let d = latest(&config(), Some("s"), &latest_as(observed, "s"));
        assert_eq!(d[0].field, "description");
    }

    #[test]
    fn memory_per_vcpu_compares_as_numbers() {
        let mut observed = config();
        observed.memory_gib_per_vcpu = Some(2.0000000001);
        assert!(version_config(&config(), &observed).is_empty());
        observed.memory_gib_per_vcpu = Some(4.0);
        assert_eq!(version_config(&config(), &observed)[0].observed, "4");
    }

    #[test]
    fn scaling_compares_both_members_so_a_removed_bound_is_drift() {
        let desired = ScalingConfig {
            min: Some(1),
            max: None,
        };
        let held = ScalingConfig {
            min: Some(1),
            max: Some(50),
        };
        let d = scaling(&desired, Some(&held));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "scaling.maxExecutionEnvironments");
        assert_eq!(d[0].desired, "<absent>");
        let d = scaling(&desired, None);
        assert_eq!(d[0].field, "scaling.minExecutionEnvironments");
        assert_eq!(d[0].observed, "<absent>");
        assert!(!scaling_applied(&desired, Some(&held)));
        assert!(scaling_applied(&desired, Some(&desired.clone())));
        assert!(!scaling_applied(&desired, None));
    }

    #[test]
    fn missing_or_changed_tags_are_drift_and_extra_ones_are_not() {
        let desired = BTreeMap::from([("team".into(), "search".into())]);
        let observed = HashMap::from([
            ("team".to_owned(), "other".to_owned()),
            ("cost".to_owned(), "x".to_owned()),
        ]);
        let d = tags(&desired, &observed);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "tags.team");
    }
}
