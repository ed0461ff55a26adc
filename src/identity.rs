//! The AWS identity of a Kubernetes object: the AWS names the operator derives for it, and the
//! ownership tags it puts on everything it creates (so it never touches what it does not own).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

/// Tag naming the tool that manages the resource.
pub const TAG_MANAGED_BY: &str = "lmi.dev/managed-by";
/// Tag naming the cluster (`--cluster-name`).
pub const TAG_CLUSTER: &str = "lmi.dev/cluster";
/// Tag naming the Kubernetes kind that owns the resource.
pub const TAG_KIND: &str = "lmi.dev/kind";
/// Tag naming the owning object: `name` (cluster-scoped) or `namespace/name`.
pub const TAG_OBJECT: &str = "lmi.dev/object";
/// Tag carrying the owning object's uid.
pub const TAG_UID: &str = "lmi.dev/uid";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY: &str = "lmi-operator";

/// Longest capacity provider name AWS accepts.
pub const MAX_PROVIDER_NAME: usize = 140;
/// Longest function name AWS accepts.
pub const MAX_FUNCTION_NAME: usize = 64;

/// The Kubernetes object that owns AWS resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `--cluster-name` of the operator.
    pub cluster: String,
    /// Kubernetes kind, e.g. `CapacityProvider`.
    pub kind: &'static str,
    /// `name` or `namespace/name`.
    pub object: String,
    /// The object's uid.
    pub uid: String,
}

/// How a resource found in AWS relates to an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Created for this object.
    Ours,
    /// Created by this cluster for an earlier object of the same kind and name (deleted with
    /// `Retain` and applied again): the same logical owner, so it is taken back and re-tagged.
    OursFromEarlierObject,
    /// Not created by this operator for this object: never modified or deleted unless the spec
    /// asks to adopt it.
    Foreign,
}

impl Owner {
    /// The ownership tags for everything created for this object.
    pub fn tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (TAG_CLUSTER.to_owned(), self.cluster.clone()),
            (TAG_KIND.to_owned(), self.kind.to_owned()),
            (TAG_OBJECT.to_owned(), self.object.clone()),
            (TAG_UID.to_owned(), self.uid.clone()),
        ])
    }

    /// Tags that find what was created for this object, or for an earlier object of the same
    /// kind and name (every ownership tag but the uid).
    pub fn lookup_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags();
        tags.remove(TAG_UID);
        tags
    }

    /// Whether a resource carrying `tags` belongs to this object.
    pub fn ownership(&self, tags: &HashMap<String, String>) -> Ownership {
        let is = |key: &str, value: &str| tags.get(key).is_some_and(|v| v == value);
        if !is(TAG_MANAGED_BY, MANAGED_BY)
            || !is(TAG_CLUSTER, &self.cluster)
            || !is(TAG_KIND, self.kind)
            || !is(TAG_OBJECT, &self.object)
        {
            Ownership::Foreign
        } else if is(TAG_UID, &self.uid) {
            Ownership::Ours
        } else {
            Ownership::OursFromEarlierObject
        }
    }
}

/// The AWS name for a CapacityProvider: `<cluster>-<name>`.
pub fn capacity_provider_name(cluster: &str, name: &str) -> String {
    fit(&format!("{cluster}-{name}"), MAX_PROVIDER_NAME)
}

/// The AWS name for a SimilarityFunction: `<cluster>-<namespace>-<name>`.
pub fn function_name(cluster: &str, namespace: &str, name: &str) -> String {
    fit(&format!("{cluster}-{namespace}-{name}"), MAX_FUNCTION_NAME)
}

/// Maps a Kubernetes-style name onto AWS's `[a-zA-Z0-9-_]` and `max` characters. Names that
/// had to be shortened end in a hash of the full name, so two long names stay distinct.
fn fit(raw: &str, max: usize) -> String {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= max {
        return clean;
    }
    let hash = Sha256::digest(raw.as_bytes());
    let suffix: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = max - suffix.len() - 1;
    format!("{}-{suffix}", clean[..keep].trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            cluster: "prod-eu".into(),
            kind: "CapacityProvider",
            object: "graviton".into(),
            uid: "uid-1".into(),
        }
    }

    fn as_hash(tags: BTreeMap<String, String>) -> HashMap<String, String> {
        tags.into_iter().collect()
    }

    #[test]
    fn own_tags_mean_ours() {
        assert_eq!(owner().ownership(&as_hash(owner().tags())), Ownership::Ours);
    }

    #[test]
    fn same_object_with_new_uid_is_taken_back() {
        let mut earlier = owner();
        earlier.uid = "uid-0".into();
        assert_eq!(
            owner().ownership(&as_hash(earlier.tags())),
            Ownership::OursFromEarlierObject
        );
    }

    #[test]
    fn other_cluster_object_or_untagged_is_foreign() {
        let mut other = owner();
        other.cluster = "prod-us".into();
        assert_eq!(
            owner().ownership(&as_hash(other.tags())),
            Ownership::Foreign
        );
        let mut other = owner();
        other.object = "another".into();
        assert_eq!(
            owner().ownership(&as_hash(other.tags())),
            Ownership::Foreign
        );
        assert_eq!(owner().ownership(&HashMap::new()), Ownership::Foreign);
    }

    #[test]
    fn names_are_sanitised_and_short_ones_kept() {
        assert_eq!(
            capacity_provider_name("prod", "graviton.v2"),
            "prod-graviton-v2"
        );
        assert_eq!(
            function_name("prod", "search", "products"),
            "prod-search-products"
        );
    }

    #[test]
    fn long_names_are_shortened_with_a_distinguishing_hash() {
        let a = function_name(
            "prod",
            "a-very-long-namespace-name-for-search",
            "products-similarity-a",
        );
        let b = function_name(
            "prod",
            "a-very-long-namespace-name-for-search",
            "products-similarity-b",
        );
        assert_eq!(a.len(), MAX_FUNCTION_NAME);
        assert_eq!(b.len(), MAX_FUNCTION_NAME);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        // Stable: the same input always gives the same name.
        assert_eq!(
            a,
            function_name(
                "prod",
                "a-very-long-namespace-name-for-search",
                "products-similarity-a"
            )
        );
    }
}
