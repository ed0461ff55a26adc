//! Admission (pure): may this function run on the capacity provider it names? The provider must
//! exist, admit the function's namespace (`allowedNamespaces`: a trust boundary, since functions
//! on one provider share EC2 instances) and be Ready for its current generation. Nothing is
//! created in AWS for a function that is not admitted.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::capacity_provider::{AllowedNamespaces, Architecture, CapacityProvider};
use crate::api::conditions::{self as cond, reason};
use crate::controller::conditions::is_true_for;

/// What the function gets from an admitting, Ready provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// `metadata.name` of the provider.
    pub provider: String,
    /// ARN of the provider (from its status).
    pub provider_arn: String,
    /// Architecture of the provider's instances: decides the handler build.
    pub architecture: Architecture,
    /// Region of the provider (`None`: the operator's region).
    pub region: Option<String>,
}

/// Why a function may not (yet) run on the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `ProviderNotFound`, `NamespaceNotAllowed` or `ProviderNotReady`.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Whether deciding on `namespace` needs the Namespace's labels (only when a selector is set
/// and the name list does not admit it already).
pub fn needs_labels(allowed: &AllowedNamespaces, namespace: &str) -> bool {
    allowed.selector.is_some() && !allowed.names.iter().any(|n| n == namespace)
}

/// Whether `allowed` admits `namespace` (with `labels`, when they were read). When both
/// `names` and `selector` are empty, only the operator's own namespace is admitted.
pub fn namespace_admitted(
    allowed: &AllowedNamespaces,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    operator_namespace: &str,
) -> Result<bool, String> {
    if allowed.names.is_empty() && allowed.selector.is_none() {
        return Ok(namespace == operator_namespace);
    }
    if allowed.names.iter().any(|n| n == namespace) {
        return Ok(true);
    }
    match &allowed.selector {
        None => Ok(false),
        Some(selector) => {
            let selector = Selector::try_from(selector.clone())
                .map_err(|e| format!("spec.allowedNamespaces.selector is invalid: {e}"))?;
            let empty = BTreeMap::new();
            Ok(selector.matches(labels.unwrap_or(&empty)))
        }
    }
}

/// Decides whether the function in `namespace` may run on `provider` (named `provider_name`).
pub fn admit(
    provider_name: &str,
    provider: Option<&CapacityProvider>,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    operator_namespace: &str,
) -> Result<Admitted, Refusal> {
    let Some(cp) = provider else {
        return Err(Refusal {
            reason: reason::PROVIDER_NOT_FOUND,
            message: format!(
                "CapacityProvider {provider_name} does not exist: create it, or fix \
                 spec.capacityProviderRef.name"
            ),
        });
    };
    match namespace_admitted(
        &cp.spec.allowed_namespaces,
        namespace,
        labels,
        operator_namespace,
    ) {
        Ok(true) => {}
        Ok(false) => {
            let how = if cp.spec.allowed_namespaces.names.is_empty()
                && cp.spec.allowed_namespaces.selector.is_none()
            {
                format!(
                    "it sets no spec.allowedNamespaces, so only the operator's namespace \
                     {operator_namespace} may use it"
                )
            } else {
                "add the namespace to its spec.allowedNamespaces.names, or label the namespace \
                 to match spec.allowedNamespaces.selector"
                    .to_owned()
            };
            return Err(Refusal {
                reason: reason::NAMESPACE_NOT_ALLOWED,
                message: format!(
                    "CapacityProvider {provider_name} does not admit namespace {namespace}: {how}"
                ),
            });
        }
        Err(invalid) => {
            return Err(Refusal {
                reason: reason::NAMESPACE_NOT_ALLOWED,
                message: format!("CapacityProvider {provider_name} admits no namespace: {invalid}"),
            });
        }
    }
    if cp.metadata.deletion_timestamp.is_some() {
        return Err(Refusal {
            reason: reason::PROVIDER_NOT_READY,
            message: format!("CapacityProvider {provider_name} is being deleted"),
        });
    }
    let status = cp.status.as_ref();
    let ready = status.is_some_and(|s| {
        is_true_for(&s.conditions, cond::READY, cp.metadata.generation)
            && s.observed_generation == cp.metadata.generation
    });
    match status.and_then(|s| s.arn.clone()) {
        Some(arn) if ready => Ok(Admitted {
            provider: cp.name_any(),
            provider_arn: arn,
            architecture: cp.spec.instances.architecture,
            region: cp.spec.region.clone(),
        }),
        _ => {
            let why = status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == cond::READY))
                .map(|c| format!(" ({}: {})", c.reason, c.message))
                .unwrap_or_default();
            Err(Refusal {
                reason: reason::PROVIDER_NOT_READY,
                message: format!(
                    "CapacityProvider {provider_name} is not Ready yet{why}; the function is \
                     created once it is"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, LabelSelector, LabelSelectorRequirement, Time,
    };

    use super::*;
    use crate::api::capacity_provider::{CapacityProviderSpec, CapacityProviderStatus};

    const OPERATOR_NS: &str = "lmi-system";

    struct Fixture {
        cp: CapacityProvider,
    }

    impl Fixture {
        fn provider() -> Self {
            let spec: CapacityProviderSpec = serde_json::from_value(serde_json::json!({
                "vpc": {"subnetIds": ["subnet-0123456789abcdef0"], "securityGroupIds": ["sg-0123456789abcdef0"]},
                "operatorRoleArn": "arn:aws:iam::123456789012:role/op",
                "instances": {"architecture": "arm64"},
            }))
            .expect("spec");
            let mut cp = CapacityProvider::new("graviton", spec);
            cp.metadata.generation = Some(2);
            Self { cp }
        }

        fn ready(mut self) -> Self {
            self.cp.status = Some(CapacityProviderStatus {
                observed_generation: Some(2),
                arn: Some("arn:aws:lambda:us-east-1:123456789012:capacity-provider:g".into()),
                conditions: vec![condition("True", "Available", 2)],
                ..Default::default()
            });
            self
        }

        fn admitting(mut self, names: &[&str]) -> Self {
            self.cp.spec.allowed_namespaces.names = names.iter().map(|n| n.to_string()).collect();
            self
        }

        fn selecting(mut self, selector: LabelSelector) -> Self {
            self.cp.spec.allowed_namespaces.selector = Some(selector);
            self
        }

        fn admit(&self, ns: &str, labels: &[(&str, &str)]) -> Result<Admitted, Refusal> {
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            admit("graviton", Some(&self.cp), ns, Some(&labels), OPERATOR_NS)
        }
    }

    fn condition(status: &str, reason: &str, generation: i64) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: "the capacity provider is Pending in AWS".into(),
            observed_generation: Some(generation),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn match_labels(k: &str, v: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(BTreeMap::from([(k.into(), v.into())])),
            match_expressions: None,
        }
    }

    #[test]
    fn a_missing_provider_is_refused() {
        let r = admit("nope", None, "search", None, OPERATOR_NS).unwrap_err();
        assert_eq!(r.reason, "ProviderNotFound");
        assert!(r.message.contains("nope"));
    }

    #[test]
    fn by_default_only_the_operator_namespace_is_admitted() {
        let f = Fixture::provider().ready();
        let r = f.admit("search", &[]).unwrap_err();
        assert_eq!(r.reason, "NamespaceNotAllowed");
        assert!(r.message.contains("lmi-system"), "{}", r.message);
        let ok = f.admit(OPERATOR_NS, &[]).expect("admitted");
        assert_eq!(ok.architecture, Architecture::Arm64);
        assert!(ok.provider_arn.ends_with(":capacity-provider:g"));
    }

    #[test]
    fn listed_names_are_admitted_and_others_refused() {
        let f = Fixture::provider().ready().admitting(&["search-prod"]);
        assert!(f.admit("search-prod", &[]).is_ok());
        assert_eq!(
            f.admit(OPERATOR_NS, &[]).unwrap_err().reason,
            "NamespaceNotAllowed"
        );
    }

    #[test]
    fn a_selector_matches_namespace_labels() {
        let f = Fixture::provider()
            .ready()
            .selecting(match_labels("lmi.dev/environment", "production"));
        assert!(
            f.admit("search", &[("lmi.dev/environment", "production")])
                .is_ok()
        );
        assert_eq!(
            f.admit("search", &[("lmi.dev/environment", "development")])
                .unwrap_err()
                .reason,
            "NamespaceNotAllowed"
        );
        let exists = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        };
        let f = Fixture::provider().ready().selecting(exists);
        assert!(f.admit("a", &[("team", "x")]).is_ok());
        assert!(f.admit("a", &[]).is_err());
    }

    #[test]
    fn an_empty_selector_admits_every_namespace() {
        let f = Fixture::provider()
            .ready()
            .selecting(LabelSelector::default());
        assert!(f.admit("anything", &[]).is_ok());
    }

    #[test]
    fn an_invalid_selector_admits_nobody_with_a_clear_message() {
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
        };
        let r = Fixture::provider()
            .ready()
            .selecting(bad)
            .admit("a", &[("team", "x")])
            .unwrap_err();
        assert_eq!(r.reason, "NamespaceNotAllowed");
        assert!(r.message.contains("selector is invalid"), "{}", r.message);
    }

    #[test]
    fn a_provider_not_ready_for_its_generation_is_refused_with_its_reason() {
        let f = Fixture::provider().admitting(&["search"]);
        assert_eq!(
            f.admit("search", &[]).unwrap_err().reason,
            "ProviderNotReady"
        );

        let mut stale = Fixture::provider().ready().admitting(&["search"]);
        stale.cp.metadata.generation = Some(3);
        assert_eq!(
            stale.admit("search", &[]).unwrap_err().reason,
            "ProviderNotReady"
        );

        let mut pending = Fixture::provider().ready().admitting(&["search"]);
        if let Some(s) = pending.cp.status.as_mut() {
            s.conditions = vec![condition("False", "Provisioning", 2)];
        }
        let r = pending.admit("search", &[]).unwrap_err();
        assert_eq!(r.reason, "ProviderNotReady");
        assert!(r.message.contains("Provisioning"), "{}", r.message);
    }

    #[test]
    fn a_provider_being_deleted_admits_nothing_new() {
        let mut f = Fixture::provider().ready().admitting(&["search"]);
        f.cp.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(
            f.admit("search", &[]).unwrap_err().reason,
            "ProviderNotReady"
        );
    }

    #[test]
    fn labels_are_read_only_when_a_selector_decides() {
        let mut allowed = AllowedNamespaces::default();
        assert!(!needs_labels(&allowed, "a"));
        allowed.names = vec!["a".into()];
        allowed.selector = Some(LabelSelector::default());
        assert!(!needs_labels(&allowed, "a"));
        assert!(needs_labels(&allowed, "b"));
    }
}
