//! Plan (pure): from the desired state and what AWS holds, the next call to make — one at a
//! time, because each step changes what the next one must be (a version can only be published
//! once `$LATEST` holds the spec and has settled, its scaling only put once it exists, old
//! versions only pruned once it is Active) — or where the function stands when there is none.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::desired::{self, CODE_TAG, DesiredCode, SUSPENDED_TAG};
use super::{drift, versions};
use crate::api::common::DriftEntry;
use crate::api::conditions::reason;
use crate::api::similarity_function::FunctionState;
use crate::aws::model::{FunctionConfig, ObservedFunction, ObservedScaling, ScalingConfig};
use crate::identity::{self, Owner, Ownership};

/// What the spec asks AWS to hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Function name in AWS.
    pub name: String,
    /// `$LATEST` configuration.
    pub config: FunctionConfig,
    /// Tags (user's and ownership).
    pub tags: BTreeMap<String, String>,
    /// Where the code comes from.
    pub code: DesiredCode,
    /// Scaling of the serving version.
    pub scaling: ScalingConfig,
    /// Published versions to keep.
    pub retain: usize,
}

/// What AWS holds; apply keeps it current as it makes calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    /// `$LATEST`, if the function exists.
    pub function: Option<ObservedFunction>,
    /// The function's tags.
    pub tags: HashMap<String, String>,
    /// Published (numbered) versions, oldest first.
    pub versions: Vec<ObservedFunction>,
    /// The scaling of one version, once read: (version, scaling).
    pub scaling: Option<(String, ObservedScaling)>,
    /// AWS refused to publish in this pass: the capacity provider holds as many function
    /// versions as it allows.
    pub provider_full: bool,
    /// Versions kept only for rollback that the operator scaled to zero (from status, kept
    /// current by apply).
    pub retired: BTreeSet<String>,
}

impl Desired {
    /// The code hash `$LATEST` should have: known for the bundled handler, recorded in the code
    /// tag once an S3 source was loaded.
    pub fn code_sha256<'a>(&'a self, world: &'a World) -> Option<&'a str> {
        match &self.code {
            DesiredCode::Bundled { sha256 } => Some(sha256),
            DesiredCode::S3 { source_id } => {
                desired::recorded_sha(world.tags.get(CODE_TAG), source_id)
            }
        }
    }

    /// The config hash of the version the spec asks for (once the code hash is known).
    pub fn config_hash(&self, world: &World) -> Option<String> {
        self.code_sha256(world)
            .map(|sha| desired::config_hash(&self.config, sha))
    }

    /// The published version that serves the spec.
    pub fn current<'a>(&self, world: &'a World) -> Option<&'a ObservedFunction> {
        let sha = self.code_sha256(world)?;
        let hash = desired::config_hash(&self.config, sha);
        versions::current(&self.config, sha, &hash, &world.versions)
    }
}

/// A mutating call.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// CreateFunction (unpublished).
    Create,
    /// TagResource with these tags.
    Tag(BTreeMap<String, String>),
    /// UpdateFunctionCode (and, for S3 code, record its hash in the code tag).
    UpdateCode,
    /// UpdateFunctionConfiguration with the whole desired configuration.
    UpdateConfig,
    /// PublishVersion, guarded by the code hash and revision it was planned for.
    Publish {
        /// Expected CodeSha256 of `$LATEST`.
        code_sha256: String,
        /// Expected RevisionId of `$LATEST`.
        revision_id: Option<String>,
        /// The version's description, carrying the config hash.
        description: String,
    },
    /// PutFunctionScalingConfig on this version.
    PutScaling(String),
    /// DeleteFunction on each of these versions.
    Prune(Vec<String>),
    /// PutFunctionScalingConfig reactivating this version of a suspended function, then
    /// UntagResource of the suspension tag.
    Resume(String),
    /// DeleteFunction on a version that failed to start, so that the next step publishes the
    /// same code and configuration again.
    DropFailed(String),
    /// UntagResource of tags the operator set before and the spec no longer names.
    Untag(Vec<String>),
    /// PutFunctionScalingConfig of 0/0 on a version kept only for rollback: it serves nothing
    /// and must not keep paid capacity.
    Retire(String),
    /// PutFunctionScalingConfig of the spec's scaling on a retired version that serves the spec
    /// again (a rollback).
    Reactivate(String),
}

impl Step {
    /// The Lambda operation the step calls.
    pub fn operation(&self) -> &'static str {
        match self {
            Step::Create => "CreateFunction",
            Step::Tag(_) => "TagResource",
            Step::Untag(_) => "UntagResource",
            Step::UpdateCode => "UpdateFunctionCode",
            Step::UpdateConfig => "UpdateFunctionConfiguration",
            Step::Publish { .. } => "PublishVersion",
            Step::PutScaling(_) | Step::Resume(_) | Step::Retire(_) | Step::Reactivate(_) => {
                "PutFunctionScalingConfig"
            }
            Step::Prune(_) | Step::DropFailed(_) => "DeleteFunction",
        }
    }
}

/// Where the function stands once nothing is left to do in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The current version serves with its scaling applied.
    Ready,
    /// AWS is working (creating, updating, starting a version, applying scaling).
    Waiting(String),
    /// Nothing more can happen without a person or a spec change.
    Stuck {
        /// Bounded reason.
        reason: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Make this call.
    Do(Step),
    /// Read the scaling of this version first.
    ReadScaling(String),
    /// Nothing more to do now.
    Settled(Standing),
}

/// Everything the plan looks at.
pub struct Input<'a> {
    /// The desired state.
    pub desired: &'a Desired,
    /// What AWS holds.
    pub world: &'a World,
    /// The object that owns the function.
    pub owner: &'a Owner,
    /// Repair differences (`Correct`, or the spec changed since it was last applied).
    pub may_correct: bool,
    /// The operator created the function before (status records it).
    pub previously_created: bool,
    /// A failed update may be tried again now (not within the slow retry of the last failure).
    pub retry_failed_update: bool,
    /// A version that failed to start may be deleted and published again now (the slow retry
    /// delay has passed since it was published).
    pub retry_failed_version: bool,
    /// Tag keys the operator set before (from status): removed from AWS when the spec drops
    /// them.
    pub managed_tags: &'a [String],
}

fn stuck(reason: &'static str, message: String) -> Next {
    Next::Settled(Standing::Stuck { reason, message })
}

fn waiting(message: String) -> Next {
    Next::Settled(Standing::Waiting(message))
}

/// The next call, or where the function stands.
pub fn next(input: &Input<'_>) -> Next {
    let d = input.desired;
    let w = input.world;
    let name = &d.name;
    let Some(f) = &w.function else {
        if input.may_correct || !input.previously_created {
            return Next::Do(Step::Create);
        }
        return stuck(
            reason::DRIFT_DETECTED,
            format!(
                "function {name} was deleted outside Git; driftPolicy Report leaves it deleted \
                 (set driftPolicy: Correct, or change the spec, to recreate it)"
            ),
        );
    };
    match input.owner.ownership(&w.tags) {
        Ownership::Foreign => {
            return stuck(
                reason::NAME_CONFLICT,
                format!(
                    "a Lambda function named {name} exists and was not created for this object; \
                     it is left untouched: choose another spec.awsName, or delete that function"
                ),
            );
        }
        Ownership::OtherInstallation => {
            return stuck(
                reason::NAME_CONFLICT,
                format!(
                    "a Lambda function named {name} belongs to another installation of the \
                     operator (tag {}: {}); it is left untouched: choose another spec.awsName, \
                     or give the clusters different --cluster-name values",
                    identity::TAG_INSTALLATION,
                    w.tags
                        .get(identity::TAG_INSTALLATION)
                        .map_or("<none>", String::as_str)
                ),
            );
        }
        // Ownership tags are kept right whatever the drift policy, or the function is lost.
        Ownership::OursFromEarlierObject => return Next::Do(Step::Tag(d.tags.clone())),
        Ownership::Ours => {}
    }
    let tag_diff: BTreeMap<String, String> = drift::tags(&d.tags, &w.tags)
        .into_iter()
        .map(|e| (e.field.trim_start_matches("tags.").to_owned(), e.desired))
        .collect();
    if input.may_correct && !tag_diff.is_empty() {
        return Next::Do(Step::Tag(tag_diff));
    }
    let removed = drift::removed_tags(&d.tags, &w.tags, input.managed_tags);
    if input.may_correct && !removed.is_empty() {
        return Next::Do(Step::Untag(removed));
    }

    let busy = f.state == Some(FunctionState::Pending)
        || f.last_update_status.as_deref() == Some("InProgress");
    let failed = f.last_update_status.as_deref() == Some("Failed");
    let sha = d.code_sha256(w);
    let code_needed = sha.is_none_or(|s| f.code_sha256.as_deref() != Some(s))
        || d.config.architecture != f.config.architecture;
    let config_needed = !drift::version_config(&d.config, &f.config).is_empty()
        || d.config.description != f.config.description;
    let latest_ok = !code_needed && !config_needed;
    if !latest_ok && input.may_correct {
        if busy {
            return waiting(format!("function {name} is being updated"));
        }
        if failed && !input.retry_failed_update {
            return stuck(reason::AWS_FAILED, failed_update(name, f));
        }
        return Next::Do(if code_needed {
            Step::UpdateCode
        } else {
            Step::UpdateConfig
        });
    }

    let Some(v) = d.current(w) else {
        let hash = sha.map(|s| desired::config_hash(&d.config, s));
        let (Some(sha), Some(hash), true, true) = (sha, hash, latest_ok, input.may_correct) else {
            return stuck(
                reason::DRIFT_DETECTED,
                format!(
                    "no published version of {name} matches the spec and the function was \
                     changed outside Git (see status.drift); driftPolicy Report leaves it so"
                ),
            );
        };
        if busy {
            return waiting(format!("function {name} is being created or updated"));
        }
        if w.provider_full {
            // Make room first: keep the newest version that could serve again (what serves
            // now) and as many more as spec.versions.retain leaves room for.
            let keep = d.retain.saturating_sub(1).max(1);
            let prune = versions::to_prune(
                &w.versions,
                "",
                keep + 1,
                d.config.capacity_provider_arn.as_deref(),
            );
            if prune.is_empty() {
                return stuck(
                    reason::VERSION_LIMIT_EXCEEDED,
                    format!(
                        "Lambda refused to publish a version of {name}: its capacity provider \
                         holds as many function versions as AWS allows (100 per provider, not \
                         adjustable) and this function has none left to delete; lower \
                         spec.versions.retain of functions on the provider, or move some to \
                         another provider"
                    ),
                );
            }
            return Next::Do(Step::Prune(prune));
        }
        return Next::Do(Step::Publish {
            code_sha256: sha.to_owned(),
            revision_id: f.revision_id.clone(),
            description: desired::version_description(d.config.description.as_deref(), &hash),
        });
    };

    // A function a grant had suspended is reactivated before anything else about its version.
    if w.tags.contains_key(SUSPENDED_TAG) {
        return Next::Do(Step::Resume(v.version.clone()));
    }

    // The version's state first: Lambda refuses a scaling put on a version not yet Active.
    match v.state {
        Some(FunctionState::Active | FunctionState::Inactive) => {}
        Some(FunctionState::Failed) => {
            if input.may_correct && input.retry_failed_version {
                return Next::Do(Step::DropFailed(v.version.clone()));
            }
            return stuck(
                versions::failed_reason(v.state_reason_code.as_deref()),
                format!(
                    "version {} of {name} failed to start ({}): {}; the operator deletes it and \
                     publishes again after the slow retry delay, or at once when the spec \
                     changes",
                    v.version,
                    v.state_reason_code.as_deref().unwrap_or("no code given"),
                    v.state_reason.as_deref().unwrap_or("no reason given"),
                ),
            );
        }
        Some(FunctionState::Pending) => {
            return waiting(format!(
                "version {} of {name} is Pending: Lambda is starting its execution environments",
                v.version
            ));
        }
        Some(FunctionState::ActiveNonInvocable) => {
            return waiting(format!(
                "version {} of {name} is ActiveNonInvocable: Lambda does not invoke it yet",
                v.version
            ));
        }
        None => {
            return waiting(match v.state_name.as_deref() {
                Some(state) => format!(
                    "version {} of {name} is in state {state}, which this operator does not \
                     know; it waits for Active",
                    v.version
                ),
                None => format!("version {} of {name} reports no state yet", v.version),
            });
        }
        Some(other) => {
            return stuck(
                reason::AWS_FAILED,
                format!("version {} of {name} is {other:?}", v.version),
            );
        }
    }

    // A rollback to a version kept for it: its capacity comes back first.
    if input.may_correct && w.retired.contains(&v.version) {
        return Next::Do(Step::Reactivate(v.version.clone()));
    }

    let Some(scaling) = (match &w.scaling {
        Some((version, s)) if *version == v.version => Some(s),
        _ => None,
    }) else {
        return Next::ReadScaling(v.version.clone());
    };
    // What was asked is held (the request settling, or applied); else put it.
    let asked = drift::scaling(&d.scaling, scaling.held()).is_empty();
    if input.may_correct && !asked {
        return Next::Do(Step::PutScaling(v.version.clone()));
    }
    let prune = versions::to_prune(
        &w.versions,
        &v.version,
        d.retain,
        d.config.capacity_provider_arn.as_deref(),
    );
    if input.may_correct && !prune.is_empty() {
        return Next::Do(Step::Prune(prune));
    }
    // Waiting for what was asked to apply; a difference left under Report is drift, not a wait.
    if asked && !drift::scaling_applied(&d.scaling, scaling.applied.as_ref()) {
        return waiting(format!(
            "Lambda is applying the scaling of version {} of {name}",
            v.version
        ));
    }
    // The serving version runs with its capacity: the versions kept for rollback give theirs up.
    if input.may_correct
        && let Some(old) = w.versions.iter().find(|o| {
            o.version != v.version
                && versions::number(o).is_some()
                && !w.retired.contains(&o.version)
                && matches!(
                    o.state,
                    Some(FunctionState::Active | FunctionState::Inactive)
                )
        })
    {
        return Next::Do(Step::Retire(old.version.clone()));
    }
    Next::Settled(Standing::Ready)
}

fn failed_update(name: &str, f: &ObservedFunction) -> String {
    format!(
        "the last update of function {name} failed: {}; fix the spec (or the code) — the \
         operator retries slowly",
        f.last_update_reason.as_deref().unwrap_or("no reason given")
    )
}

/// Whether AWS holds everything the spec asks for (the generation is applied, whatever the
/// version's state): `$LATEST`, a serving version, its scaling as requested.
pub fn spec_applied(desired: &Desired, world: &World) -> bool {
    let Some(f) = &world.function else {
        return false;
    };
    let Some(v) = desired.current(world) else {
        return false;
    };
    let latest_ok = drift::latest(&desired.config, desired.code_sha256(world), f).is_empty();
    let scaling_ok = match &world.scaling {
        Some((version, s)) if *version == v.version => {
            drift::scaling(&desired.scaling, s.held()).is_empty()
        }
        _ => false,
    };
    latest_ok && scaling_ok
}

/// The differences between the spec and AWS, for `status.drift`. `previous_version` is the
/// version status last reported as serving.
pub fn drift(
    desired: &Desired,
    world: &World,
    previous_version: Option<&str>,
    managed_tags: &[String],
) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    let Some(f) = &world.function else {
        if previous_version.is_some() {
            out.push(DriftEntry {
                field: "function".into(),
                desired: desired.name.clone(),
                observed: "<absent>".into(),
                correctable: true,
            });
        }
        return out;
    };
    out.extend(drift::latest(
        &desired.config,
        desired.code_sha256(world),
        f,
    ));
    if let Some(previous) = previous_version
        && !world.versions.iter().any(|v| v.version == previous)
    {
        out.push(DriftEntry {
            field: "version".into(),
            desired: previous.to_owned(),
            observed: "<absent>".into(),
            correctable: true,
        });
    }
    // A suspended version's scaling was set by the operator, not outside Git.
    if let (Some(v), Some((version, s))) = (desired.current(world), &world.scaling)
        && v.version == *version
        && !world.tags.contains_key(SUSPENDED_TAG)
    {
        out.extend(drift::scaling(&desired.scaling, s.held()));
    }
    out.extend(drift::tags(&desired.tags, &world.tags));
    out.extend(
        drift::removed_tags(&desired.tags, &world.tags, managed_tags)
            .into_iter()
            .map(|k| DriftEntry {
                field: format!("tags.{k}"),
                desired: "<absent>".into(),
                observed: world.tags.get(&k).cloned().unwrap_or_default(),
                correctable: true,
            }),
    );
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
