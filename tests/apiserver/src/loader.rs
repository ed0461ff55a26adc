//! Preloading CRDs: from values, or from every YAML/JSON manifest in a directory (`--crds`).

use std::path::Path;

use serde_json::Value;

use crate::admission::FieldValidation;
use crate::server::ServerError;
use crate::ssa::Scope;
use crate::state::{CRD_GROUP, Shared};
use crate::status::ApiError;
use crate::writes::{self, WriteOpts};

/// Creates the CRD, or replaces it when one of that name exists.
pub fn install_crd(shared: &Shared, crd: Value) -> Result<(), ApiError> {
    let reg = shared.registry();
    let rt = reg
        .find(CRD_GROUP, "v1", "customresourcedefinitions")
        .cloned()
        .ok_or_else(|| ApiError::internal("CRDs not served"))?;
    let opts = WriteOpts {
        manager: "lmi-test-apiserver".into(),
        dry_run: false,
        field_validation: FieldValidation::Strict,
        force: true,
    };
    let name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match writes::create(shared, &rt, "", crd.clone(), &opts) {
        Err(e) if e.reason == "AlreadyExists" => {
            let body = serde_json::to_vec(&crd).map_err(|e| ApiError::internal(e.to_string()))?;
            writes::patch(
                shared,
                &rt,
                "",
                &name,
                crate::patch::PatchKind::Apply,
                &body,
                Scope::Main {
                    status_subresource: true,
                },
                &opts,
            )
            .map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

/// Installs every `CustomResourceDefinition` found in `*.yaml`, `*.yml` and `*.json` under `dir`.
pub fn load_crds(shared: &Shared, dir: &Path) -> Result<usize, ServerError> {
    let read_dir = std::fs::read_dir(dir).map_err(|source| ServerError::ReadManifest {
        path: dir.into(),
        source,
    })?;
    let mut paths: Vec<_> = read_dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    paths.sort();
    let mut n = 0;
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ServerError::ReadManifest {
            path: path.clone(),
            source,
        })?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| ServerError::ParseManifest {
                path: path.clone(),
                message: e.to_string(),
            })?;
        for doc in docs
            .into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            install_crd(shared, doc).map_err(|source| ServerError::InstallCrd { name, source })?;
            n += 1;
        }
    }
    Ok(n)
}
