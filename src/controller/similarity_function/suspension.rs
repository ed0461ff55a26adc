//! Suspension (pure): what stops a function that a grant of its capacity provider no longer
//! admits (namespace removed, role no longer matched, limit lowered below use).
//!
//! The function is never deleted while its object exists: its published versions are
//! deactivated instead, which AWS documents for Lambda Managed Instances ("Set both minimum and
//! maximum to 0 to deactivate a function without deleting it … Lambda terminates an underlying
//! EC2 instance once it has no active execution environments", developer guide, "Scaling Lambda
//! Managed Instances"). The function first gets the [`SUSPENDED_TAG`], so the next admitted pass
//! knows to reactivate its serving version (a deactivated version does not scale back up on its
//! own). Only functions this installation owns are touched.

use std::collections::BTreeMap;

use super::desired::{DEACTIVATED, SUSPENDED_TAG};
use super::plan::World;
use crate::aws::model::ObservedScaling;
use crate::identity::Owner;

/// One call of a suspension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuspendStep {
    /// TagResource: mark the function suspended, with the refusal's reason.
    Mark(String),
    /// PutFunctionScalingConfig 0/0 on this published version.
    Deactivate(String),
}

/// The calls that suspend the function in `world`, given the scaling of each of its published
/// versions (`scalings`, by version): none when it does not exist, is not ours, or is
/// suspended already. The tag comes first, so a crash between the calls still reactivates.
pub fn steps(
    world: &World,
    scalings: &BTreeMap<String, ObservedScaling>,
    owner: &Owner,
    reason: &str,
) -> Vec<SuspendStep> {
    if world.function.is_none() || !owns(world, owner) {
        return Vec::new();
    }
    let mut steps = Vec::new();
    if world.tags.get(SUSPENDED_TAG).map(String::as_str) != Some(reason) {
        steps.push(SuspendStep::Mark(reason.to_owned()));
    }
    for v in &world.versions {
        let deactivated = scalings
            .get(&v.version)
            .and_then(ObservedScaling::held)
            .is_some_and(|r| *r == DEACTIVATED);
        if !deactivated {
            steps.push(SuspendStep::Deactivate(v.version.clone()));
        }
    }
    steps
}

/// Whether this installation owns the function in `world` (for this object, or for an earlier
/// one of the same name).
pub fn owns(world: &World, owner: &Owner) -> bool {
    owner.ownership(&world.tags).is_ours()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::model::{ObservedFunction, ScalingConfig};

    fn owner() -> Owner {
        Owner {
            cluster: "e2e".into(),
            installation: "i".into(),
            kind: "SimilarityFunction",
            object: "team/products".into(),
            uid: "u".into(),
        }
    }

    fn world(versions: &[&str]) -> World {
        World {
            function: Some(ObservedFunction::default()),
            tags: owner().tags().into_iter().collect(),
            versions: versions
                .iter()
                .map(|v| ObservedFunction {
                    version: (*v).into(),
                    ..Default::default()
                })
                .collect(),
            scaling: None,
            provider_full: false,
            retired: Default::default(),
        }
    }

    fn scaled(min: i32, max: i32) -> ObservedScaling {
        ObservedScaling {
            requested: Some(ScalingConfig {
                min: Some(min),
                max: Some(max),
            }),
            applied: None,
        }
    }

    #[test]
    fn a_running_function_is_marked_then_every_version_deactivated() {
        let scalings = BTreeMap::from([("1".to_owned(), scaled(1, 4))]);
        assert_eq!(
            steps(&world(&["1", "2"]), &scalings, &owner(), "RoleNotAllowed"),
            vec![
                SuspendStep::Mark("RoleNotAllowed".into()),
                SuspendStep::Deactivate("1".into()),
                SuspendStep::Deactivate("2".into()),
            ]
        );
    }

    #[test]
    fn a_suspended_function_needs_nothing_more() {
        let mut w = world(&["1"]);
        w.tags.insert(SUSPENDED_TAG.into(), "RoleNotAllowed".into());
        let scalings = BTreeMap::from([("1".to_owned(), scaled(0, 0))]);
        assert!(steps(&w, &scalings, &owner(), "RoleNotAllowed").is_empty());
        // A new reason is recorded.
        assert_eq!(
            steps(&w, &scalings, &owner(), "TenantLimitExceeded"),
            vec![SuspendStep::Mark("TenantLimitExceeded".into())]
        );
    }

    #[test]
    fn nothing_is_touched_that_does_not_exist_or_is_not_ours() {
        assert!(steps(&World::default(), &BTreeMap::new(), &owner(), "R").is_empty());
        let mut foreign = world(&["1"]);
        foreign.tags.clear();
        assert!(steps(&foreign, &BTreeMap::new(), &owner(), "R").is_empty());
        let mut other = owner();
        other.installation = "another".into();
        let mut theirs = world(&["1"]);
        theirs.tags = other.tags().into_iter().collect();
        assert!(steps(&theirs, &BTreeMap::new(), &owner(), "R").is_empty());
    }
}
