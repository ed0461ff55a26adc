use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::*;

const P: &str = "shared";

fn grant(name: &str, namespaces: &[&str]) -> TenantGrant {
    TenantGrant {
        name: name.into(),
        namespaces: NamespaceGrant {
            names: namespaces.iter().map(|n| n.to_string()).collect(),
            selector: None,
        },
        execution_role_arns: vec![format!("arn:aws:iam::123456789012:role/{name}-*")],
        code_sources: vec![format!("s3://{name}-artifacts/lambda/")],
        catalog_sources: vec![format!("s3://{name}-catalogs/")],
        function_names: vec![format!("{name}-*")],
        limits: TenantLimits::default(),
    }
}

fn spec(role: &str, catalog: &str) -> SimilarityFunctionSpec {
    serde_json::from_value(serde_json::json!({
        "capacityProviderRef": {"name": P},
        "roleArn": role,
        "catalog": {"uri": catalog, "dimensions": 8},
        "scaling": {"maxExecutionEnvironments": 10},
        "versions": {"retain": 2},
    }))
    .expect("spec")
}

fn team_a_spec() -> SimilarityFunctionSpec {
    spec(
        "arn:aws:iam::123456789012:role/team-a-search",
        "s3://team-a-catalogs/products.parquet",
    )
}

fn applicant<'a>(ns: &'a str, name: &'a str, spec: &'a SimilarityFunctionSpec) -> Applicant<'a> {
    Applicant {
        namespace: ns,
        name,
        spec,
        derived_name: "e2e_ns_name",
    }
}

fn decide(
    grants: &[TenantGrant],
    ns: &str,
    spec: &SimilarityFunctionSpec,
) -> Result<String, Denial> {
    grant_for(P, grants, &applicant(ns, "products", spec), None).map(|g| g.name.clone())
}

#[test]
fn a_role_glob_stays_within_one_path_segment() {
    let p = "arn:aws:iam::123456789012:role/team-a-*";
    assert!(role_matches(
        p,
        "arn:aws:iam::123456789012:role/team-a-search"
    ));
    assert!(role_matches(p, "arn:aws:iam::123456789012:role/team-a-"));
    assert!(!role_matches(
        p,
        "arn:aws:iam::123456789012:role/team-a-x/evil"
    ));
    assert!(!role_matches(
        p,
        "arn:aws:iam::123456789012:role/team-b-search"
    ));
    assert!(!role_matches(
        p,
        "arn:aws:iam::123456789012:role/xteam-a-search"
    ));
    // A path pattern admits that path's roles only.
    let p = "arn:aws:iam::123456789012:role/lmi/team-a/*";
    assert!(role_matches(
        p,
        "arn:aws:iam::123456789012:role/lmi/team-a/search"
    ));
    assert!(!role_matches(
        p,
        "arn:aws:iam::123456789012:role/lmi/team-a/x/y"
    ));
    assert!(!role_matches(
        p,
        "arn:aws:iam::123456789012:role/lmi/team-b/search"
    ));
}

#[test]
fn a_role_glob_pins_partition_and_account_and_ignores_case_of_the_name() {
    let p = "arn:aws:iam::123456789012:role/team-a-*";
    assert!(!role_matches(
        p,
        "arn:aws:iam::210987654321:role/team-a-search"
    ));
    assert!(!role_matches(
        p,
        "arn:aws-cn:iam::123456789012:role/team-a-search"
    ));
    assert!(role_matches(
        p,
        "arn:aws:iam::123456789012:role/TEAM-A-Search"
    ));
    assert!(!role_matches(
        p,
        "arn:aws:iam::123456789012:user/team-a-search"
    ));
    assert!(!role_matches(p, "team-a-search"));
}

#[test]
fn glob_metacharacters_other_than_star_are_literal() {
    assert!(!name_matches("team-[ab]", "team-a"));
    assert!(name_matches("team-[ab]", "team-[ab]"));
    assert!(!name_matches("team-?", "team-a"));
    assert!(!role_matches(
        "arn:aws:iam::123456789012:role/{a,b}",
        "arn:aws:iam::123456789012:role/a"
    ));
}

#[test]
fn function_name_globs_are_case_sensitive_and_anchored() {
    assert!(name_matches("team-a-*", "team-a-products"));
    assert!(!name_matches("team-a-*", "Team-A-products"));
    assert!(!name_matches("team-a-*", "x-team-a-products"));
    assert!(name_matches("*", "anything_at-all"));
    assert!(name_matches("exact", "exact"));
    assert!(!name_matches("exact", "exactly"));
}

#[test]
fn s3_sources_compare_whole_buckets_and_folder_prefixes() {
    // Bucket names are compared whole.
    assert!(!s3_source_matches(
        "s3://bucket/",
        "bucket-evil",
        "x.parquet"
    ));
    assert!(!s3_source_matches(
        "s3://bucket-evil/",
        "bucket",
        "x.parquet"
    ));
    assert!(s3_source_matches(
        "s3://bucket/",
        "bucket",
        "any/key.parquet"
    ));
    // A trailing slash grants a folder; without one, one object.
    assert!(s3_source_matches(
        "s3://b/lambda/",
        "b",
        "lambda/bootstrap.zip"
    ));
    assert!(!s3_source_matches(
        "s3://b/lambda/",
        "b",
        "lambda-evil/bootstrap.zip"
    ));
    assert!(!s3_source_matches("s3://b/lambda/", "b", "lambda"));
    assert!(s3_source_matches(
        "s3://b/lambda/a.zip",
        "b",
        "lambda/a.zip"
    ));
    assert!(!s3_source_matches(
        "s3://b/lambda/a.zip",
        "b",
        "lambda/a.zip.old"
    ));
    assert!(!s3_source_matches(
        "s3://b/lambda",
        "b",
        "lambda-evil/a.zip"
    ));
    // Keys are case-sensitive, as S3's are.
    assert!(!s3_source_matches("s3://b/lambda/", "b", "Lambda/a.zip"));
}

#[test]
fn s3_keys_cannot_escape_a_folder_by_their_spelling() {
    assert!(!s3_source_matches(
        "s3://b/team-a/",
        "b",
        "team-a/../team-b/c.parquet"
    ));
    assert!(!s3_source_matches(
        "s3://b/team-a/",
        "b",
        "team-a/./c.parquet"
    ));
    assert!(!s3_source_matches(
        "s3://b/team-a/",
        "b",
        "team-a//c.parquet"
    ));
    assert!(!s3_source_matches("s3://b/", "b", "../c.parquet"));
    assert!(s3_source_matches(
        "s3://b/team-a/",
        "b",
        "team-a/v1..2/c.parquet"
    ));
}

#[test]
fn s3_locations_split_bucket_and_key() {
    assert_eq!(
        s3_location("s3://bucket/a/b.parquet"),
        Some(S3Location {
            bucket: "bucket",
            key: "a/b.parquet"
        })
    );
    assert_eq!(s3_location("s3://bucket"), None);
    assert_eq!(s3_location("https://bucket/a"), None);
}

#[test]
fn a_function_naming_only_granted_things_is_admitted_by_its_grant() {
    let grants = [grant("team-b", &["team-b"]), grant("team-a", &["team-a"])];
    assert_eq!(
        decide(&grants, "team-a", &team_a_spec()).as_deref(),
        Ok("team-a")
    );
}

#[test]
fn a_namespace_no_grant_covers_is_refused_naming_the_grants() {
    let grants = [grant("team-a", &["team-a"])];
    let d = decide(&grants, "team-b", &team_a_spec()).unwrap_err();
    assert_eq!(d.reason, "NamespaceNotAllowed");
    assert!(
        d.message.contains("team-b") && d.message.contains("(team-a)"),
        "{}",
        d.message
    );
    let d = decide(&[], "team-a", &team_a_spec()).unwrap_err();
    assert_eq!(d.reason, "NamespaceNotAllowed");
    assert!(
        d.message.contains("no spec.tenants grants"),
        "{}",
        d.message
    );
}

#[test]
fn another_tenants_role_is_refused_naming_field_value_and_grant() {
    let grants = [grant("team-a", &["team-a"])];
    let s = spec(
        "arn:aws:iam::123456789012:role/team-b-search",
        "s3://team-a-catalogs/p.parquet",
    );
    let d = decide(&grants, "team-a", &s).unwrap_err();
    assert_eq!(d.reason, "RoleNotAllowed");
    for part in [
        "spec.roleArn",
        "role/team-b-search",
        "spec.tenants[team-a].executionRoleArns",
    ] {
        assert!(d.message.contains(part), "{part}: {}", d.message);
    }
}

#[test]
fn code_from_another_bucket_or_without_code_sources_is_refused() {
    let mut g = grant("team-a", &["team-a"]);
    let mut s = team_a_spec();
    s.code = serde_json::from_value(
        serde_json::json!({"s3": {"bucket": "team-b-artifacts", "key": "lambda/b.zip"}}),
    )
    .expect("code");
    let d = decide(std::slice::from_ref(&g), "team-a", &s).unwrap_err();
    assert_eq!(d.reason, "CodeSourceNotAllowed");
    assert!(
        d.message.contains("s3://team-b-artifacts/lambda/b.zip"),
        "{}",
        d.message
    );

    s.code = serde_json::from_value(
        serde_json::json!({"s3": {"bucket": "team-a-artifacts", "key": "lambda/a.zip"}}),
    )
    .expect("code");
    assert!(decide(std::slice::from_ref(&g), "team-a", &s).is_ok());
    g.code_sources.clear();
    let d = decide(std::slice::from_ref(&g), "team-a", &s).unwrap_err();
    assert_eq!(d.reason, "CodeSourceNotAllowed");
    assert!(
        d.message.contains("only the handler bundled"),
        "{}",
        d.message
    );
    // The bundled handler needs no code source.
    assert!(decide(std::slice::from_ref(&g), "team-a", &team_a_spec()).is_ok());
}

#[test]
fn a_catalog_of_another_tenant_is_refused() {
    let grants = [grant("team-a", &["team-a"])];
    let s = spec(
        "arn:aws:iam::123456789012:role/team-a-search",
        "s3://team-a-catalogs-evil/p.parquet",
    );
    let d = decide(&grants, "team-a", &s).unwrap_err();
    assert_eq!(d.reason, "CatalogSourceNotAllowed");
    assert!(
        d.message
            .contains("spec.catalog.uri s3://team-a-catalogs-evil/p.parquet"),
        "{}",
        d.message
    );
}

#[test]
fn an_aws_name_outside_the_grants_patterns_is_refused_and_derived_names_always_pass() {
    let mut g = grant("team-a", &["team-a"]);
    let mut s = team_a_spec();
    s.aws_name = Some("team-b-products".into());
    let d = decide(std::slice::from_ref(&g), "team-a", &s).unwrap_err();
    assert_eq!(d.reason, "FunctionNameNotAllowed");
    assert!(
        d.message.contains("spec.awsName team-b-products"),
        "{}",
        d.message
    );
    s.aws_name = Some("team-a-products".into());
    assert!(decide(std::slice::from_ref(&g), "team-a", &s).is_ok());
    g.function_names.clear();
    let d = decide(std::slice::from_ref(&g), "team-a", &s).unwrap_err();
    assert!(
        d.message.contains("only the names the operator derives"),
        "{}",
        d.message
    );
    s.aws_name = Some("e2e_ns_name".into());
    assert!(decide(std::slice::from_ref(&g), "team-a", &s).is_ok());
}

#[test]
fn any_grant_covering_the_namespace_may_admit_and_the_first_denial_is_reported() {
    let mut narrow = grant("narrow", &["shared-ns"]);
    narrow.execution_role_arns = vec!["arn:aws:iam::123456789012:role/nobody".into()];
    let wide = grant("team-a", &["shared-ns"]);
    assert_eq!(
        decide(&[narrow.clone(), wide], "shared-ns", &team_a_spec()).as_deref(),
        Ok("team-a")
    );
    let d = decide(&[narrow], "shared-ns", &team_a_spec()).unwrap_err();
    assert!(d.message.contains("grant narrow"), "{}", d.message);
}

#[test]
fn selectors_cover_namespaces_by_labels_and_invalid_ones_cover_nothing() {
    let mut g = grant("dev", &[]);
    g.namespaces.selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([("env".into(), "dev".into())])),
        match_expressions: None,
    });
    g.execution_role_arns = vec!["arn:aws:iam::123456789012:role/team-a-*".into()];
    g.catalog_sources = vec!["s3://team-a-catalogs/".into()];
    let dev = BTreeMap::from([("env".to_owned(), "dev".to_owned())]);
    let prod = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    let s = team_a_spec();
    let a = applicant("x", "products", &s);
    assert!(grant_for(P, std::slice::from_ref(&g), &a, Some(&dev)).is_ok());
    assert_eq!(
        grant_for(P, std::slice::from_ref(&g), &a, Some(&prod))
            .unwrap_err()
            .reason,
        "NamespaceNotAllowed"
    );
    assert!(needs_labels(std::slice::from_ref(&g), "x"));
    g.namespaces.selector = Some(LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "env".into(),
            operator: "Sometimes".into(),
            values: None,
        }]),
    });
    let d = grant_for(P, std::slice::from_ref(&g), &a, Some(&dev)).unwrap_err();
    assert!(d.message.contains("selector is invalid"), "{}", d.message);
}

fn sibling<'a>(
    ns: &'a str,
    name: &'a str,
    spec: &'a SimilarityFunctionSpec,
    created: &str,
) -> Sibling<'a> {
    Sibling {
        applicant: applicant(ns, name, spec),
        labels: None,
        created: created.into(),
    }
}

#[test]
fn limits_admit_functions_in_creation_order_and_refuse_the_one_that_breaks_them() {
    let mut g = grant("team-a", &["team-a"]);
    g.limits.max_functions = Some(2);
    let s = team_a_spec();
    let siblings = [
        sibling("team-a", "c", &s, "2026-01-03T00:00:00Z"),
        sibling("team-a", "a", &s, "2026-01-01T00:00:00Z"),
        sibling("team-a", "b", &s, "2026-01-02T00:00:00Z"),
    ];
    let grants = [g];
    let decide = |name: &str| admit(P, &grants, &applicant("team-a", name, &s), None, &siblings);
    assert!(decide("a").is_ok());
    assert!(decide("b").is_ok());
    let d = decide("c").unwrap_err();
    assert_eq!(d.reason, "TenantLimitExceeded");
    assert!(
        d.message.contains("allows 2 functions") && d.message.contains("limits.maxFunctions"),
        "{}",
        d.message
    );
}

#[test]
fn a_function_refused_for_a_limit_claims_nothing_and_later_small_ones_still_fit() {
    let mut g = grant("team-a", &["team-a"]);
    g.limits.max_execution_environments = Some(15);
    let mut big = team_a_spec();
    big.scaling.max_execution_environments = Some(20);
    let small = team_a_spec(); // 10
    let siblings = [
        sibling("team-a", "big", &big, "2026-01-01T00:00:00Z"),
        sibling("team-a", "small", &small, "2026-01-02T00:00:00Z"),
    ];
    let grants = [g];
    assert_eq!(
        admit(
            P,
            &grants,
            &applicant("team-a", "big", &big),
            None,
            &siblings
        )
        .unwrap_err()
        .reason,
        "TenantLimitExceeded"
    );
    assert!(
        admit(
            P,
            &grants,
            &applicant("team-a", "small", &small),
            None,
            &siblings
        )
        .is_ok()
    );
}

#[test]
fn limits_count_only_the_functions_of_the_same_grant() {
    let mut a = grant("team-a", &["team-a"]);
    a.limits.max_functions = Some(1);
    let b = grant("team-b", &["team-b"]);
    let sa = team_a_spec();
    let sb = spec(
        "arn:aws:iam::123456789012:role/team-b-x",
        "s3://team-b-catalogs/p.parquet",
    );
    let siblings = [
        sibling("team-b", "first", &sb, "2026-01-01T00:00:00Z"),
        sibling("team-a", "second", &sa, "2026-01-02T00:00:00Z"),
    ];
    let grants = [a, b];
    assert!(
        admit(
            P,
            &grants,
            &applicant("team-a", "second", &sa),
            None,
            &siblings
        )
        .is_ok()
    );
}

#[test]
fn memory_and_retained_versions_are_summed_and_unset_environments_are_refused_under_a_limit() {
    let mut g = grant("team-a", &["team-a"]);
    g.limits.max_memory_mib = Some(6144);
    let s = team_a_spec(); // 4096 MiB (default)
    let siblings = [
        sibling("team-a", "one", &s, "2026-01-01T00:00:00Z"),
        sibling("team-a", "two", &s, "2026-01-02T00:00:00Z"),
    ];
    let grants = [g.clone()];
    let d = admit(P, &grants, &applicant("team-a", "two", &s), None, &siblings).unwrap_err();
    assert!(
        d.message.contains("4096") && d.message.contains("8192"),
        "{}",
        d.message
    );

    g.limits = TenantLimits {
        max_retained_versions: Some(3),
        ..Default::default()
    };
    let grants = [g.clone()];
    let d = admit(P, &grants, &applicant("team-a", "two", &s), None, &siblings).unwrap_err();
    assert!(d.message.contains("maxRetainedVersions"), "{}", d.message);

    g.limits = TenantLimits {
        max_execution_environments: Some(100),
        ..Default::default()
    };
    let mut unbounded = team_a_spec();
    unbounded.scaling.max_execution_environments = None;
    let grants = [g];
    let d = admit(P, &grants, &applicant("team-a", "u", &unbounded), None, &[]).unwrap_err();
    assert!(
        d.message.contains("maxExecutionEnvironments must be set"),
        "{}",
        d.message
    );
}
