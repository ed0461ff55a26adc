//! Tenancy (pure): which grant of a capacity provider admits a SimilarityFunction, and why one
//! is refused.
//!
//! A capacity provider is AWS's security boundary for Lambda Managed Instances: functions on it
//! share EC2 instances, and containers are not an isolation boundary. So everything a function
//! names — its namespace, execution role, code and catalog in S3, AWS function name — must be
//! granted by the provider's `spec.tenants`, and the functions a grant admits must stay within
//! its limits. The decision is made here from facts (the provider, the namespace's labels, the
//! other functions on the provider) without any I/O.

use std::collections::BTreeMap;

use globset::{Glob, GlobBuilder, GlobMatcher};
use kube::core::{Selector, SelectorExt};

use crate::api::capacity_provider::{NamespaceGrant, TenantGrant, TenantLimits};
use crate::api::conditions::reason;
use crate::api::similarity_function::SimilarityFunctionSpec;

/// Why a grant does not admit a function: a bounded reason and a message naming the field, the
/// value and the grant to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// One of the tenancy reasons in [`reason`].
    pub reason: &'static str,
    /// What is wrong and what to change.
    pub message: String,
}

/// Whether `grant` covers `namespace` (whose `labels` are given when a selector must decide).
pub fn covers(
    grant: &NamespaceGrant,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<bool, String> {
    if grant.names.iter().any(|n| n == namespace) {
        return Ok(true);
    }
    match &grant.selector {
        None => Ok(false),
        Some(selector) => {
            let selector = Selector::try_from(selector.clone())
                .map_err(|e| format!("its namespaces.selector is invalid: {e}"))?;
            let empty = BTreeMap::new();
            Ok(selector.matches(labels.unwrap_or(&empty)))
        }
    }
}

/// Whether some grant selects namespaces by label.
pub fn selects_by_label(grants: &[TenantGrant]) -> bool {
    grants.iter().any(|g| g.namespaces.selector.is_some())
}

/// Whether deciding on `namespace` needs the Namespace's labels: some grant has a selector and
/// no grant lists the namespace by name.
pub fn needs_labels(grants: &[TenantGrant], namespace: &str) -> bool {
    selects_by_label(grants)
        && !grants
            .iter()
            .any(|g| g.namespaces.names.iter().any(|n| n == namespace))
}

/// Whether an execution role ARN matches a grant's pattern: partition and account literal,
/// `*` never crossing a `/`, the role's path and name compared without regard to case (IAM
/// role names are unique regardless of case, so `team-a-*` must not miss `TEAM-A-x`).
pub fn role_matches(pattern: &str, arn: &str) -> bool {
    let (Some((p_prefix, p_role)), Some((a_prefix, a_role))) =
        (pattern.split_once(":role/"), arn.split_once(":role/"))
    else {
        return false;
    };
    p_prefix == a_prefix && glob(p_role, true, true).is_some_and(|g| g.is_match(a_role))
}

/// Whether an AWS function name matches a grant's pattern (`*`: any run of characters; exact
/// case, as Lambda compares names).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    glob(pattern, false, false).is_some_and(|g| g.is_match(name))
}

fn glob(pattern: &str, literal_separator: bool, case_insensitive: bool) -> Option<GlobMatcher> {
    // Only `*` is a wildcard in grants: every other glob metacharacter is taken literally.
    let escaped: String = pattern
        .split('*')
        .map(globset::escape)
        .collect::<Vec<_>>()
        .join("*");
    GlobBuilder::new(&escaped)
        .literal_separator(literal_separator)
        .case_insensitive(case_insensitive)
        .backslash_escape(true)
        .build()
        .as_ref()
        .map(Glob::compile_matcher)
        .ok()
}

/// An S3 location, split into bucket and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Key (a grant's may be empty: the whole bucket).
    pub key: &'a str,
}

/// Splits `s3://bucket/key`.
pub fn s3_location(uri: &str) -> Option<S3Location<'_>> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty()).then_some(S3Location { bucket, key })
}

/// Whether the object `key` in `bucket` lies within a grant's S3 source: the same bucket
/// (exactly; `bucket-evil` is not `bucket`), and a key under the source's prefix when the
/// source ends in `/`, or equal to it otherwise. Keys with `.` or `..` path segments or empty
/// segments are never admitted by a prefix: some clients normalise them, and an object must not
/// escape its folder by its spelling.
pub fn s3_source_matches(source: &str, bucket: &str, key: &str) -> bool {
    let Some(granted) = s3_location(source) else {
        return false;
    };
    if granted.bucket != bucket {
        return false;
    }
    if granted.key.is_empty() || granted.key.ends_with('/') {
        key.starts_with(granted.key) && !key.is_empty() && plain_segments(key)
    } else {
        key == granted.key
    }
}

fn plain_segments(key: &str) -> bool {
    let mut segments = key.split('/').peekable();
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        if s == "." || s == ".." || (s.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// What one function claims against its grant's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Functions (1 each).
    pub functions: i64,
    /// `spec.scaling.maxExecutionEnvironments` (0 when unset).
    pub execution_environments: i64,
    /// `spec.memoryMiB`.
    pub memory_mib: i64,
    /// `spec.versions.retain`.
    pub retained_versions: i64,
}

impl Usage {
    /// What `spec` claims.
    pub fn of(spec: &SimilarityFunctionSpec) -> Self {
        Usage {
            functions: 1,
            execution_environments: spec.scaling.max_execution_environments.map_or(0, i64::from),
            memory_mib: i64::from(spec.memory_mib),
            retained_versions: i64::from(spec.versions.retain),
        }
    }

    fn plus(self, other: Usage) -> Usage {
        Usage {
            functions: self.functions + other.functions,
            execution_environments: self.execution_environments + other.execution_environments,
            memory_mib: self.memory_mib + other.memory_mib,
            retained_versions: self.retained_versions + other.retained_versions,
        }
    }
}

/// A function as tenancy sees it: where it lives and what it names.
#[derive(Clone, Copy, Debug)]
pub struct Applicant<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a SimilarityFunctionSpec,
    /// The AWS function name the operator derives for it: always allowed (it cannot collide).
    pub derived_name: &'a str,
}

/// The first grant that admits everything `f` names (limits aside), or, when none does, the
/// denial of the first grant that covers its namespace (or `NamespaceNotAllowed`).
pub fn grant_for<'g>(
    provider: &str,
    grants: &'g [TenantGrant],
    f: &Applicant<'_>,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<&'g TenantGrant, Denial> {
    let mut first_denial = None;
    let mut invalid_selectors = Vec::new();
    for grant in grants {
        match covers(&grant.namespaces, f.namespace, labels) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                invalid_selectors.push(format!("grant {}: {e}", grant.name));
                continue;
            }
        }
        match check_grant(provider, grant, f) {
            Ok(()) => return Ok(grant),
            Err(denial) => {
                first_denial.get_or_insert(denial);
            }
        }
    }
    Err(first_denial.unwrap_or_else(|| {
        let how = if grants.is_empty() {
            "it has no spec.tenants grants, so it admits no namespace".to_owned()
        } else {
            let names: Vec<&str> = grants.iter().map(|g| g.name.as_str()).collect();
            format!(
                "no grant in its spec.tenants ({}) covers it{}; add the namespace to a grant's \
                 namespaces.names, or label it to match a grant's namespaces.selector",
                names.join(", "),
                if invalid_selectors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", invalid_selectors.join("; "))
                }
            )
        };
        Denial {
            reason: reason::NAMESPACE_NOT_ALLOWED,
            message: format!(
                "CapacityProvider {provider} does not admit namespace {}: {how}",
                f.namespace
            ),
        }
    }))
}

/// Checks role, code, catalog and name of `f` against one grant covering its namespace.
fn check_grant(provider: &str, grant: &TenantGrant, f: &Applicant<'_>) -> Result<(), Denial> {
    let g = &grant.name;
    let spec = f.spec;
    if !grant
        .execution_role_arns
        .iter()
        .any(|p| role_matches(p, &spec.role_arn))
    {
        return Err(Denial {
            reason: reason::ROLE_NOT_ALLOWED,
            message: format!(
                "spec.roleArn {} is not allowed on CapacityProvider {provider}: grant {g} \
                 admits the roles {}; use one of those, or have the provider's owner add it to \
                 spec.tenants[{g}].executionRoleArns",
                spec.role_arn,
                list(&grant.execution_role_arns)
            ),
        });
    }
    if let Some(s3) = spec.code.as_ref().and_then(|c| c.s3.as_ref())
        && !grant
            .code_sources
            .iter()
            .any(|src| s3_source_matches(src, &s3.bucket, &s3.key))
    {
        let allowed = if grant.code_sources.is_empty() {
            "only the handler bundled with the operator (it lists no codeSources)".to_owned()
        } else {
            format!("code from {}", list(&grant.code_sources))
        };
        return Err(Denial {
            reason: reason::CODE_SOURCE_NOT_ALLOWED,
            message: format!(
                "spec.code.s3 s3://{}/{} is not allowed on CapacityProvider {provider}: grant \
                 {g} admits {allowed}; use the bundled handler or an allowed location, or have \
                 the provider's owner add it to spec.tenants[{g}].codeSources",
                s3.bucket, s3.key
            ),
        });
    }
    let catalog_ok = s3_location(&spec.catalog.uri).is_some_and(|loc| {
        grant
            .catalog_sources
            .iter()
            .any(|src| s3_source_matches(src, loc.bucket, loc.key))
    });
    if !catalog_ok {
        return Err(Denial {
            reason: reason::CATALOG_SOURCE_NOT_ALLOWED,
            message: format!(
                "spec.catalog.uri {} is not allowed on CapacityProvider {provider}: grant {g} \
                 admits catalogs from {}; move the catalog there, or have the provider's owner \
                 add its location to spec.tenants[{g}].catalogSources",
                spec.catalog.uri,
                list(&grant.catalog_sources)
            ),
        });
    }
    if let Some(name) = &spec.aws_name
        && name != f.derived_name
        && !grant.function_names.iter().any(|p| name_matches(p, name))
    {
        let allowed = if grant.function_names.is_empty() {
            "only the names the operator derives (it lists no functionNames)".to_owned()
        } else {
            format!("the names {}", list(&grant.function_names))
        };
        return Err(Denial {
            reason: reason::FUNCTION_NAME_NOT_ALLOWED,
            message: format!(
                "spec.awsName {name} is not allowed on CapacityProvider {provider}: grant {g} \
                 admits {allowed}; remove spec.awsName (the operator derives a name that cannot \
                 collide), or have the provider's owner add a pattern to \
                 spec.tenants[{g}].functionNames"
            ),
        });
    }
    Ok(())
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
    if items.len() > SHOWN {
        shown.push("…");
    }
    format!("[{}]", shown.join(", "))
}

/// The limit a function would break if admitted on top of `used` (what the functions admitted
/// before it by the same grant claim).
pub fn over_limit(
    provider: &str,
    grant: &TenantGrant,
    used: Usage,
    spec: &SimilarityFunctionSpec,
) -> Option<Denial> {
    let limits: &TenantLimits = &grant.limits;
    let g = &grant.name;
    if limits.max_execution_environments.is_some()
        && spec.scaling.max_execution_environments.is_none()
    {
        return Some(Denial {
            reason: reason::TENANT_LIMIT_EXCEEDED,
            message: format!(
                "grant {g} of CapacityProvider {provider} limits execution environments, so \
                 spec.scaling.maxExecutionEnvironments must be set"
            ),
        });
    }
    let total = used.plus(Usage::of(spec));
    let checks = [
        (
            limits.max_functions,
            used.functions,
            total.functions,
            "maxFunctions",
            "functions",
            "delete one of them",
        ),
        (
            limits.max_execution_environments,
            used.execution_environments,
            total.execution_environments,
            "maxExecutionEnvironments",
            "execution environments (spec.scaling.maxExecutionEnvironments)",
            "lower spec.scaling.maxExecutionEnvironments",
        ),
        (
            limits.max_memory_mib,
            used.memory_mib,
            total.memory_mib,
            "maxMemoryMiB",
            "MiB of memory (spec.memoryMiB)",
            "lower spec.memoryMiB",
        ),
        (
            limits.max_retained_versions,
            used.retained_versions,
            total.retained_versions,
            "maxRetainedVersions",
            "retained versions (spec.versions.retain)",
            "lower spec.versions.retain",
        ),
    ];
    checks
        .into_iter()
        .find_map(|(limit, used, total, field, what, fix)| {
            let limit = i64::from(limit?);
            (total > limit).then(|| Denial {
                reason: reason::TENANT_LIMIT_EXCEEDED,
                message: format!(
                    "grant {g} of CapacityProvider {provider} allows {limit} {what} in all; its \
                     other functions use {used} and this one would bring it to {total}: \
                     {fix} here or on another function of the grant, or have the provider's \
                     owner raise spec.tenants[{g}].limits.{field}"
                ),
            })
        })
}

/// A function on the provider, for counting limits: its place in line (creation time, then
/// namespace and name) and what it names.
#[derive(Clone, Debug)]
pub struct Sibling<'a> {
    /// Who it is and what it names.
    pub applicant: Applicant<'a>,
    /// Its namespace's labels (when read).
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `metadata.creationTimestamp`, as sortable text (RFC 3339).
    pub created: String,
}

/// Decides on `me` among every function on the provider (`siblings`, which include `me`):
/// functions are admitted in the order they were created, each by the first grant that admits
/// what it names, as long as that grant's limits hold with it; a function that would break a
/// limit is refused and claims nothing, so the functions after it may still fit. The answer is
/// the same whichever function's reconcile asks, so two functions never both take the last
/// place.
pub fn admit<'g>(
    provider: &str,
    grants: &'g [TenantGrant],
    me: &Applicant<'_>,
    my_labels: Option<&BTreeMap<String, String>>,
    siblings: &[Sibling<'_>],
) -> Result<&'g TenantGrant, Denial> {
    let grant = grant_for(provider, grants, me, my_labels)?;
    if grant.limits.is_unlimited() {
        return Ok(grant);
    }
    let mut ordered: Vec<&Sibling<'_>> = siblings.iter().collect();
    ordered.sort_by(|a, b| {
        (&a.created, a.applicant.namespace, a.applicant.name).cmp(&(
            &b.created,
            b.applicant.namespace,
            b.applicant.name,
        ))
    });
    let mut used = Usage::default();
    for s in ordered {
        let is_me = s.applicant.namespace == me.namespace && s.applicant.name == me.name;
        if is_me {
            break;
        }
        let same_grant =
            grant_for(provider, grants, &s.applicant, s.labels).is_ok_and(|g| g.name == grant.name);
        if same_grant && over_limit(provider, grant, used, s.applicant.spec).is_none() {
            used = used.plus(Usage::of(s.applicant.spec));
        }
    }
    match over_limit(provider, grant, used, me.spec) {
        Some(denial) => Err(denial),
        None => Ok(grant),
    }
}

#[cfg(test)]
#[path = "tenancy_tests.rs"]
mod tests;
