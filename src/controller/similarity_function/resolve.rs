//! Resolve: read what the reconcile needs — the capacity provider and namespace from
//! Kubernetes (for admission), the function, its versions and scaling from Lambda. Reads only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, ResourceExt};

use super::admission::{self, Admitted, Refusal};
use super::plan::World;
use crate::api::capacity_provider::CapacityProvider;
use crate::api::similarity_function::SimilarityFunction;
use crate::aws::model::ObservedScaling;
use crate::aws::{AwsClients, AwsError};
use crate::controller::error::Error;

/// Reads the referenced provider (and the namespace's labels when its selector decides) and
/// decides admission.
pub async fn admission(
    client: &Client,
    sf: &SimilarityFunction,
    operator_namespace: &str,
) -> Result<Result<Admitted, Refusal>, Error> {
    let provider_name = &sf.spec.capacity_provider_ref.name;
    let namespace = sf.namespace().unwrap_or_default();
    let providers: Api<CapacityProvider> = Api::all(client.clone());
    let provider = providers
        .get_opt(provider_name)
        .await
        .map_err(Error::kube("GetCapacityProvider"))?;
    let labels: Option<BTreeMap<String, String>> = match &provider {
        Some(cp) if admission::needs_labels(&cp.spec.allowed_namespaces, &namespace) => {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            namespaces
                .get_opt(&namespace)
                .await
                .map_err(Error::kube("GetNamespace"))?
                .map(|ns| ns.labels().clone())
        }
        _ => None,
    };
    Ok(admission::admit(
        provider_name,
        provider.as_ref(),
        &namespace,
        labels.as_ref(),
        operator_namespace,
    ))
}

/// Reads the function (`$LATEST` and tags) and its published versions.
pub async fn read(aws: &AwsClients, name: &str) -> Result<World, AwsError> {
    let Some((function, tags)) = aws.lambda.get_function(name).await? else {
        return Ok(World::default());
    };
    let versions = aws.lambda.list_versions(name).await?;
    Ok(World {
        function: Some(function),
        tags,
        versions,
        scaling: None,
    })
}

/// Reads the scaling of one published version (empty when it has none, or is gone).
pub async fn read_scaling(
    aws: &AwsClients,
    name: &str,
    version: &str,
) -> Result<ObservedScaling, AwsError> {
    Ok(aws
        .lambda
        .get_scaling_config(name, version)
        .await?
        .unwrap_or_default())
}
