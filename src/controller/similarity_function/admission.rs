//! Admission (pure): may this function run on the capacity provider it names? The provider must
//! exist, one of its `tenants` grants must admit the function's namespace and everything the
//! function names (role, code, catalog, AWS name) within the grant's limits (`crate::tenancy`),
//! and the provider must exist and be Active in AWS. Nothing is created in AWS for a
//! function that is not admitted; one refused by a grant after it ran is suspended (its versions
//! scaled to zero) until a grant admits it again.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::capacity_provider::{Architecture, CapacityProvider, ProviderState};
use crate::api::conditions::{self as cond, reason};
use crate::api::similarity_function::SimilarityFunction;
use crate::identity;
use crate::tenancy::{self, Applicant, Sibling};

/// What the function gets from an admitting, Active provider.
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
    /// The grant of the provider that admits the function.
    pub grant: String,
}

/// Why a function may not (yet) run on the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `ProviderNotFound`, `ProviderNotReady` or one of the tenancy reasons.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether the function must not run at all: a grant refuses it, so versions it already
    /// has are suspended. (A provider that is missing or not Ready only delays changes.)
    pub suspend: bool,
    /// Region of the provider, when it exists (where a suspension happens).
    pub region: Option<String>,
}

/// What admission decides from: the function, its provider and — when a grant's limits
/// decide — the other functions on the provider.
pub struct Facts<'a> {
    /// The function.
    pub function: &'a SimilarityFunction,
    /// The provider it references, if it exists.
    pub provider: Option<&'a CapacityProvider>,
    /// Labels of the function's namespace (when a grant's selector decides).
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Every SimilarityFunction referencing the provider (the function itself included), when
    /// a grant has limits; empty otherwise.
    pub siblings: &'a [SimilarityFunction],
    /// Labels of the siblings' namespaces, by namespace (when a grant's selector decides).
    pub namespace_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// `--cluster-name`: the shapes of derived names are reserved.
    pub cluster: &'a str,
    /// `--code-buckets`: the only buckets code may come from (empty: any a grant allows).
    pub code_buckets: &'a [String],
    /// `--max-versions-per-capacity-provider`: AWS's limit of function versions per provider.
    pub version_limit: usize,
}

/// Function versions a function may hold on its provider at once: `$LATEST`, the
/// `spec.versions.retain` published ones, and the one being rolled out.
pub fn version_budget(sf: &SimilarityFunction) -> usize {
    usize::try_from(sf.spec.versions.retain)
        .unwrap_or(1)
        .max(1)
        .saturating_add(2)
}

/// Whether the facts must include the siblings' namespace labels: some grant of the provider
/// has limits (which count siblings by grant).
pub fn grants_have_limits(provider: &CapacityProvider) -> bool {
    provider
        .spec
        .tenants
        .iter()
        .any(|g| !g.limits.is_unlimited())
}

/// Whether the facts must include namespace labels: some grant selects namespaces by label.
pub fn needs_labels(provider: &CapacityProvider, namespace: &str) -> bool {
    tenancy::needs_labels(&provider.spec.tenants, namespace)
}

fn applicant<'a>(sf: &'a SimilarityFunction, derived: &'a str) -> Applicant<'a> {
    Applicant {
        namespace: sf.metadata.namespace.as_deref().unwrap_or_default(),
        name: sf.metadata.name.as_deref().unwrap_or_default(),
        spec: &sf.spec,
        derived_name: derived,
    }
}

/// The AWS name derived for `sf` when neither its status nor its spec names one.
pub(super) fn derived_name(cluster: &str, sf: &SimilarityFunction) -> String {
    identity::function_name(
        cluster,
        sf.metadata.namespace.as_deref().unwrap_or_default(),
        sf.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The provider's function versions are shared by its functions in the order they were
/// created: a function whose budget (`version_budget`) no longer fits after those created
/// before it is held (nothing new is published; what it runs keeps running).
fn check_version_budget(
    facts: &Facts<'_>,
    provider_name: &str,
    region: Option<&String>,
) -> Result<(), Refusal> {
    let sf = facts.function;
    let key = |f: &SimilarityFunction| {
        (
            f.metadata.creation_timestamp.as_ref().map(|t| t.0),
            f.metadata.namespace.clone().unwrap_or_default(),
            f.metadata.name.clone().unwrap_or_default(),
        )
    };
    let mine = key(sf);
    let before: usize = facts
        .siblings
        .iter()
        .filter(|s| s.metadata.uid != sf.metadata.uid && key(s) < mine)
        .map(version_budget)
        .sum();
    let needed = version_budget(sf);
    if before.saturating_add(needed) <= facts.version_limit {
        return Ok(());
    }
    Err(Refusal {
        reason: reason::VERSION_BUDGET_EXCEEDED,
        message: format!(
            "the functions created before this one on CapacityProvider {provider_name} hold {before} \
             of its {} function versions (AWS's limit per provider, not adjustable) and this \
             function needs {needed} ($LATEST, spec.versions.retain {}, and one being rolled \
             out): lower spec.versions.retain here or on other functions, or use another \
             provider; what this function runs keeps running",
            facts.version_limit, sf.spec.versions.retain
        ),
        suspend: false,
        region: region.cloned(),
    })
}

/// Decides whether the function may run on its provider.
pub fn admit(facts: &Facts<'_>) -> Result<Admitted, Refusal> {
    let sf = facts.function;
    let provider_name = &sf.spec.capacity_provider_ref.name;
    let Some(cp) = facts.provider else {
        return Err(Refusal {
            reason: reason::PROVIDER_NOT_FOUND,
            message: format!(
                "CapacityProvider {provider_name} does not exist: create it, or fix \
                 spec.capacityProviderRef.name"
            ),
            suspend: false,
            region: None,
        });
    };
    let refuse = |denial: tenancy::Denial| Refusal {
        reason: denial.reason,
        message: denial.message,
        suspend: true,
        region: cp.spec.region.clone(),
    };

    // Tenancy: decided from the provider's grants as they are now, so a revoked grant takes
    // effect at once, Ready or not.
    let derived = derived_name(facts.cluster, sf);
    let me = applicant(sf, &derived);
    let derived_names: Vec<String> = facts
        .siblings
        .iter()
        .map(|s| derived_name(facts.cluster, s))
        .collect();
    let siblings: Vec<Sibling<'_>> = facts
        .siblings
        .iter()
        .zip(&derived_names)
        .map(|(s, d)| Sibling {
            applicant: applicant(s, d),
            labels: s
                .metadata
                .namespace
                .as_deref()
                .and_then(|ns| facts.namespace_labels.get(ns)),
            created: s
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        })
        .collect();
    let grant = tenancy::admit(
        provider_name,
        &cp.spec.tenants,
        &me,
        facts.labels,
        &siblings,
    )
    .map_err(refuse)?;
    check_version_budget(facts, provider_name, cp.spec.region.as_ref())?;
    if let Some(name) = &sf.spec.aws_name
        && *name != derived
        && identity::is_reserved_shape(facts.cluster, name)
    {
        return Err(refuse(tenancy::Denial {
            reason: reason::FUNCTION_NAME_NOT_ALLOWED,
            message: format!(
                "spec.awsName {name} has the shape of a name the operator derives for other \
                 objects ({}_… or …__…): remove spec.awsName, or choose a name of another shape",
                facts.cluster
            ),
        }));
    }

    if let Some(s3) = sf.spec.code.as_ref().and_then(|c| c.s3.as_ref())
        && !facts.code_buckets.is_empty()
        && !facts.code_buckets.contains(&s3.bucket)
    {
        return Err(Refusal {
            reason: reason::CODE_SOURCE_NOT_ALLOWED,
            message: format!(
                "spec.code.s3 s3://{}/{}: this installation of the operator loads handler code \
                 only from the buckets {:?} (its --code-buckets, the chart's aws.codeBuckets, \
                 which its IAM policy lets Lambda read); use one of them",
                s3.bucket, s3.key, facts.code_buckets
            ),
            // Nothing new is deployed from it; what runs was loaded when it was allowed.
            suspend: false,
            region: cp.spec.region.clone(),
        });
    }

    if cp.metadata.deletion_timestamp.is_some() {
        return Err(Refusal {
            reason: reason::PROVIDER_NOT_READY,
            message: format!("CapacityProvider {provider_name} is being deleted"),
            suspend: false,
            region: cp.spec.region.clone(),
        });
    }
    // What the function needs of the provider is that it exists and is Active in AWS, as the
    // provider's last reconcile found it: not that it is Ready at this moment. A routine edit
    // of the provider (its generation not observed yet) or a passing error (throttling, a
    // credential refresh) leaves the provider serving in AWS, and must not stop every function
    // on it. Its architecture and region, which the function takes, are immutable.
    let status = cp.status.as_ref();
    let active = status.is_some_and(|s| s.state == Some(ProviderState::Active));
    match status.and_then(|s| s.arn.clone()) {
        Some(arn) if active => Ok(Admitted {
            provider: cp.name_any(),
            provider_arn: arn,
            architecture: cp.spec.instances.architecture,
            region: cp.spec.region.clone(),
            grant: grant.name.clone(),
        }),
        _ => {
            let why = status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == cond::READY))
                .map(|c| format!(" ({}: {})", c.reason, c.message))
                .unwrap_or_default();
            Err(Refusal {
                reason: reason::PROVIDER_NOT_READY,
                message: format!(
                    "CapacityProvider {provider_name} is not Active in AWS yet{why}; the \
                     function is created once it is"
                ),
                suspend: false,
                region: cp.spec.region.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};

    use super::*;
    use crate::api::capacity_provider::{
        CapacityProviderSpec, CapacityProviderStatus, TenantGrant,
    };

    const CLUSTER: &str = "e2e";

    struct Fixture {
        cp: CapacityProvider,
        sf: SimilarityFunction,
    }

    fn grant(name: &str, namespaces: &[&str]) -> TenantGrant {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "namespaces": {"names": namespaces},
            "executionRoleArns": ["arn:aws:iam::123456789012:role/fn-*"],
            "catalogSources": ["s3://catalogs/"],
            "functionNames": ["search-*"],
        }))
        .expect("grant")
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
            let mut sf = SimilarityFunction::new(
                "products",
                serde_json::from_value(serde_json::json!({
                    "capacityProviderRef": {"name": "graviton"},
                    "roleArn": "arn:aws:iam::123456789012:role/fn-search",
                    "catalog": {"uri": "s3://catalogs/products.parquet", "dimensions": 8},
                }))
                .expect("function spec"),
            );
            sf.metadata.namespace = Some("search".into());
            Self { cp, sf }
        }

        fn ready(mut self) -> Self {
            self.cp.status = Some(CapacityProviderStatus {
                observed_generation: Some(2),
                arn: Some("arn:aws:lambda:us-east-1:123456789012:capacity-provider:g".into()),
                state: Some(ProviderState::Active),
                conditions: vec![condition("True", "Available", 2)],
                ..Default::default()
            });
            self
        }

        fn granting(mut self, grants: Vec<TenantGrant>) -> Self {
            self.cp.spec.tenants = grants;
            self
        }

        fn admit(&self) -> Result<Admitted, Refusal> {
            admit(&Facts {
                function: &self.sf,
                provider: Some(&self.cp),
                labels: None,
                siblings: &[],
                namespace_labels: &BTreeMap::new(),
                cluster: CLUSTER,
                code_buckets: &[],
                version_limit: 100,
            })
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

    #[test]
    fn a_missing_provider_is_refused_without_suspending() {
        let f = Fixture::provider();
        let r = admit(&Facts {
            function: &f.sf,
            provider: None,
            labels: None,
            siblings: &[],
            namespace_labels: &BTreeMap::new(),
            cluster: CLUSTER,
            code_buckets: &[],
            version_limit: 100,
        })
        .unwrap_err();
        assert_eq!(r.reason, "ProviderNotFound");
        assert!(r.message.contains("graviton"));
        assert!(!r.suspend);
    }

    #[test]
    fn a_granted_function_on_a_ready_provider_is_admitted_with_its_grant() {
        let ok = Fixture::provider()
            .ready()
            .granting(vec![grant("search", &["search"])])
            .admit()
            .expect("admitted");
        assert_eq!(ok.architecture, Architecture::Arm64);
        assert_eq!(ok.grant, "search");
        assert!(ok.provider_arn.ends_with(":capacity-provider:g"));
    }

    #[test]
    fn a_provider_without_grants_admits_nothing_and_refusals_by_grants_suspend() {
        let r = Fixture::provider().ready().admit().unwrap_err();
        assert_eq!(r.reason, "NamespaceNotAllowed");
        assert!(r.suspend);
        let mut f = Fixture::provider()
            .ready()
            .granting(vec![grant("search", &["search"])]);
        f.sf.spec.role_arn = "arn:aws:iam::123456789012:role/other".into();
        let r = f.admit().unwrap_err();
        assert_eq!(r.reason, "RoleNotAllowed");
        assert!(r.suspend);
    }

    #[test]
    fn a_grant_refusal_wins_over_a_provider_that_is_not_ready() {
        let f = Fixture::provider().granting(vec![grant("other", &["other"])]);
        assert_eq!(f.admit().unwrap_err().reason, "NamespaceNotAllowed");
    }

    #[test]
    fn an_aws_name_with_a_derived_shape_is_refused_even_when_a_pattern_admits_it() {
        let mut g = grant("search", &["search"]);
        g.function_names = vec!["*".into()];
        let mut f = Fixture::provider().ready().granting(vec![g]);
        f.sf.spec.aws_name = Some("e2e_team-b_products".into());
        let r = f.admit().unwrap_err();
        assert_eq!(r.reason, "FunctionNameNotAllowed");
        assert!(r.message.contains("shape"), "{}", r.message);
        f.sf.spec.aws_name = Some("e2e_search_products".into());
        assert!(f.admit().is_ok(), "its own derived name");
        f.sf.spec.aws_name = Some("search-products".into());
        assert!(f.admit().is_ok());
    }

    #[test]
    fn code_from_a_bucket_the_installation_does_not_read_is_refused_without_suspending() {
        let mut g = grant("search", &["search"]);
        g.code_sources = vec!["s3://artifacts/".into(), "s3://elsewhere/".into()];
        let mut f = Fixture::provider().ready().granting(vec![g]);
        f.sf.spec.code = serde_json::from_value(
            serde_json::json!({"s3": {"bucket": "elsewhere", "key": "a.zip"}}),
        )
        .expect("code");
        let buckets = ["artifacts".to_owned()];
        let no_labels = BTreeMap::new();
        let facts = |buckets| Facts {
            function: &f.sf,
            provider: Some(&f.cp),
            labels: None,
            siblings: &[],
            namespace_labels: &no_labels,
            cluster: CLUSTER,
            code_buckets: buckets,
            version_limit: 100,
        };
        let r = admit(&facts(&buckets)).unwrap_err();
        assert_eq!(r.reason, "CodeSourceNotAllowed");
        assert!(r.message.contains("--code-buckets"), "{}", r.message);
        assert!(!r.suspend);
        assert!(admit(&facts(&[])).is_ok());
    }

    #[test]
    fn a_provider_not_active_in_aws_is_refused_with_its_reason() {
        let f = Fixture::provider().granting(vec![grant("search", &["search"])]);
        let r = f.admit().unwrap_err();
        assert_eq!(r.reason, "ProviderNotReady");
        assert!(!r.suspend);

        for state in [
            ProviderState::Pending,
            ProviderState::Failed,
            ProviderState::Deleting,
        ] {
            let mut f = Fixture::provider()
                .ready()
                .granting(vec![grant("search", &["search"])]);
            if let Some(s) = f.cp.status.as_mut() {
                s.state = Some(state);
                s.conditions = vec![condition("False", "Provisioning", 2)];
            }
            let r = f.admit().unwrap_err();
            assert_eq!(r.reason, "ProviderNotReady", "{state:?}");
            assert!(r.message.contains("Provisioning"), "{}", r.message);
        }
    }

    #[test]
    fn an_active_provider_admits_while_an_edit_or_a_passing_error_makes_it_not_ready() {
        // An edit not observed yet.
        let mut edited = Fixture::provider()
            .ready()
            .granting(vec![grant("search", &["search"])]);
        edited.cp.metadata.generation = Some(3);
        assert!(edited.admit().is_ok());
        // Ready=False for an error of the moment (the provider stays Active in AWS).
        let mut blip = Fixture::provider()
            .ready()
            .granting(vec![grant("search", &["search"])]);
        if let Some(s) = blip.cp.status.as_mut() {
            s.conditions = vec![condition("False", "AccessDenied", 2)];
        }
        assert!(blip.admit().is_ok());
    }

    #[test]
    fn a_provider_being_deleted_admits_nothing_new() {
        let mut f = Fixture::provider()
            .ready()
            .granting(vec![grant("search", &["search"])]);
        f.cp.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(f.admit().unwrap_err().reason, "ProviderNotReady");
    }

    #[test]
    fn limits_are_counted_over_the_siblings_and_reported() {
        let mut g = grant("search", &["search"]);
        g.limits.max_functions = Some(1);
        let f = Fixture::provider().ready().granting(vec![g]);
        let mut older = f.sf.clone();
        older.metadata.name = Some("older".into());
        older.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().expect("t")));
        let mut me = f.sf.clone();
        me.metadata.creation_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().expect("t")));
        let siblings = [older, me.clone()];
        let facts = Facts {
            function: &me,
            provider: Some(&f.cp),
            labels: None,
            siblings: &siblings,
            namespace_labels: &BTreeMap::new(),
            cluster: CLUSTER,
            code_buckets: &[],
            version_limit: 100,
        };
        let r = admit(&facts).unwrap_err();
        assert_eq!(r.reason, "TenantLimitExceeded");
        assert!(grants_have_limits(&f.cp));
    }

    #[test]
    fn the_providers_versions_are_shared_in_creation_order() {
        let f = Fixture::provider()
            .ready()
            .granting(vec![grant("search", &["search"])]);
        let at = |t: &str| Some(Time(t.parse().expect("time")));
        let mut older = f.sf.clone();
        older.metadata.name = Some("older".into());
        older.metadata.uid = Some("uid-older".into());
        older.metadata.creation_timestamp = at("2026-01-01T00:00:00Z");
        older.spec.versions.retain = 5; // 7 with $LATEST and the one rolled out
        let mut me = f.sf.clone();
        me.metadata.uid = Some("uid-me".into());
        me.metadata.creation_timestamp = at("2026-02-01T00:00:00Z");
        me.spec.versions.retain = 3; // 5
        let siblings = [older.clone(), me.clone()];
        let no_labels = BTreeMap::new();
        let facts = |function, limit| Facts {
            function,
            provider: Some(&f.cp),
            labels: None,
            siblings: &siblings,
            namespace_labels: &no_labels,
            cluster: CLUSTER,
            code_buckets: &[],
            version_limit: limit,
        };
        assert_eq!(version_budget(&older), 7);
        assert!(admit(&facts(&me, 12)).is_ok());
        let r = admit(&facts(&me, 11)).unwrap_err();
        assert_eq!(r.reason, "VersionBudgetExceeded");
        assert!(r.message.contains("hold 7 of its 11"), "{}", r.message);
        assert!(!r.suspend);
        // the older function keeps its place
        assert!(admit(&facts(&older, 11)).is_ok());
    }

    #[test]
    fn labels_are_needed_only_when_a_selector_decides() {
        let mut f = Fixture::provider().granting(vec![grant("search", &["search"])]);
        assert!(!needs_labels(&f.cp, "search"));
        let mut g = grant("dev", &[]);
        g.namespaces.selector = Some(LabelSelector::default());
        f.cp.spec.tenants.push(g);
        assert!(!needs_labels(&f.cp, "search"));
        assert!(needs_labels(&f.cp, "other"));
    }
}
