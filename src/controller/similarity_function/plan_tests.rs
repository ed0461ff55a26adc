//! Unit tests of the plan: one behaviour each, on a fixture world built step by step.

use super::*;
use crate::aws::model::ObservedScaling;

const SHA: &str = "c2hhLWJ1bmRsZWQ=";

fn owner() -> Owner {
    Owner {
        cluster: "test".into(),
        installation: "installation-1".into(),
        kind: "SimilarityFunction",
        object: "search/products".into(),
        uid: "uid-1".into(),
    }
}

fn desired() -> Desired {
    let mut tags = BTreeMap::from([("team".to_owned(), "search".to_owned())]);
    tags.extend(owner().tags());
    Desired {
        name: "test-search-products".into(),
        config: FunctionConfig {
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
        },
        tags,
        code: DesiredCode::Bundled { sha256: SHA.into() },
        scaling: ScalingConfig {
            min: Some(1),
            max: Some(4),
        },
        retain: 3,
    }
}

/// A world built as AWS would hold it after the operator's calls.
struct Fixture {
    desired: Desired,
    world: World,
    may_correct: bool,
    previously_created: bool,
    retry_failed_update: bool,
    retry_failed_version: bool,
    managed_tags: Vec<String>,
}

impl Fixture {
    fn empty() -> Self {
        Self {
            desired: desired(),
            world: World::default(),
            may_correct: true,
            previously_created: false,
            retry_failed_update: true,
            retry_failed_version: false,
            managed_tags: Vec::new(),
        }
    }

    /// `$LATEST` exactly as desired, settled.
    fn created() -> Self {
        let mut f = Self::empty();
        let d = f.desired.clone();
        f.world.function = Some(observed("$LATEST", &d.config, SHA, None));
        f.world.tags = d.tags.clone().into_iter().collect();
        f.previously_created = true;
        f
    }

    /// Published versions 1..=n of the desired state, all Active, scaling applied on `n`.
    fn serving(n: u64) -> Self {
        let mut f = Self::created();
        for i in 1..=n {
            f = f.with_version(i, FunctionState::Active);
        }
        // the older versions were retired once `n` served
        f.world.retired = (1..n).map(|i| i.to_string()).collect();
        let s = f.desired.scaling.clone();
        f.world.scaling = Some((
            n.to_string(),
            ObservedScaling {
                requested: Some(s.clone()),
                applied: Some(s),
            },
        ));
        f
    }

    fn with_version(mut self, n: u64, state: FunctionState) -> Self {
        let hash = desired::config_hash(&self.desired.config, SHA);
        let mut config = self.desired.config.clone();
        config.description = Some(desired::version_description(None, &hash));
        self.world
            .versions
            .push(observed(&n.to_string(), &config, SHA, Some(state)));
        self
    }

    fn report_only(mut self) -> Self {
        self.may_correct = false;
        self
    }

    fn latest(&mut self) -> &mut ObservedFunction {
        self.world.function.as_mut().expect("function")
    }

    fn next(&self) -> Next {
        next(&Input {
            desired: &self.desired,
            world: &self.world,
            owner: &owner(),
            may_correct: self.may_correct,
            previously_created: self.previously_created,
            retry_failed_update: self.retry_failed_update,
            retry_failed_version: self.retry_failed_version,
            managed_tags: &self.managed_tags,
        })
    }
}

fn observed(
    version: &str,
    config: &FunctionConfig,
    sha: &str,
    state: Option<FunctionState>,
) -> ObservedFunction {
    ObservedFunction {
        arn: format!("arn:fn:{version}"),
        version: version.into(),
        state,
        state_name: None,
        state_reason: None,
        state_reason_code: None,
        last_update_status: Some("Successful".into()),
        last_update_reason: None,
        revision_id: Some("rev-1".into()),
        last_modified: None,
        code_sha256: Some(sha.into()),
        config: config.clone(),
    }
}

fn stuck_reason(next: Next) -> &'static str {
    match next {
        Next::Settled(Standing::Stuck { reason, .. }) => reason,
        other => panic!("expected stuck, got {other:?}"),
    }
}

#[test]
fn an_absent_function_is_created() {
    assert_eq!(Fixture::empty().next(), Next::Do(Step::Create));
    // Under Report too when it never existed: that is applying the spec.
    assert_eq!(
        Fixture::empty().report_only().next(),
        Next::Do(Step::Create)
    );
}

#[test]
fn a_function_deleted_outside_git_is_recreated_only_under_correct() {
    let mut f = Fixture::empty();
    f.previously_created = true;
    assert_eq!(f.next(), Next::Do(Step::Create));
    assert_eq!(stuck_reason(f.report_only().next()), "DriftDetected");
}

#[test]
fn a_serving_function_needs_no_call() {
    assert_eq!(Fixture::serving(2).next(), Next::Settled(Standing::Ready));
    assert_eq!(
        Fixture::serving(2).report_only().next(),
        Next::Settled(Standing::Ready)
    );
}

#[test]
fn a_foreign_function_is_a_conflict_and_never_touched() {
    let mut f = Fixture::serving(1);
    f.world.tags.clear();
    f.latest().config.memory_mib = Some(128);
    assert_eq!(stuck_reason(f.next()), "NameConflict");
}

#[test]
fn a_function_of_an_earlier_object_is_retagged_even_under_report() {
    let mut f = Fixture::serving(1).report_only();
    f.world
        .tags
        .insert("lmi.dev/uid".into(), "uid-of-an-earlier-object".into());
    assert!(matches!(f.next(), Next::Do(Step::Tag(t)) if t["lmi.dev/uid"] == "uid-1"));
}

#[test]
fn changed_tags_are_put_back() {
    let mut f = Fixture::serving(1);
    f.world.tags.insert("team".into(), "other".into());
    assert_eq!(
        f.next(),
        Next::Do(Step::Tag(BTreeMap::from([(
            "team".into(),
            "search".into()
        )])))
    );
}

#[test]
fn a_configuration_change_updates_latest_when_it_has_settled() {
    let mut f = Fixture::serving(1);
    f.desired.config.memory_mib = Some(8192);
    assert_eq!(f.next(), Next::Do(Step::UpdateConfig));
    f.latest().last_update_status = Some("InProgress".into());
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(_))));
}

#[test]
fn changed_code_or_architecture_updates_the_code_first() {
    let mut f = Fixture::serving(1);
    f.latest().code_sha256 = Some("changed-by-hand".into());
    f.latest().config.memory_mib = Some(128);
    assert_eq!(f.next(), Next::Do(Step::UpdateCode));
    let mut f = Fixture::serving(1);
    f.latest().config.architecture = Some("x86_64".into());
    assert_eq!(f.next(), Next::Do(Step::UpdateCode));
}

#[test]
fn report_leaves_a_changed_latest_alone_while_the_version_still_serves() {
    let mut f = Fixture::serving(1).report_only();
    f.latest().code_sha256 = Some("changed-by-hand".into());
    assert_eq!(f.next(), Next::Settled(Standing::Ready));
}

#[test]
fn a_settled_latest_without_a_matching_version_is_published_with_guards() {
    let f = Fixture::created();
    let hash = desired::config_hash(&f.desired.config, SHA);
    match f.next() {
        Next::Do(Step::Publish {
            code_sha256,
            revision_id,
            description,
        }) => {
            assert_eq!(code_sha256, SHA);
            assert_eq!(revision_id.as_deref(), Some("rev-1"));
            assert_eq!(
                desired::hash_in_description(&description),
                Some(hash.as_str())
            );
        }
        other => panic!("expected a publish, got {other:?}"),
    }
}

#[test]
fn nothing_is_published_while_latest_is_pending() {
    let mut f = Fixture::created();
    f.latest().state = Some(FunctionState::Pending);
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(_))));
}

#[test]
fn a_new_version_gets_its_scaling_once_active_then_waits_until_applied() {
    let f = Fixture::created().with_version(1, FunctionState::Pending);
    // Lambda refuses a scaling put on a Pending version: nothing is read or put yet
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(m)) if m.contains("Pending")));
    let mut f = f;
    f.world.versions[0].state = Some(FunctionState::Active);
    assert_eq!(f.next(), Next::ReadScaling("1".into()));
    f.world.scaling = Some(("1".into(), ObservedScaling::default()));
    assert_eq!(f.next(), Next::Do(Step::PutScaling("1".into())));
    let s = f.desired.scaling.clone();
    // settling: AWS reports the request and not yet the applied values
    f.world.scaling = Some((
        "1".into(),
        ObservedScaling {
            requested: Some(s.clone()),
            applied: None,
        },
    ));
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(m)) if m.contains("scaling")));
    // settled as AWS reports it: the request is cleared, the values are applied
    f.world.scaling = Some((
        "1".into(),
        ObservedScaling {
            requested: None,
            applied: Some(s),
        },
    ));
    assert_eq!(f.next(), Next::Settled(Standing::Ready));
    assert!(spec_applied(&f.desired, &f.world));
    assert!(drift(&f.desired, &f.world, Some("1"), &[]).is_empty());
}

#[test]
fn a_scaling_bound_removed_from_the_spec_returns_to_lambdas_default() {
    let mut f = Fixture::serving(1);
    // the spec no longer sets scaling: Lambda's default minimum, no maximum
    f.desired.scaling = ScalingConfig {
        min: Some(3),
        max: None,
    };
    assert_eq!(f.next(), Next::Do(Step::PutScaling("1".into())));
    f.world.scaling = Some((
        "1".into(),
        ObservedScaling {
            requested: None,
            applied: Some(f.desired.scaling.clone()),
        },
    ));
    assert_eq!(f.next(), Next::Settled(Standing::Ready));
}

#[test]
fn versions_kept_for_rollback_are_retired_then_reactivated_on_rollback() {
    let mut f = Fixture::serving(2);
    f.world.retired.clear();
    assert_eq!(f.next(), Next::Do(Step::Retire("1".into())));
    f.world.retired.insert("1".into());
    assert_eq!(f.next(), Next::Settled(Standing::Ready));
    // under Report nothing is retired
    let mut r = Fixture::serving(2).report_only();
    r.world.retired.clear();
    assert_eq!(r.next(), Next::Settled(Standing::Ready));
    // a rollback: version 1 serves the spec again (version 2 now has another config)
    f.world.versions[1].config.memory_mib = Some(1024);
    f.world.versions[1].config.description = None;
    f.world.scaling = None;
    assert_eq!(f.next(), Next::Do(Step::Reactivate("1".into())));
    f.world.retired.remove("1");
    assert_eq!(f.next(), Next::ReadScaling("1".into()));
}

#[test]
fn tags_dropped_from_the_spec_are_removed_from_aws() {
    let mut f = Fixture::serving(1);
    f.world.tags.insert("cost-center".into(), "42".into());
    f.world.tags.insert("added-by-someone".into(), "x".into());
    // only a key the operator set before is removed
    f.managed_tags = vec!["cost-center".into(), "team".into()];
    assert_eq!(f.next(), Next::Do(Step::Untag(vec!["cost-center".into()])));
    let fields: Vec<String> = drift(&f.desired, &f.world, Some("1"), &f.managed_tags)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["tags.cost-center"]);
    assert_eq!(
        f.report_only().next(),
        Next::Settled(Standing::Ready),
        "Report leaves it"
    );
}

#[test]
fn scaling_changed_outside_git_is_put_back_under_correct_only() {
    let mut f = Fixture::serving(1);
    if let Some((_, s)) = f.world.scaling.as_mut() {
        // settled: AWS shows only the applied values
        s.requested = None;
        s.applied = Some(ScalingConfig {
            min: Some(0),
            max: Some(100),
        });
    }
    assert_eq!(f.next(), Next::Do(Step::PutScaling("1".into())));
    assert_eq!(f.report_only().next(), Next::Settled(Standing::Ready));
}

#[test]
fn old_versions_are_pruned_once_the_current_one_is_active() {
    let f = Fixture::serving(5);
    let mut f = f;
    f.desired.retain = 3;
    assert_eq!(
        f.next(),
        Next::Do(Step::Prune(vec!["1".into(), "2".into()]))
    );
    f.world.versions[4].state = Some(FunctionState::Pending);
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(_))));
}

#[test]
fn a_failed_update_is_retried_only_slowly() {
    let mut f = Fixture::serving(1);
    f.desired.config.memory_mib = Some(8192);
    f.latest().last_update_status = Some("Failed".into());
    f.latest().last_update_reason = Some("InvalidImage".into());
    f.retry_failed_update = false;
    match f.next() {
        Next::Settled(Standing::Stuck { reason, message }) => {
            assert_eq!(reason, "AwsFailed");
            assert!(message.contains("InvalidImage"));
        }
        other => panic!("{other:?}"),
    }
    f.retry_failed_update = true;
    assert_eq!(f.next(), Next::Do(Step::UpdateConfig));
}

#[test]
fn a_failed_version_is_reported_with_awss_code_then_dropped_and_published_again() {
    let mut f = Fixture::created().with_version(1, FunctionState::Failed);
    f.world.versions[0].state_reason_code = Some("InsufficientCapacity".into());
    f.world.versions[0].state_reason = Some("no capacity".into());
    match f.next() {
        Next::Settled(Standing::Stuck { reason, message }) => {
            assert_eq!(reason, "InsufficientCapacity");
            assert!(message.contains("no capacity"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    f.retry_failed_version = true;
    assert_eq!(f.next(), Next::Do(Step::DropFailed("1".into())));
    f.world.versions.clear();
    assert!(matches!(f.next(), Next::Do(Step::Publish { .. })));
    // never under Report
    let mut f = Fixture::created().with_version(1, FunctionState::Failed);
    f.retry_failed_version = true;
    assert_eq!(stuck_reason(f.report_only().next()), "VersionFailed");
}

#[test]
fn a_full_provider_gets_old_versions_pruned_before_the_next_publish() {
    let mut f = Fixture::serving(4);
    f.desired.config.memory_mib = Some(8192);
    f.latest().config.memory_mib = Some(8192);
    assert!(matches!(f.next(), Next::Do(Step::Publish { .. })));
    f.world.provider_full = true;
    // retain 3: the newest two stay (one serving now, one more for rollback with the new one)
    assert_eq!(
        f.next(),
        Next::Do(Step::Prune(vec!["1".into(), "2".into()]))
    );
    // nothing left to delete: reported, not a loop
    f.world.versions.drain(..2);
    f.desired.retain = 1;
    assert_eq!(f.next(), Next::Do(Step::Prune(vec!["3".into()])));
    f.world.versions.remove(0);
    assert_eq!(stuck_reason(f.next()), "VersionLimitExceeded");
}

#[test]
fn a_version_in_a_state_the_operator_does_not_know_is_waited_for() {
    let mut f = Fixture::created().with_version(1, FunctionState::Active);
    f.world.versions[0].state = None;
    f.world.versions[0].state_name = Some("Hibernating".into());
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(m)) if m.contains("Hibernating")));
    f.world.versions[0].state = Some(FunctionState::ActiveNonInvocable);
    assert!(matches!(f.next(), Next::Settled(Standing::Waiting(_))));
}

#[test]
fn a_function_on_another_provider_moves_and_publishes_there() {
    let mut f = Fixture::serving(2);
    f.desired.config.capacity_provider_arn = Some("arn:new".into());
    assert_eq!(f.next(), Next::Do(Step::UpdateConfig));
    f.latest().config.capacity_provider_arn = Some("arn:new".into());
    assert!(matches!(f.next(), Next::Do(Step::Publish { .. })));
    // published on the new provider: the versions on the old one go, whatever retain says
    let mut config = f.desired.config.clone();
    let hash = desired::config_hash(&config, SHA);
    config.description = Some(desired::version_description(None, &hash));
    f.world
        .versions
        .push(observed("3", &config, SHA, Some(FunctionState::Active)));
    f.world.scaling = Some((
        "3".into(),
        ObservedScaling {
            requested: None,
            applied: Some(f.desired.scaling.clone()),
        },
    ));
    assert_eq!(
        f.next(),
        Next::Do(Step::Prune(vec!["1".into(), "2".into()]))
    );
}

#[test]
fn s3_code_is_loaded_then_published_with_the_hash_lambda_computed() {
    let mut f = Fixture::created();
    f.desired.code = DesiredCode::S3 {
        source_id: "src1".into(),
    };
    // No record of the source yet: load it.
    assert_eq!(f.next(), Next::Do(Step::UpdateCode));
    // Recorded for another source: load again.
    f.world
        .tags
        .insert(CODE_TAG.into(), desired::code_tag("src0", SHA));
    assert_eq!(f.next(), Next::Do(Step::UpdateCode));
    f.world
        .tags
        .insert(CODE_TAG.into(), desired::code_tag("src1", SHA));
    assert!(matches!(f.next(), Next::Do(Step::Publish { code_sha256, .. }) if code_sha256 == SHA));
}

#[test]
fn spec_applied_needs_latest_a_serving_version_and_the_requested_scaling() {
    let f = Fixture::serving(1);
    assert!(spec_applied(&f.desired, &f.world));
    let created = Fixture::created();
    assert!(!spec_applied(&created.desired, &created.world));
    let mut drifted = Fixture::serving(1);
    drifted.latest().config.timeout_seconds = Some(3);
    assert!(!spec_applied(&drifted.desired, &drifted.world));
    // A Pending version counts: every call for the generation was made.
    let mut pending = Fixture::serving(1);
    pending.world.versions[0].state = Some(FunctionState::Pending);
    assert!(spec_applied(&pending.desired, &pending.world));
}

#[test]
fn drift_names_deleted_functions_and_versions_and_changed_fields() {
    let f = Fixture::empty();
    let d = drift(&f.desired, &f.world, Some("3"), &[]);
    assert_eq!(d[0].field, "function");
    assert!(drift(&f.desired, &f.world, None, &[]).is_empty());

    let mut f = Fixture::serving(2);
    f.world.versions.remove(1);
    f.latest().config.timeout_seconds = Some(3);
    let fields: Vec<String> = drift(&f.desired, &f.world, Some("2"), &[])
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["timeoutSeconds", "version"]);
    assert!(
        drift(
            &Fixture::serving(2).desired,
            &Fixture::serving(2).world,
            Some("2"),
            &[]
        )
        .is_empty()
    );
}

#[test]
fn a_suspended_function_reactivates_its_serving_version_before_anything_else() {
    let mut f = Fixture::serving(2);
    f.world
        .tags
        .insert(desired::SUSPENDED_TAG.into(), "RoleNotAllowed".into());
    assert_eq!(f.next(), Next::Do(Step::Resume("2".into())));
    // Under driftPolicy Report too: the suspension was the operator's, not a change outside Git.
    assert_eq!(f.report_only().next(), Next::Do(Step::Resume("2".into())));
}

#[test]
fn a_suspended_versions_scaling_is_not_reported_as_drift() {
    let mut f = Fixture::serving(1);
    f.world.scaling = Some((
        "1".into(),
        ObservedScaling {
            requested: Some(desired::DEACTIVATED),
            applied: Some(desired::DEACTIVATED),
        },
    ));
    assert!(
        drift(&f.desired, &f.world, Some("1"), &[])
            .iter()
            .any(|d| d.field.starts_with("scaling"))
    );
    f.world
        .tags
        .insert(desired::SUSPENDED_TAG.into(), "RoleNotAllowed".into());
    assert!(drift(&f.desired, &f.world, Some("1"), &[]).is_empty());
}

#[test]
fn a_function_of_another_installation_is_a_name_conflict_and_never_touched() {
    let mut f = Fixture::serving(1);
    let mut other = owner();
    other.installation = "installation-2".into();
    f.world.tags = other.tags().into_iter().collect();
    match f.next() {
        Next::Settled(Standing::Stuck { reason, message }) => {
            assert_eq!(reason, "NameConflict");
            assert!(message.contains("installation-2"), "{message}");
        }
        other => panic!("expected a name conflict, got {other:?}"),
    }
}
