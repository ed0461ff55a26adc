//! Plan (pure): the capacity provider AWS should have, how the one it has differs, and which
//! calls bring it there.

use std::collections::{BTreeMap, HashMap};

use crate::api::capacity_provider::{
    CapacityProviderSpec, PropagateTagsMode, ProviderState, ScalingMode, SystemLogLevel,
};
use crate::api::common::DriftEntry;
use crate::aws::model::{
    ObservedProvider, ProviderConfig, ProviderLogging, ProviderPropagateTags, ProviderScaling,
};
use crate::identity::Ownership;

/// Lambda's system log level when none is set: "By default, Lambda sets the system log level
/// to INFO" (developer guide, "Log-level filtering for capacity provider system logs").
const DEFAULT_SYSTEM_LOG_LEVEL: &str = "INFO";

/// Lambda's log group of a capacity provider when none is set: "By default, Lambda capacity
/// providers send logs to a default log group named /aws/lambda/capacity-provider/<capacity
/// provider name>" (API reference, CapacityProviderLoggingConfig).
fn default_log_group(aws_name: &str) -> String {
    format!("/aws/lambda/capacity-provider/{aws_name}")
}

/// The provider configuration the spec asks for, with the network as resolved. Settings the
/// spec leaves out are AWS's documented defaults, so removing one from the spec reverts it.
pub fn desired_config(
    spec: &CapacityProviderSpec,
    aws_name: &str,
    subnet_ids: &[String],
    security_group_ids: &[String],
) -> ProviderConfig {
    let instances = &spec.instances;
    ProviderConfig {
        subnet_ids: subnet_ids.iter().cloned().collect(),
        security_group_ids: security_group_ids.iter().cloned().collect(),
        operator_role_arn: spec.operator_role_arn.clone(),
        architecture: Some(instances.architecture.as_aws_str().to_owned()),
        allowed_instance_types: instances
            .allowed_instance_types
            .iter()
            .flatten()
            .cloned()
            .collect(),
        excluded_instance_types: instances
            .excluded_instance_types
            .iter()
            .flatten()
            .cloned()
            .collect(),
        kms_key_arn: spec.kms_key_arn.clone(),
        scaling: ProviderScaling {
            mode: Some(
                match spec.scaling.mode {
                    ScalingMode::Auto => "Auto",
                    ScalingMode::Manual => "Manual",
                }
                .to_owned(),
            ),
            max_vcpu_count: spec.scaling.max_v_cpu_count,
            target_cpu_utilization: spec.scaling.target_cpu_utilization,
        },
        // Settings the spec leaves out are sent as AWS's defaults (no propagation, no telemetry
        // settings), so removing them from the spec returns AWS to its default.
        propagate_tags: Some(
            spec.propagate_tags
                .as_ref()
                .map_or_else(no_propagation, |p| ProviderPropagateTags {
                    mode: match p.mode {
                        PropagateTagsMode::None => "None",
                        PropagateTagsMode::Explicit => "Explicit",
                    }
                    .to_owned(),
                    explicit_tags: p.explicit_tags.clone(),
                }),
        ),
        logging: Some(ProviderLogging {
            system_log_level: Some(
                spec.logging
                    .as_ref()
                    .and_then(|l| l.system_log_level)
                    .map_or(DEFAULT_SYSTEM_LOG_LEVEL, |level| match level {
                        SystemLogLevel::Debug => "DEBUG",
                        SystemLogLevel::Info => "INFO",
                        SystemLogLevel::Warn => "WARN",
                    })
                    .to_owned(),
            ),
            log_group: Some(
                spec.logging
                    .as_ref()
                    .and_then(|l| l.log_group.clone())
                    .unwrap_or_else(|| default_log_group(aws_name)),
            ),
        }),
    }
}

fn no_propagation() -> ProviderPropagateTags {
    ProviderPropagateTags {
        mode: "None".into(),
        explicit_tags: BTreeMap::new(),
    }
}

/// The tags the provider must carry: the user's and the operator's ownership tags.
pub fn desired_tags(
    spec: &CapacityProviderSpec,
    ownership: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.extend(ownership.clone());
    tags
}

fn show<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

fn opt(v: &Option<impl ToString>) -> String {
    v.as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "<absent>".into())
}

fn entry(field: &str, desired: String, observed: String, correctable: bool) -> DriftEntry {
    DriftEntry {
        field: field.to_owned(),
        desired,
        observed,
        correctable,
    }
}

/// Differences between the desired and observed provider. Settings the spec leaves out are
/// compared with AWS's defaults (a removed setting reverts); tags the operator set before
/// (`managed_tags`, from status) that the spec dropped are drift too.
pub fn drift(
    desired: &ProviderConfig,
    desired_tags: &BTreeMap<String, String>,
    observed: &ProviderConfig,
    observed_tags: &HashMap<String, String>,
    managed_tags: &[String],
    observed_name: Option<&str>,
) -> Vec<DriftEntry> {
    let mut out = Vec::new();
    let fixed = |out: &mut Vec<DriftEntry>, field: &str, d: String, o: String| {
        if d != o {
            out.push(entry(field, d, o, false));
        }
    };
    fixed(
        &mut out,
        "vpc.subnetIds",
        show(&desired.subnet_ids),
        show(&observed.subnet_ids),
    );
    fixed(
        &mut out,
        "vpc.securityGroupIds",
        show(&desired.security_group_ids),
        show(&observed.security_group_ids),
    );
    fixed(
        &mut out,
        "operatorRoleArn",
        desired.operator_role_arn.clone(),
        observed.operator_role_arn.clone(),
    );
    let observed_arch = observed
        .architecture
        .clone()
        .or_else(|| Some("x86_64".into()));
    fixed(
        &mut out,
        "instances.architecture",
        opt(&desired.architecture),
        opt(&observed_arch),
    );
    fixed(
        &mut out,
        "instances.allowedInstanceTypes",
        show(&desired.allowed_instance_types),
        show(&observed.allowed_instance_types),
    );
    fixed(
        &mut out,
        "instances.excludedInstanceTypes",
        show(&desired.excluded_instance_types),
        show(&observed.excluded_instance_types),
    );
    fixed(
        &mut out,
        "kmsKeyArn",
        opt(&desired.kms_key_arn),
        opt(&observed.kms_key_arn),
    );

    let d = &desired.scaling;
    let o = &observed.scaling;
    let observed_mode = o.mode.clone().or_else(|| Some("Auto".into()));
    if d.mode.is_some() && d.mode != observed_mode {
        out.push(entry(
            "scaling.mode",
            opt(&d.mode),
            opt(&observed_mode),
            true,
        ));
    }
    // Compared also when the spec leaves it out: a bound removed from the spec is removed in
    // AWS (which sets none by itself).
    if d.max_vcpu_count != o.max_vcpu_count {
        out.push(entry(
            "scaling.maxVCpuCount",
            opt(&d.max_vcpu_count),
            opt(&o.max_vcpu_count),
            true,
        ));
    }
    if d.target_cpu_utilization != o.target_cpu_utilization
        && (d.target_cpu_utilization.is_some() || d.mode.as_deref() == Some("Auto"))
    {
        out.push(entry(
            "scaling.targetCpuUtilization",
            opt(&d.target_cpu_utilization),
            opt(&o.target_cpu_utilization),
            true,
        ));
    }
    if let Some(p) = &desired.propagate_tags {
        let observed = observed
            .propagate_tags
            .clone()
            .unwrap_or_else(no_propagation);
        if *p != observed {
            out.push(entry("propagateTags", show(p), show(&observed), true));
        }
    }
    if let Some(l) = &desired.logging {
        // What AWS leaves unreported is its default.
        let o = observed.logging.clone().unwrap_or_default();
        let o = ProviderLogging {
            system_log_level: o
                .system_log_level
                .or_else(|| Some(DEFAULT_SYSTEM_LOG_LEVEL.to_owned())),
            log_group: o.log_group.or_else(|| {
                observed_name
                    .filter(|n| !n.is_empty())
                    .map(default_log_group)
            }),
        };
        if l.system_log_level != o.system_log_level {
            out.push(entry(
                "logging.systemLogLevel",
                opt(&l.system_log_level),
                opt(&o.system_log_level),
                true,
            ));
        }
        if l.log_group != o.log_group {
            out.push(entry(
                "logging.logGroup",
                opt(&l.log_group),
                opt(&o.log_group),
                true,
            ));
        }
    }
    for key in managed_tags {
        if !desired_tags.contains_key(key)
            && let Some(have) = observed_tags.get(key)
        {
            out.push(entry(
                &format!("tags.{key}"),
                "<absent>".into(),
                have.clone(),
                true,
            ));
        }
    }
    for (key, value) in desired_tags {
        let have = observed_tags.get(key);
        if have != Some(value) {
            out.push(entry(
                &format!("tags.{key}"),
                value.clone(),
                opt(&have.cloned()),
                true,
            ));
        }
    }
    out
}

/// A mutating AWS call the reconcile should make for the provider.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the provider.
    Create,
    /// Apply scaling, tag propagation and logging in place.
    Update,
    /// Add or overwrite these tags.
    Tag(BTreeMap<String, String>),
    /// Remove these tags (the operator set them; the spec no longer names them).
    Untag(Vec<String>),
}

/// Inputs to the provider plan.
pub struct PlanInput<'a> {
    /// Desired configuration.
    pub desired: &'a ProviderConfig,
    /// Desired tags.
    pub desired_tags: &'a BTreeMap<String, String>,
    /// What AWS has, with its tags and who owns it.
    pub observed: Option<(&'a ObservedProvider, &'a HashMap<String, String>, Ownership)>,
    /// The spec may take over a foreign provider: `spec.adopt`, and nothing adopted before
    /// (`status.adoptedArn`), so a provider replaced behind an adoption is not taken silently.
    pub adopt: bool,
    /// Repair drift (`Correct`), or the spec itself changed since the last sync.
    pub may_correct: bool,
    /// Tag keys the operator set before (from status).
    pub managed_tags: &'a [String],
}

/// The plan for the provider itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderPlan {
    /// Calls to make, in order.
    pub steps: Vec<Step>,
    /// Differences found.
    pub drift: Vec<DriftEntry>,
    /// A same-named provider exists that this object may not touch.
    pub conflict: bool,
    /// The same-named provider belongs to another installation of the operator.
    pub other_installation: bool,
    /// This plan takes over a foreign provider (`spec.adopt`).
    pub adopting: bool,
}

/// Decides the provider calls.
pub fn plan(input: PlanInput<'_>) -> ProviderPlan {
    let Some((observed, tags, ownership)) = input.observed else {
        return ProviderPlan {
            steps: vec![Step::Create],
            ..Default::default()
        };
    };
    // Another installation's provider is never adopted, whatever the spec says.
    if ownership == Ownership::OtherInstallation {
        return ProviderPlan {
            conflict: true,
            other_installation: true,
            ..Default::default()
        };
    }
    if ownership == Ownership::Foreign && !input.adopt {
        return ProviderPlan {
            conflict: true,
            ..Default::default()
        };
    }
    let drift = drift(
        input.desired,
        input.desired_tags,
        &observed.config,
        tags,
        input.managed_tags,
        observed.arn.rsplit(':').next(),
    );
    let mut steps = Vec::new();
    // Ownership tags are ours to keep right whatever the drift policy: without them the
    // operator would lose track of what it owns.
    let retag_ownership = ownership != Ownership::Ours;
    let tag_drift: BTreeMap<String, String> = drift
        .iter()
        .filter_map(|d| {
            d.field
                .strip_prefix("tags.")
                .filter(|k| input.desired_tags.contains_key(*k))
                .map(|k| (k.to_owned(), d.desired.clone()))
        })
        .collect();
    let removed: Vec<String> = drift
        .iter()
        .filter_map(|d| d.field.strip_prefix("tags."))
        .filter(|k| !input.desired_tags.contains_key(*k))
        .map(str::to_owned)
        .collect();
    if retag_ownership || (input.may_correct && !tag_drift.is_empty()) {
        let tags = if retag_ownership {
            input.desired_tags.clone()
        } else {
            tag_drift
        };
        steps.push(Step::Tag(tags));
    }
    if input.may_correct && !removed.is_empty() {
        steps.push(Step::Untag(removed));
    }
    let config_drift = drift
        .iter()
        .any(|d| d.correctable && !d.field.starts_with("tags."));
    if input.may_correct && config_drift && observed.state == ProviderState::Active {
        steps.push(Step::Update);
    }
    ProviderPlan {
        steps,
        drift,
        adopting: ownership == Ownership::Foreign,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::capacity_provider::{ScalingSpec, VpcSpec};

    fn spec() -> CapacityProviderSpec {
        CapacityProviderSpec {
            aws_name: None,
            region: None,
            adopt: false,
            vpc: VpcSpec::default(),
            operator_role_arn: "arn:aws:iam::123456789012:role/op".into(),
            instances: Default::default(),
            scaling: ScalingSpec {
                mode: ScalingMode::Auto,
                max_v_cpu_count: Some(64),
                target_cpu_utilization: None,
            },
            kms_key_arn: None,
            logging: None,
            tags: BTreeMap::from([("team".into(), "search".into())]),
            propagate_tags: None,
            tenants: Vec::new(),
            deletion_policy: Default::default(),
            drift_policy: Default::default(),
        }
    }

    fn managed() -> Vec<String> {
        vec!["team".into(), "cost-center".into()]
    }

    fn ownership() -> BTreeMap<String, String> {
        BTreeMap::from([("lmi.dev/uid".into(), "u1".into())])
    }

    fn observed_as_desired() -> (ObservedProvider, HashMap<String, String>) {
        let config = desired_config(&spec(), "x", &["subnet-a".into()], &["sg-1".into()]);
        let tags = desired_tags(&spec(), &ownership()).into_iter().collect();
        (
            ObservedProvider {
                arn: "arn:aws:lambda:us-east-1:123456789012:capacity-provider:x".into(),
                state: ProviderState::Active,
                config,
            },
            tags,
        )
    }

    fn run(
        observed: Option<(&ObservedProvider, &HashMap<String, String>, Ownership)>,
        may_correct: bool,
    ) -> ProviderPlan {
        let desired = desired_config(&spec(), "x", &["subnet-a".into()], &["sg-1".into()]);
        let tags = desired_tags(&spec(), &ownership());
        plan(PlanInput {
            desired: &desired,
            desired_tags: &tags,
            observed,
            adopt: false,
            may_correct,
            managed_tags: &managed(),
        })
    }

    #[test]
    fn absent_provider_is_created() {
        assert_eq!(run(None, true).steps, vec![Step::Create]);
    }

    #[test]
    fn matching_provider_needs_no_call_and_has_no_drift() {
        let (o, tags) = observed_as_desired();
        let plan = run(Some((&o, &tags, Ownership::Ours)), true);
        assert_eq!(plan, ProviderPlan::default());
    }

    #[test]
    fn aws_defaults_for_unset_fields_are_not_drift() {
        let (mut o, tags) = observed_as_desired();
        o.config.logging = Some(ProviderLogging {
            system_log_level: Some("INFO".into()),
            log_group: Some("/aws/lambda/capacity-provider/x".into()),
        });
        o.config.architecture = Some("x86_64".into());
        assert!(
            run(Some((&o, &tags, Ownership::Ours)), true)
                .drift
                .is_empty()
        );
        // reported as absent: the same defaults
        o.config.logging = None;
        o.config.propagate_tags = None;
        assert!(
            run(Some((&o, &tags, Ownership::Ours)), true)
                .drift
                .is_empty()
        );
    }

    #[test]
    fn settings_removed_from_the_spec_return_to_awss_defaults() {
        let (mut o, mut tags) = observed_as_desired();
        // set before from the spec, now gone from it
        o.config.logging = Some(ProviderLogging {
            system_log_level: Some("DEBUG".into()),
            log_group: Some("/custom".into()),
        });
        o.config.propagate_tags = Some(ProviderPropagateTags {
            mode: "Explicit".into(),
            explicit_tags: BTreeMap::from([("a".into(), "b".into())]),
        });
        tags.insert("cost-center".into(), "42".into());
        tags.insert("someone-elses".into(), "x".into());
        let mut desired_spec = spec();
        desired_spec.scaling.max_v_cpu_count = None;
        let desired = desired_config(&desired_spec, "x", &["subnet-a".into()], &["sg-1".into()]);
        let desired_tags = desired_tags(&desired_spec, &ownership());
        let plan = plan(PlanInput {
            desired: &desired,
            desired_tags: &desired_tags,
            observed: Some((&o, &tags, Ownership::Ours)),
            adopt: false,
            may_correct: true,
            managed_tags: &managed(),
        });
        let fields: Vec<&str> = plan.drift.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "scaling.maxVCpuCount",
                "propagateTags",
                "logging.systemLogLevel",
                "logging.logGroup",
                "tags.cost-center"
            ]
        );
        assert_eq!(
            plan.steps,
            vec![Step::Untag(vec!["cost-center".into()]), Step::Update]
        );
        assert_eq!(
            desired
                .logging
                .as_ref()
                .and_then(|l| l.log_group.as_deref()),
            Some("/aws/lambda/capacity-provider/x")
        );
    }

    #[test]
    fn scaling_drift_is_corrected_in_place_when_allowed() {
        let (mut o, tags) = observed_as_desired();
        o.config.scaling.max_vcpu_count = Some(400);
        let plan = run(Some((&o, &tags, Ownership::Ours)), true);
        assert_eq!(plan.steps, vec![Step::Update]);
        assert_eq!(plan.drift.len(), 1);
        assert_eq!(plan.drift[0].field, "scaling.maxVCpuCount");
        assert_eq!(plan.drift[0].desired, "64");
        assert_eq!(plan.drift[0].observed, "400");
        assert!(plan.drift[0].correctable);

        let report_only = run(Some((&o, &tags, Ownership::Ours)), false);
        assert!(report_only.steps.is_empty());
        assert_eq!(report_only.drift, plan.drift);
    }

    #[test]
    fn no_update_while_pending() {
        let (mut o, tags) = observed_as_desired();
        o.state = ProviderState::Pending;
        o.config.scaling.max_vcpu_count = Some(400);
        assert!(
            run(Some((&o, &tags, Ownership::Ours)), true)
                .steps
                .is_empty()
        );
    }

    #[test]
    fn fixed_fields_are_reported_not_corrected() {
        let (mut o, tags) = observed_as_desired();
        o.config.subnet_ids.insert("subnet-z".into());
        let plan = run(Some((&o, &tags, Ownership::Ours)), true);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.drift[0].field, "vpc.subnetIds");
        assert!(!plan.drift[0].correctable);
    }

    #[test]
    fn tag_drift_is_retagged() {
        let (o, mut tags) = observed_as_desired();
        tags.insert("team".into(), "other".into());
        let plan = run(Some((&o, &tags, Ownership::Ours)), true);
        assert_eq!(
            plan.steps,
            vec![Step::Tag(BTreeMap::from([(
                "team".into(),
                "search".into()
            )]))]
        );
    }

    #[test]
    fn a_foreign_provider_is_a_conflict_and_never_touched() {
        let (mut o, tags) = observed_as_desired();
        o.config.scaling.max_vcpu_count = Some(400);
        let plan = run(Some((&o, &tags, Ownership::Foreign)), true);
        assert!(plan.conflict);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn a_provider_from_an_earlier_object_is_retagged_even_under_report() {
        let (o, tags) = observed_as_desired();
        let plan = run(Some((&o, &tags, Ownership::OursFromEarlierObject)), false);
        assert!(matches!(plan.steps.as_slice(), [Step::Tag(t)] if t.contains_key("lmi.dev/uid")));
    }
}
