//! Building `status.conditions`: each condition carries the generation it describes, and keeps
//! its `lastTransitionTime` while its status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Conditions for one status write, starting from the ones the object has.
pub struct Conditions {
    previous: Vec<Condition>,
    current: Vec<Condition>,
    generation: i64,
    now: Time,
}

impl Conditions {
    /// Starts from `previous` (the object's current conditions).
    pub fn new(previous: &[Condition], generation: i64, now: Time) -> Self {
        Self {
            previous: previous.to_vec(),
            current: Vec::new(),
            generation,
            now,
        }
    }

    /// Sets condition `type_`.
    pub fn set(&mut self, type_: &str, status: bool, reason: &str, message: impl Into<String>) {
        let status = if status { "True" } else { "False" };
        let transition = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| self.now.clone());
        self.current.retain(|c| c.type_ != type_);
        self.current.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.into(),
            observed_generation: Some(self.generation),
            last_transition_time: transition,
        });
    }

    /// Keeps a previous condition as it is (for conditions this reconcile did not evaluate).
    pub fn keep(&mut self, type_: &str) {
        if let Some(c) = self.previous.iter().find(|c| c.type_ == type_) {
            self.current.retain(|x| x.type_ != type_);
            self.current.push(c.clone());
        }
    }

    /// Conditions whose status or reason changed from `previous`: the ones worth an event.
    pub fn changed(&self) -> Vec<&Condition> {
        self.current
            .iter()
            .filter(|c| {
                !self
                    .previous
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status && p.reason == c.reason)
            })
            .collect()
    }

    /// The conditions, sorted by type for a stable status.
    pub fn into_vec(mut self) -> Vec<Condition> {
        self.current.sort_by(|a, b| a.type_.cmp(&b.type_));
        self.current
    }
}

/// Whether `conditions` hold `type_` = True for `generation`.
pub fn is_true_for(conditions: &[Condition], type_: &str, generation: Option<i64>) -> bool {
    conditions.iter().any(|c| {
        c.type_ == type_
            && c.status == "True"
            && (generation.is_none() || c.observed_generation == generation)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).expect("timestamp"))
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let mut first = Conditions::new(&[], 1, at(100));
        first.set("Ready", false, "Provisioning", "creating");
        let previous = first.into_vec();

        let mut second = Conditions::new(&previous, 2, at(200));
        second.set("Ready", false, "Provisioning", "still creating");
        assert!(second.changed().is_empty());
        let c = &second.into_vec()[0];
        assert_eq!(c.last_transition_time, at(100));
        assert_eq!(c.observed_generation, Some(2));
        assert_eq!(c.message, "still creating");

        let mut third = Conditions::new(&previous, 2, at(300));
        third.set("Ready", true, "Available", "ok");
        assert_eq!(third.changed().len(), 1);
        assert_eq!(third.into_vec()[0].last_transition_time, at(300));
    }

    #[test]
    fn a_new_reason_counts_as_a_change_and_kept_conditions_survive() {
        let mut first = Conditions::new(&[], 1, at(1));
        first.set("NetworkReady", false, "PublicSubnet", "x");
        first.set("Drifted", false, "InSync", "y");
        let previous = first.into_vec();
        let mut next = Conditions::new(&previous, 1, at(2));
        next.set("NetworkReady", false, "NetworkNotFound", "z");
        next.keep("Drifted");
        assert_eq!(next.changed().len(), 1);
        let all = next.into_vec();
        assert_eq!(all.len(), 2);
        assert!(!is_true_for(&all, "Drifted", None));
    }
}
