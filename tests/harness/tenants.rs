//! The tenancy part of the test world: what Lambda holds as one comparable snapshot (so a test
//! can prove a refused object changed nothing), a grant manifest, and a wait that proves the
//! operator looked at an object again.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::functions::Scaling;
use super::{CONVERGE, World, eventually};

/// One function as Lambda holds it: its revision (changes with any update of code or
/// configuration), its tags, and each published version with its revision and held
/// scaling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSnapshot {
    /// RevisionId of `$LATEST`.
    pub revision: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// (version, RevisionId, held (min, max): the scaling requested, or applied once settled).
    pub versions: Vec<(String, String, Option<Scaling>)>,
}

/// Every function in the emulator's Lambda, by name.
pub type LambdaSnapshot = BTreeMap<String, FunctionSnapshot>;

impl World {
    /// What Lambda holds now (read straight from the emulator; not counted as operator calls).
    pub async fn lambda_snapshot(&self) -> LambdaSnapshot {
        let mut snapshot = BTreeMap::new();
        for name in self.aws_function_names().await {
            let f = self
                .lambda
                .get_function()
                .function_name(&name)
                .send()
                .await
                .expect("get function");
            let revision = f
                .configuration()
                .and_then(|c| c.revision_id())
                .unwrap_or_default()
                .to_owned();
            let tags = f
                .tags()
                .map(|t| t.clone().into_iter().collect())
                .unwrap_or_default();
            let listed = self
                .lambda
                .list_versions_by_function()
                .function_name(&name)
                .send()
                .await
                .expect("list versions");
            let mut versions = Vec::new();
            for v in listed.versions() {
                let Some(version) = v.version().filter(|v| v.parse::<u64>().is_ok()) else {
                    continue;
                };
                let (held, _) = self.aws_scaling_of(&name, version).await;
                versions.push((
                    version.to_owned(),
                    v.revision_id().unwrap_or_default().to_owned(),
                    held,
                ));
            }
            snapshot.insert(
                name,
                FunctionSnapshot {
                    revision,
                    tags,
                    versions,
                },
            );
        }
        snapshot
    }

    /// Waits until the operator has reconciled the function again after `after` (its status'
    /// `lastSyncTime` is later): proof that it was alive and looking during a quiet window.
    pub async fn wait_resynced(&self, namespace: &str, name: &str, after: Timestamp) {
        let api = self.functions(namespace);
        let looked = eventually(CONVERGE, || {
            let api = api.clone();
            async move {
                api.get_opt(name).await.ok().flatten().is_some_and(|sf| {
                    sf.status
                        .and_then(|s| s.last_sync_time)
                        .is_some_and(|t| t.0 > after)
                })
            }
        })
        .await;
        assert!(
            looked,
            "the operator did not look at {namespace}/{name} again within {CONVERGE:?}"
        );
    }
}

/// A grant for `namespaces` (names) with everything else given as JSON fields (`role`, and
/// `extra` merged over the defaults: catalogs from `s3://catalogs/`, code from
/// `s3://artifacts/`).
pub fn grant_with(name: &str, namespaces: &[&str], role: &str, extra: Value) -> Value {
    let mut grant = super::grant(name, serde_json::json!({"names": namespaces}), role);
    if let (Some(g), Value::Object(extra)) = (grant.as_object_mut(), extra) {
        g.extend(extra);
    }
    grant
}
