//! Resolve: read what the reconcile needs — the capacity provider and namespace from
//! Kubernetes (for admission), the function, its versions and scaling from Lambda. Reads only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use super::admission::{self, Admitted, Refusal};
use super::plan::World;
use crate::api::capacity_provider::CapacityProvider;
use crate::api::similarity_function::SimilarityFunction;
use crate::aws::model::ObservedScaling;
use crate::aws::{AwsClients, AwsError};
use crate::controller::context::Config;
use crate::controller::error::Error;
use crate::tenancy;

/// Reads the referenced provider, the namespace's labels when a grant's selector decides, and
/// the other functions on the provider; then decides admission.
pub async fn admission(
    client: &Client,
    sf: &SimilarityFunction,
    config: &Config,
) -> Result<Result<Admitted, Refusal>, Error> {
    let provider_name = &sf.spec.capacity_provider_ref.name;
    let namespace = sf.namespace().unwrap_or_default();
    let providers: Api<CapacityProvider> = Api::all(client.clone());
    let provider = providers
        .get_opt(provider_name)
        .await
        .map_err(Error::kube("GetCapacityProvider"))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut labels = None;
    let mut siblings = Vec::new();
    let mut namespace_labels = BTreeMap::new();
    if let Some(cp) = &provider {
        // Every function on the provider, found by the CRD's selectable field: the provider's
        // function versions are shared by all of them, and a grant's limits count them too.
        let functions: Api<SimilarityFunction> = Api::all(client.clone());
        let selector = format!("{PROVIDER_FIELD}={provider_name}");
        siblings = functions
            .list(&ListParams::default().fields(&selector))
            .await
            .map_err(Error::kube("ListSimilarityFunctions"))?
            .items
            .into_iter()
            // A function being deleted gives its place up: its versions are going away.
            .filter(|f| f.metadata.deletion_timestamp.is_none() || f.uid() == sf.uid())
            .collect();
        if admission::grants_have_limits(cp) && tenancy::selects_by_label(&cp.spec.tenants) {
            namespace_labels = namespaces
                .list(&ListParams::default())
                .await
                .map_err(Error::kube("ListNamespaces"))?
                .items
                .into_iter()
                .map(|ns| (ns.name_any(), ns.labels().clone()))
                .collect();
            labels = namespace_labels.get(&namespace).cloned();
        } else if admission::needs_labels(cp, &namespace) {
            labels = namespaces
                .get_opt(&namespace)
                .await
                .map_err(Error::kube("GetNamespace"))?
                .map(|ns| ns.labels().clone());
        }
    }
    Ok(admission::admit(&admission::Facts {
        function: sf,
        provider: provider.as_ref(),
        labels: labels.as_ref(),
        siblings: &siblings,
        namespace_labels: &namespace_labels,
        cluster: &config.cluster_name,
        code_buckets: &config.code_buckets,
        version_limit: config.max_versions_per_capacity_provider,
    }))
}

/// The selectable field of SimilarityFunctions that names their capacity provider.
pub const PROVIDER_FIELD: &str = "spec.capacityProviderRef.name";

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
        provider_full: false,
        retired: Default::default(),
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
