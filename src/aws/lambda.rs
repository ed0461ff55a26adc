//! Thin typed wrappers over aws-sdk-lambda for capacity providers and tags.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::types::{
    Architecture, CapacityProvider, CapacityProviderLoggingConfig,
    CapacityProviderPermissionsConfig, CapacityProviderPredefinedMetricType,
    CapacityProviderScalingConfig, CapacityProviderScalingMode, CapacityProviderState,
    CapacityProviderTelemetryConfig, CapacityProviderVpcConfig, InstanceRequirements,
    PropagateTags, PropagateTagsMode, SystemLogLevel, TargetTrackingScalingPolicy,
};

use super::error::AwsError;
use super::model::{
    AttachedVersion, ObservedProvider, ProviderConfig, ProviderLogging, ProviderPropagateTags,
    ProviderScaling,
};
use super::rate::{Bucket, RateLimits};
use crate::api::capacity_provider::ProviderState;

/// Lambda calls the controllers make.
#[derive(Clone, Debug)]
pub struct Lambda {
    pub(super) client: Client,
    /// The account-and-region request rates every call waits for.
    pub(super) rates: RateLimits,
}

impl Lambda {
    /// Wraps an SDK client whose calls keep to `rates`.
    pub fn new(client: Client, rates: RateLimits) -> Self {
        Self { client, rates }
    }

    /// The capacity provider named `name`, or `None` when it does not exist.
    pub async fn get_capacity_provider(
        &self,
        name: &str,
    ) -> Result<Option<ObservedProvider>, AwsError> {
        let _permit = self.rates.acquire(Bucket::CapacityProviderRead).await;
        match self
            .client
            .get_capacity_provider()
            .capacity_provider_name(name)
            .send()
            .await
        {
            Ok(out) => out.capacity_provider.as_ref().map(observed).transpose(),
            Err(e) => {
                let e = AwsError::from_sdk("GetCapacityProvider", e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// Creates a capacity provider.
    pub async fn create_capacity_provider(
        &self,
        name: &str,
        config: &ProviderConfig,
        tags: &BTreeMap<String, String>,
    ) -> Result<ObservedProvider, AwsError> {
        const OP: &str = "CreateCapacityProvider";
        let vpc = CapacityProviderVpcConfig::builder()
            .set_subnet_ids(Some(config.subnet_ids.iter().cloned().collect()))
            .set_security_group_ids(Some(config.security_group_ids.iter().cloned().collect()))
            .build()
            .map_err(|e| AwsError::unexpected(OP, e.to_string()))?;
        let permissions = CapacityProviderPermissionsConfig::builder()
            .capacity_provider_operator_role_arn(&config.operator_role_arn)
            .build()
            .map_err(|e| AwsError::unexpected(OP, e.to_string()))?;
        let mut requirements = InstanceRequirements::builder();
        if let Some(arch) = &config.architecture {
            requirements = requirements.architectures(Architecture::from(arch.as_str()));
        }
        for t in &config.allowed_instance_types {
            requirements = requirements.allowed_instance_types(t);
        }
        for t in &config.excluded_instance_types {
            requirements = requirements.excluded_instance_types(t);
        }
        let _permit = self.rates.acquire(Bucket::CapacityProviderWrite).await;
        let out = self
            .client
            .create_capacity_provider()
            .capacity_provider_name(name)
            .vpc_config(vpc)
            .permissions_config(permissions)
            .instance_requirements(requirements.build())
            .capacity_provider_scaling_config(scaling_config(&config.scaling, OP)?)
            .set_kms_key_arn(config.kms_key_arn.clone())
            .set_tags(Some(tags.clone().into_iter().collect()))
            .set_propagate_tags(config.propagate_tags.as_ref().map(propagate_tags))
            .set_telemetry_config(config.logging.as_ref().map(telemetry))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        observed(
            out.capacity_provider
                .as_ref()
                .ok_or_else(|| AwsError::unexpected(OP, "the response has no capacity provider"))?,
        )
    }

    /// Applies the parts of `config` AWS can change in place: scaling, tag propagation and
    /// logging.
    pub async fn update_capacity_provider(
        &self,
        name: &str,
        config: &ProviderConfig,
    ) -> Result<(), AwsError> {
        const OP: &str = "UpdateCapacityProvider";
        let _permit = self.rates.acquire(Bucket::CapacityProviderWrite).await;
        self.client
            .update_capacity_provider()
            .capacity_provider_name(name)
            .capacity_provider_scaling_config(scaling_config(&config.scaling, OP)?)
            .set_propagate_tags(config.propagate_tags.as_ref().map(propagate_tags))
            .set_telemetry_config(config.logging.as_ref().map(telemetry))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        Ok(())
    }

    /// Deletes a capacity provider; an absent one counts as deleted.
    pub async fn delete_capacity_provider(&self, name: &str) -> Result<(), AwsError> {
        let _permit = self.rates.acquire(Bucket::CapacityProviderWrite).await;
        match self
            .client
            .delete_capacity_provider()
            .capacity_provider_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteCapacityProvider", e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    /// Function versions attached to a capacity provider (all pages).
    pub async fn list_attached_versions(
        &self,
        name: &str,
    ) -> Result<Vec<AttachedVersion>, AwsError> {
        let mut versions = Vec::new();
        let mut marker = None;
        loop {
            let _permit = self.rates.acquire(Bucket::CapacityProviderRead).await;
            let out = self
                .client
                .list_function_versions_by_capacity_provider()
                .capacity_provider_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListFunctionVersionsByCapacityProvider", e))?;
            versions.extend(out.function_versions.iter().map(|v| AttachedVersion {
                function_arn: v.function_arn().to_owned(),
                state: v.state().as_str().to_owned(),
            }));
            match out.next_marker {
                Some(next) if !next.is_empty() => marker = Some(next),
                _ => return Ok(versions),
            }
        }
    }

    /// Tags of a Lambda resource (function or capacity provider).
    pub async fn list_tags(&self, arn: &str) -> Result<HashMap<String, String>, AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        let out = self
            .client
            .list_tags()
            .resource(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListTags", e))?;
        Ok(out.tags.unwrap_or_default())
    }

    /// Adds or overwrites tags on a Lambda resource.
    pub async fn tag_resource(
        &self,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        self.client
            .tag_resource()
            .resource(arn)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("TagResource", e))?;
        Ok(())
    }

    /// Removes tags from a Lambda resource.
    pub async fn untag_resource(&self, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        self.client
            .untag_resource()
            .resource(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UntagResource", e))?;
        Ok(())
    }
}

fn scaling_config(
    scaling: &ProviderScaling,
    op: &'static str,
) -> Result<CapacityProviderScalingConfig, AwsError> {
    let mut builder = CapacityProviderScalingConfig::builder()
        .set_max_v_cpu_count(scaling.max_vcpu_count)
        .set_scaling_mode(
            scaling
                .mode
                .as_deref()
                .map(CapacityProviderScalingMode::from),
        );
    if let Some(target) = scaling.target_cpu_utilization {
        builder = builder.scaling_policies(
            TargetTrackingScalingPolicy::builder()
                .predefined_metric_type(
                    CapacityProviderPredefinedMetricType::LambdaCapacityProviderAverageCpuUtilization,
                )
                .target_value(target)
                .build()
                .map_err(|e| AwsError::unexpected(op, e.to_string()))?,
        );
    }
    Ok(builder.build())
}

fn propagate_tags(p: &ProviderPropagateTags) -> PropagateTags {
    PropagateTags::builder()
        .mode(PropagateTagsMode::from(p.mode.as_str()))
        .set_explicit_tags(if p.explicit_tags.is_empty() {
            None
        } else {
            Some(p.explicit_tags.clone().into_iter().collect())
        })
        .build()
}

fn telemetry(l: &ProviderLogging) -> CapacityProviderTelemetryConfig {
    CapacityProviderTelemetryConfig::builder()
        .logging_config(
            CapacityProviderLoggingConfig::builder()
                .set_system_log_level(l.system_log_level.as_deref().map(SystemLogLevel::from))
                .set_log_group(l.log_group.clone())
                .build(),
        )
        .build()
}

fn observed(cp: &CapacityProvider) -> Result<ObservedProvider, AwsError> {
    let state = match cp.state() {
        CapacityProviderState::Pending => ProviderState::Pending,
        CapacityProviderState::Active => ProviderState::Active,
        CapacityProviderState::Failed => ProviderState::Failed,
        CapacityProviderState::Deleting => ProviderState::Deleting,
        other => {
            return Err(AwsError::unexpected(
                "GetCapacityProvider",
                format!("unknown capacity provider state {}", other.as_str()),
            ));
        }
    };
    let vpc = cp.vpc_config();
    let req = cp.instance_requirements();
    let scaling = cp.capacity_provider_scaling_config();
    let config = ProviderConfig {
        subnet_ids: vpc
            .map(|v| v.subnet_ids().iter().cloned().collect())
            .unwrap_or_default(),
        security_group_ids: vpc
            .map(|v| v.security_group_ids().iter().cloned().collect())
            .unwrap_or_default(),
        operator_role_arn: cp
            .permissions_config()
            .map(|p| p.capacity_provider_operator_role_arn().to_owned())
            .unwrap_or_default(),
        architecture: req
            .and_then(|r| r.architectures().first())
            .map(|a| a.as_str().to_owned()),
        allowed_instance_types: req
            .map(|r| r.allowed_instance_types().iter().cloned().collect())
            .unwrap_or_default(),
        excluded_instance_types: req
            .map(|r| r.excluded_instance_types().iter().cloned().collect())
            .unwrap_or_default(),
        kms_key_arn: cp
            .kms_key_arn()
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
        scaling: ProviderScaling {
            mode: scaling
                .and_then(|s| s.scaling_mode())
                .map(|m| m.as_str().to_owned()),
            max_vcpu_count: scaling.and_then(|s| s.max_v_cpu_count()),
            target_cpu_utilization: scaling
                .and_then(|s| s.scaling_policies().first())
                .map(|p| p.target_value()),
        },
        propagate_tags: cp.propagate_tags().map(|p| ProviderPropagateTags {
            mode: p
                .mode()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_else(|| "None".into()),
            explicit_tags: p
                .explicit_tags()
                .map(|t| t.clone().into_iter().collect())
                .unwrap_or_default(),
        }),
        logging: cp
            .telemetry_config()
            .and_then(|t| t.logging_config())
            .map(|l| ProviderLogging {
                system_log_level: l.system_log_level().map(|s| s.as_str().to_owned()),
                log_group: l.log_group().map(str::to_owned),
            }),
    };
    Ok(ObservedProvider {
        arn: cp.capacity_provider_arn().to_owned(),
        state,
        config,
    })
}
