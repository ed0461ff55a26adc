//! Thin typed wrappers over aws-sdk-lambda for functions on a capacity provider: create, update,
//! publish, scaling config, versions and deletion.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::types::{
    Architecture, CapacityProviderConfig, Environment, FunctionCode, FunctionConfiguration,
    FunctionScalingConfig, LambdaManagedInstancesCapacityProviderConfig, Runtime, State,
};
use aws_smithy_types::Blob;

use super::error::AwsError;
use super::lambda::Lambda;
use super::model::{CodeSource, FunctionConfig, ObservedFunction, ObservedScaling, ScalingConfig};
use super::rate::Bucket;
use crate::api::similarity_function::FunctionState;

/// The plain description of anything shaped like a FunctionConfiguration: the SDK has one
/// output type per operation, all with the same accessors.
macro_rules! observed {
    ($c:expr) => {{
        let c = &$c;
        let provider = c
            .capacity_provider_config()
            .and_then(|p| p.lambda_managed_instances_capacity_provider_config());
        ObservedFunction {
            arn: c.function_arn().unwrap_or_default().to_owned(),
            version: c.version().unwrap_or("$LATEST").to_owned(),
            state: c.state().and_then(state),
            state_name: c.state().map(|s| s.as_str().to_owned()),
            state_reason: c.state_reason().map(str::to_owned),
            state_reason_code: c.state_reason_code().map(|s| s.as_str().to_owned()),
            last_update_status: c.last_update_status().map(|s| s.as_str().to_owned()),
            last_update_reason: c.last_update_status_reason().map(str::to_owned),
            revision_id: c.revision_id().map(str::to_owned),
            last_modified: c.last_modified().map(str::to_owned),
            code_sha256: c.code_sha256().map(str::to_owned),
            config: FunctionConfig {
                runtime: c.runtime().map(|r| r.as_str().to_owned()),
                handler: c.handler().map(str::to_owned),
                architecture: c.architectures().first().map(|a| a.as_str().to_owned()),
                memory_mib: c.memory_size(),
                timeout_seconds: c.timeout(),
                role_arn: c.role().unwrap_or_default().to_owned(),
                description: c.description().filter(|d| !d.is_empty()).map(str::to_owned),
                environment: c
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|v| v.clone().into_iter().collect())
                    .unwrap_or_default(),
                capacity_provider_arn: provider.map(|p| p.capacity_provider_arn().to_owned()),
                max_concurrency: provider
                    .and_then(|p| p.per_execution_environment_max_concurrency()),
                memory_gib_per_vcpu: provider
                    .and_then(|p| p.execution_environment_memory_gib_per_v_cpu()),
            },
        }
    }};
}

/// The plain description of a FunctionConfiguration (from GetFunction or
/// ListVersionsByFunction).
pub fn observed(c: &FunctionConfiguration) -> ObservedFunction {
    observed!(c)
}

/// A function's `$LATEST` with its tags.
pub type FunctionWithTags = (ObservedFunction, HashMap<String, String>);

impl Lambda {
    /// The function named `name` (`$LATEST`) with its tags, or `None` when it does not exist.
    pub async fn get_function(&self, name: &str) -> Result<Option<FunctionWithTags>, AwsError> {
        const OP: &str = "GetFunction";
        let _permit = self.rates.acquire(Bucket::GetFunction).await;
        match self.client.get_function().function_name(name).send().await {
            Ok(out) => {
                let config = out
                    .configuration()
                    .ok_or_else(|| AwsError::unexpected(OP, "the response has no configuration"))?;
                let function = observed(config);
                let tags = match out.tags() {
                    Some(tags) => tags.clone(),
                    // GetFunction leaves tags out when the caller may not list them.
                    None => self.list_tags(&function.arn).await?,
                };
                Ok(Some((function, tags)))
            }
            Err(e) => {
                let e = AwsError::from_sdk(OP, e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// The published (numbered) versions of a function, all pages, oldest first. `$LATEST` and
    /// `$LATEST.PUBLISHED` are left out.
    pub async fn list_versions(&self, name: &str) -> Result<Vec<ObservedFunction>, AwsError> {
        let mut versions = Vec::new();
        let mut marker = None;
        loop {
            let _permit = self.rates.acquire(Bucket::ControlPlane).await;
            let out = self
                .client
                .list_versions_by_function()
                .function_name(name)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ListVersionsByFunction", e))?;
            versions.extend(
                out.versions()
                    .iter()
                    .map(observed)
                    .filter(|v| v.version.parse::<u64>().is_ok()),
            );
            match out.next_marker {
                Some(next) if !next.is_empty() => marker = Some(next),
                _ => break,
            }
        }
        versions.sort_by_key(|v| v.version.parse::<u64>().unwrap_or_default());
        Ok(versions)
    }

    /// Creates the function (unpublished: versions are published separately).
    pub async fn create_function(
        &self,
        name: &str,
        config: &FunctionConfig,
        code: &CodeSource,
        tags: &BTreeMap<String, String>,
    ) -> Result<ObservedFunction, AwsError> {
        const OP: &str = "CreateFunction";
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        let out = self
            .client
            .create_function()
            .function_name(name)
            .set_runtime(config.runtime.as_deref().map(Runtime::from))
            .set_handler(config.handler.clone())
            .set_architectures(architectures(config))
            .role(&config.role_arn)
            .code(function_code(code))
            .set_memory_size(config.memory_mib)
            .set_timeout(config.timeout_seconds)
            .set_description(config.description.clone())
            .environment(environment(config))
            .set_capacity_provider_config(capacity_provider_config(config, OP)?)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        Ok(observed!(out))
    }

    /// Replaces the code of `$LATEST` (and its architecture).
    pub async fn update_function_code(
        &self,
        name: &str,
        code: &CodeSource,
        architecture: Option<&str>,
    ) -> Result<ObservedFunction, AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        let mut request = self
            .client
            .update_function_code()
            .function_name(name)
            .set_architectures(architecture.map(|a| vec![Architecture::from(a)]));
        request = match code {
            CodeSource::Zip(zip) => request.zip_file(Blob::new(zip.as_ref().clone())),
            CodeSource::S3 {
                bucket,
                key,
                object_version,
            } => request
                .s3_bucket(bucket)
                .s3_key(key)
                .set_s3_object_version(object_version.clone()),
        };
        let out = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateFunctionCode", e))?;
        Ok(observed!(out))
    }

    /// Sets the whole configuration of `$LATEST` (all members the operator manages).
    pub async fn update_function_configuration(
        &self,
        name: &str,
        config: &FunctionConfig,
    ) -> Result<ObservedFunction, AwsError> {
        const OP: &str = "UpdateFunctionConfiguration";
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        let out = self
            .client
            .update_function_configuration()
            .function_name(name)
            .set_runtime(config.runtime.as_deref().map(Runtime::from))
            .set_handler(config.handler.clone())
            .role(&config.role_arn)
            .set_memory_size(config.memory_mib)
            .set_timeout(config.timeout_seconds)
            // An empty description clears one set outside Git.
            .description(config.description.clone().unwrap_or_default())
            .environment(environment(config))
            .set_capacity_provider_config(capacity_provider_config(config, OP)?)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        Ok(observed!(out))
    }

    /// Publishes `$LATEST` as a new numbered version, only if its code hash and revision are
    /// still the ones given (so a concurrent change is never published by mistake).
    pub async fn publish_version(
        &self,
        name: &str,
        code_sha256: &str,
        revision_id: Option<&str>,
        description: &str,
    ) -> Result<ObservedFunction, AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        let out = self
            .client
            .publish_version()
            .function_name(name)
            .code_sha256(code_sha256)
            .set_revision_id(revision_id.map(str::to_owned))
            .description(description)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PublishVersion", e))?;
        Ok(observed!(out))
    }

    /// The scaling config of a published version (`None` when the version does not exist).
    pub async fn get_scaling_config(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Option<ObservedScaling>, AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        match self
            .client
            .get_function_scaling_config()
            .function_name(name)
            .qualifier(qualifier)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObservedScaling {
                requested: out.requested_function_scaling_config().map(scaling),
                applied: out.applied_function_scaling_config().map(scaling),
            })),
            Err(e) => {
                let e = AwsError::from_sdk("GetFunctionScalingConfig", e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// Asks Lambda for these execution environments on a published version.
    pub async fn put_scaling_config(
        &self,
        name: &str,
        qualifier: &str,
        config: &ScalingConfig,
    ) -> Result<(), AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        self.client
            .put_function_scaling_config()
            .function_name(name)
            .qualifier(qualifier)
            .function_scaling_config(
                FunctionScalingConfig::builder()
                    .set_min_execution_environments(config.min)
                    .set_max_execution_environments(config.max)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutFunctionScalingConfig", e))?;
        Ok(())
    }

    /// Deletes one published version (`Some(qualifier)`) or the function with all its versions
    /// (`None`). An absent function or version counts as deleted.
    pub async fn delete_function(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), AwsError> {
        let _permit = self.rates.acquire(Bucket::ControlPlane).await;
        match self
            .client
            .delete_function()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_owned))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("DeleteFunction", e);
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }
}

fn architectures(config: &FunctionConfig) -> Option<Vec<Architecture>> {
    config
        .architecture
        .as_deref()
        .map(|a| vec![Architecture::from(a)])
}

fn environment(config: &FunctionConfig) -> Environment {
    Environment::builder()
        .set_variables(Some(config.environment.clone().into_iter().collect()))
        .build()
}

fn function_code(code: &CodeSource) -> FunctionCode {
    match code {
        CodeSource::Zip(zip) => FunctionCode::builder()
            .zip_file(Blob::new(zip.as_ref().clone()))
            .build(),
        CodeSource::S3 {
            bucket,
            key,
            object_version,
        } => FunctionCode::builder()
            .s3_bucket(bucket)
            .s3_key(key)
            .set_s3_object_version(object_version.clone())
            .build(),
    }
}

fn capacity_provider_config(
    config: &FunctionConfig,
    op: &'static str,
) -> Result<Option<CapacityProviderConfig>, AwsError> {
    let Some(arn) = &config.capacity_provider_arn else {
        return Ok(None);
    };
    let inner = LambdaManagedInstancesCapacityProviderConfig::builder()
        .capacity_provider_arn(arn)
        .set_per_execution_environment_max_concurrency(config.max_concurrency)
        .set_execution_environment_memory_gib_per_v_cpu(config.memory_gib_per_vcpu)
        .build()
        .map_err(|e| AwsError::unexpected(op, e.to_string()))?;
    Ok(Some(
        CapacityProviderConfig::builder()
            .lambda_managed_instances_capacity_provider_config(inner)
            .build(),
    ))
}

fn scaling(s: &FunctionScalingConfig) -> ScalingConfig {
    ScalingConfig {
        min: s.min_execution_environments(),
        max: s.max_execution_environments(),
    }
}

fn state(s: &State) -> Option<FunctionState> {
    Some(match s {
        State::Pending => FunctionState::Pending,
        State::Active => FunctionState::Active,
        State::ActiveNonInvocable => FunctionState::ActiveNonInvocable,
        State::Inactive => FunctionState::Inactive,
        State::Failed => FunctionState::Failed,
        State::Deactivating => FunctionState::Deactivating,
        State::Deactivated => FunctionState::Deactivated,
        State::Deleting => FunctionState::Deleting,
        _ => return None,
    })
}

/// A function ARN without its qualifier (`…:function:name:7` → `…:function:name`), as tags
/// and status want it.
pub fn unqualified(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((i, _)) => &arn[..i],
        None => arn,
    }
}

/// The region in a Lambda ARN.
pub fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_lose_their_qualifier_and_tell_their_region() {
        let base = "arn:aws:lambda:eu-west-1:123456789012:function:prod-search-products";
        assert_eq!(unqualified(base), base);
        assert_eq!(unqualified(&format!("{base}:7")), base);
        assert_eq!(unqualified(&format!("{base}:$LATEST")), base);
        assert_eq!(region_of(base), Some("eu-west-1"));
        assert_eq!(region_of("nonsense"), None);
    }
}
