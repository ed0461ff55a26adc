//! Published versions (pure): which one serves the spec, and which old ones to delete.
//!
//! A version serves the spec when it holds the desired code hash and configuration. The config
//! hash the operator writes into each version's description identifies its own versions at a
//! glance; the configuration itself is compared too, so a version Lambda returned unchanged
//! (PublishVersion publishes nothing when nothing changed) or one published before the hash
//! existed is still recognised, and the operator never publishes twice for one spec.

use crate::api::similarity_function::FunctionState;
use crate::aws::model::{FunctionConfig, ObservedFunction};

use super::desired::hash_in_description;
use super::drift;

/// The version number, for ordering (`None` for `$LATEST` and other qualifiers).
pub fn number(v: &ObservedFunction) -> Option<u64> {
    v.version.parse().ok()
}

/// Whether `v` holds the desired code and configuration.
pub fn serves(
    desired: &FunctionConfig,
    code_sha256: &str,
    hash: &str,
    v: &ObservedFunction,
) -> bool {
    if v.code_sha256.as_deref() != Some(code_sha256) {
        return false;
    }
    // A version's description is the operator's: the config hash it was published for.
    if v.config
        .description
        .as_deref()
        .and_then(hash_in_description)
        == Some(hash)
    {
        return true;
    }
    drift::version_config(desired, &v.config).is_empty()
        && desired.architecture == v.config.architecture
}

/// The newest published version that serves the spec.
pub fn current<'a>(
    desired: &FunctionConfig,
    code_sha256: &str,
    hash: &str,
    versions: &'a [ObservedFunction],
) -> Option<&'a ObservedFunction> {
    versions
        .iter()
        .filter(|v| number(v).is_some())
        .filter(|v| serves(desired, code_sha256, hash, v))
        .max_by_key(|v| number(v))
}

/// The versions to delete so that `retain` are left: the current one and the newest others
/// that could serve again — on the function's capacity provider `provider` and not `Failed`.
/// Versions left on another provider (the function moved) and failed ones are always deleted.
/// The current version is never chosen. Oldest first.
pub fn to_prune(
    versions: &[ObservedFunction],
    current: &str,
    retain: usize,
    provider: Option<&str>,
) -> Vec<String> {
    let mut others: Vec<(u64, bool)> = versions
        .iter()
        .filter(|v| v.version != current)
        .filter_map(|v| {
            let usable = v.config.capacity_provider_arn.as_deref() == provider
                && v.state != Some(FunctionState::Failed);
            number(v).map(|n| (n, usable))
        })
        .collect();
    others.sort_unstable_by_key(|o| std::cmp::Reverse(o.0));
    let mut keep = retain.saturating_sub(1);
    let mut prune: Vec<u64> = Vec::new();
    for (n, usable) in others {
        if usable && keep > 0 {
            keep -= 1;
        } else {
            prune.push(n);
        }
    }
    prune.sort_unstable();
    prune.into_iter().map(|n| n.to_string()).collect()
}

/// The model's `StateReasonCode` values that can explain a version failing to start, each with
/// its condition reason.
const KNOWN_FAILURES: &[(&str, &str)] = &[
    ("EniLimitExceeded", "EniLimitExceeded"),
    ("InsufficientRolePermissions", "InsufficientRolePermissions"),
    ("InvalidConfiguration", "InvalidConfiguration"),
    ("InternalError", "InternalError"),
    ("SubnetOutOfIPAddresses", "SubnetOutOfIPAddresses"),
    ("InvalidSubnet", "InvalidSubnet"),
    ("InvalidSecurityGroup", "InvalidSecurityGroup"),
    ("KMSKeyAccessDenied", "KMSKeyAccessDenied"),
    ("KMSKeyNotFound", "KMSKeyNotFound"),
    ("InvalidStateKMSKey", "InvalidStateKMSKey"),
    ("DisabledKMSKey", "DisabledKMSKey"),
    ("InvalidRuntime", "InvalidRuntime"),
    ("InvalidZipFileException", "InvalidZipFileException"),
    ("FunctionError", "FunctionError"),
    (
        "ServiceQuotaExceededException",
        "ServiceQuotaExceededException",
    ),
    ("VcpuLimitExceeded", "VcpuLimitExceeded"),
    (
        "CapacityProviderScalingLimitExceeded",
        "CapacityProviderScalingLimitExceeded",
    ),
    ("InsufficientCapacity", "InsufficientCapacity"),
    ("EC2RequestLimitExceeded", "EC2RequestLimitExceeded"),
    ("FunctionError.InitTimeout", "FunctionError_InitTimeout"),
    (
        "FunctionError.RuntimeInitError",
        "FunctionError_RuntimeInitError",
    ),
    (
        "FunctionError.InvalidEntryPoint",
        "FunctionError_InvalidEntryPoint",
    ),
    (
        "FunctionError.PermissionDenied",
        "FunctionError_PermissionDenied",
    ),
    (
        "FunctionError.InitResourceExhausted",
        "FunctionError_InitResourceExhausted",
    ),
    (
        "DisallowedByVpcEncryptionControl",
        "DisallowedByVpcEncryptionControl",
    ),
    ("DependencyError", "DependencyError"),
];

/// The reason of a failed version whose code the model does not list.
pub const VERSION_FAILED: &str = "VersionFailed";

/// Every reason [`failed_reason`] gives.
pub fn failed_reasons() -> impl Iterator<Item = &'static str> {
    KNOWN_FAILURES
        .iter()
        .map(|(_, reason)| *reason)
        .chain([VERSION_FAILED])
}

/// The condition reason for a version that failed to start: AWS's `StateReasonCode` when it
/// is one the API model lists (a `.` becomes `_`: a condition reason has no dots), else
/// `VersionFailed` — reasons stay a bounded set whatever AWS adds.
pub fn failed_reason(code: Option<&str>) -> &'static str {
    code.and_then(|c| KNOWN_FAILURES.iter().find(|(known, _)| *known == c))
        .map_or(VERSION_FAILED, |(_, reason)| reason)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(memory: i32) -> FunctionConfig {
        FunctionConfig {
            runtime: Some("provided.al2023".into()),
            handler: Some("bootstrap".into()),
            architecture: Some("x86_64".into()),
            memory_mib: Some(memory),
            timeout_seconds: Some(30),
            role_arn: "arn:role".into(),
            description: None,
            environment: BTreeMap::new(),
            capacity_provider_arn: Some("arn:cp".into()),
            max_concurrency: None,
            memory_gib_per_vcpu: Some(2.0),
        }
    }

    fn version(n: &str, memory: i32, sha: &str) -> ObservedFunction {
        ObservedFunction {
            arn: format!("arn:fn:{n}"),
            version: n.into(),
            state: None,
            state_name: None,
            state_reason: None,
            state_reason_code: None,
            last_update_status: None,
            last_update_reason: None,
            revision_id: None,
            last_modified: None,
            code_sha256: Some(sha.into()),
            config: config(memory),
        }
    }

    const CP: Option<&str> = Some("arn:cp");

    fn numbers(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn the_newest_matching_version_is_current() {
        let versions = vec![
            version("1", 2048, "a"),
            version("2", 4096, "a"),
            version("3", 2048, "a"),
            version("4", 2048, "b"),
        ];
        let c = current(&config(2048), "a", "h", &versions).expect("current");
        assert_eq!(c.version, "3");
        assert!(current(&config(8192), "a", "h", &versions).is_none());
    }

    #[test]
    fn a_rollback_finds_the_earlier_version_instead_of_publishing() {
        let versions = vec![version("1", 2048, "a"), version("2", 4096, "a")];
        let c = current(&config(2048), "a", "h", &versions).expect("current");
        assert_eq!(c.version, "1");
    }

    #[test]
    fn the_recorded_hash_identifies_a_version_even_if_its_config_reads_differently() {
        // e.g. a setting Lambda reports differently from how it was sent
        let mut v = version("7", 4096, "a");
        v.config.runtime = Some("provided.al2023 ".into());
        assert!(current(&config(4096), "a", "h", &[v.clone()]).is_none());
        v.config.description = Some("products (lmi-operator config 0123456789abcdef)".into());
        let versions = vec![v];
        let found = current(&config(4096), "a", "0123456789abcdef", &versions);
        assert_eq!(found.map(|v| v.version.as_str()), Some("7"));
        // but never with another code hash
        assert!(current(&config(4096), "b", "0123456789abcdef", &versions).is_none());
    }

    #[test]
    fn latest_qualifiers_are_never_current() {
        let versions = vec![
            version("$LATEST", 2048, "a"),
            version("$LATEST.PUBLISHED", 2048, "a"),
        ];
        assert!(current(&config(2048), "a", "h", &versions).is_none());
    }

    #[test]
    fn pruning_keeps_the_current_and_the_newest_others() {
        let versions: Vec<_> = (1..=5).map(|n| version(&n.to_string(), 1, "a")).collect();
        assert_eq!(numbers(&to_prune(&versions, "5", 3, CP)), vec!["1", "2"]);
        assert_eq!(
            numbers(&to_prune(&versions, "5", 1, CP)),
            vec!["1", "2", "3", "4"]
        );
        assert!(to_prune(&versions, "5", 5, CP).is_empty());
        assert!(to_prune(&versions, "5", 50, CP).is_empty());
    }

    #[test]
    fn pruning_never_deletes_the_current_version_even_when_it_is_old() {
        let versions: Vec<_> = (1..=4).map(|n| version(&n.to_string(), 1, "a")).collect();
        // current is 1 (a rollback); retain 2 keeps 1 and the newest other, 4.
        assert_eq!(numbers(&to_prune(&versions, "1", 2, CP)), vec!["2", "3"]);
        assert_eq!(
            numbers(&to_prune(&versions, "1", 0, CP)),
            vec!["2", "3", "4"]
        );
    }

    #[test]
    fn pruning_ignores_latest_qualifiers() {
        let versions = vec![
            version("$LATEST", 1, "a"),
            version("1", 1, "a"),
            version("2", 1, "a"),
        ];
        assert_eq!(numbers(&to_prune(&versions, "2", 1, CP)), vec!["1"]);
    }

    #[test]
    fn versions_left_on_another_provider_and_failed_ones_are_never_kept() {
        let mut versions: Vec<_> = (1..=5).map(|n| version(&n.to_string(), 1, "a")).collect();
        versions[0].config.capacity_provider_arn = Some("arn:old".into());
        versions[1].config.capacity_provider_arn = Some("arn:old".into());
        versions[3].state = Some(FunctionState::Failed);
        // retain 3 keeps 5 (current) and the newest two usable others: 3 only (4 failed, 1
        // and 2 on the old provider), so 1, 2 and 4 go
        assert_eq!(
            numbers(&to_prune(&versions, "5", 3, CP)),
            vec!["1", "2", "4"]
        );
        assert_eq!(
            numbers(&to_prune(&versions, "5", 50, CP)),
            vec!["1", "2", "4"]
        );
    }

    #[test]
    fn a_failed_versions_reason_is_awss_code_or_a_bounded_fallback() {
        assert_eq!(
            failed_reason(Some("InsufficientCapacity")),
            "InsufficientCapacity"
        );
        assert_eq!(
            failed_reason(Some("FunctionError.InitTimeout")),
            "FunctionError_InitTimeout"
        );
        assert_eq!(failed_reason(Some("SomethingNew")), "VersionFailed");
        assert_eq!(failed_reason(None), "VersionFailed");
    }
}
