//! The AWS identity of a Kubernetes object: the AWS names the operator derives for it, and the
//! ownership tags it puts on everything it creates (so it never touches what it does not own).

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

/// Tag naming the tool that manages the resource.
pub const TAG_MANAGED_BY: &str = "lmi.dev/managed-by";
/// Tag naming the cluster (`--cluster-name`).
pub const TAG_CLUSTER: &str = "lmi.dev/cluster";
/// Tag naming the installation of the operator (unique per cluster and namespace, see
/// [`installation_id`]): two installations never touch each other's resources, even with the
/// same cluster name.
pub const TAG_INSTALLATION: &str = "lmi.dev/installation";
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
/// Longest `--cluster-name`.
pub const MAX_CLUSTER_NAME: usize = 63;

/// The Kubernetes object that owns AWS resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `--cluster-name` of the operator.
    pub cluster: String,
    /// The operator installation ([`installation_id`]).
    pub installation: String,
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
    /// Created by this installation for an earlier object of the same kind and name (deleted
    /// with `Retain` and applied again), or by this cluster before resources carried an
    /// installation tag: the same logical owner, so it is taken back and re-tagged.
    OursFromEarlierObject,
    /// Created by another installation of the operator (another cluster with the same name, or
    /// another release): never modified, adopted or deleted.
    OtherInstallation,
    /// Not created by this operator for this object: never modified or deleted unless the spec
    /// asks to adopt it.
    Foreign,
}

impl Ownership {
    /// Whether this installation owns it: created for this object or an earlier one of the
    /// same kind and name.
    pub fn is_ours(self) -> bool {
        matches!(self, Self::Ours | Self::OursFromEarlierObject)
    }
}

impl Owner {
    /// The ownership tags for everything created for this object.
    pub fn tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (TAG_CLUSTER.to_owned(), self.cluster.clone()),
            (TAG_INSTALLATION.to_owned(), self.installation.clone()),
            (TAG_KIND.to_owned(), self.kind.to_owned()),
            (TAG_OBJECT.to_owned(), self.object.clone()),
            (TAG_UID.to_owned(), self.uid.clone()),
        ])
    }

    /// Tags that find what was created for this object or for an earlier object of the same
    /// kind and name (every ownership tag but the uid). Lookups match the installation tag
    /// when a resource has one, and take resources from before installations were tagged.
    pub fn lookup_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags();
        tags.remove(TAG_UID);
        tags
    }

    /// Whether a resource carrying `tags` belongs to this object.
    pub fn ownership(&self, tags: &HashMap<String, String>) -> Ownership {
        let is = |key: &str, value: &str| tags.get(key).is_some_and(|v| v == value);
        if !is(TAG_MANAGED_BY, MANAGED_BY) {
            return Ownership::Foreign;
        }
        // Resources of another installation are never ours, whatever else they say.
        if tags
            .get(TAG_INSTALLATION)
            .is_some_and(|i| *i != self.installation)
        {
            return Ownership::OtherInstallation;
        }
        if !is(TAG_CLUSTER, &self.cluster) {
            return Ownership::OtherInstallation;
        }
        if !is(TAG_KIND, self.kind) || !is(TAG_OBJECT, &self.object) {
            return Ownership::Foreign;
        }
        if is(TAG_UID, &self.uid) && is(TAG_INSTALLATION, &self.installation) {
            Ownership::Ours
        } else {
            Ownership::OursFromEarlierObject
        }
    }
}

/// The installation id: `--installation-id` when set, else the uid of the cluster's
/// `kube-system` namespace (fixed for the cluster's life) and the operator's namespace, so two
/// clusters — or two releases in different namespaces of one cluster — never share one.
pub fn installation_id(kube_system_uid: &str, operator_namespace: &str) -> String {
    format!("{kube_system_uid}/{operator_namespace}")
}

/// Checks `--cluster-name`: a DNS label (lowercase letters, digits, `-`; at most 63), so it can
/// never contain the `_` that separates the parts of a derived AWS name.
pub fn check_cluster_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--cluster-name {name:?} must be 1-{MAX_CLUSTER_NAME} lowercase letters, digits or \
             '-', starting and ending with a letter or digit (it becomes part of AWS names)"
        ))
    }
}

/// The AWS name for a CapacityProvider: `<cluster>_<name>` (see [`derive`]).
pub fn capacity_provider_name(cluster: &str, name: &str) -> String {
    derive(&[cluster, name], MAX_PROVIDER_NAME)
}

/// The AWS name for a SimilarityFunction: `<cluster>_<namespace>_<name>` (see [`derive`]).
pub fn function_name(cluster: &str, namespace: &str, name: &str) -> String {
    derive(&[cluster, namespace, name], MAX_FUNCTION_NAME)
}

/// Separator of the parts of a derived name: `_` never appears in a cluster name, a namespace
/// or a Kubernetes object name, so the parts can be read back unambiguously.
const SEPARATOR: char = '_';
/// Marks a hashed name: a plain derived name never holds two separators in a row.
const HASHED: &str = "__";

/// Derives an AWS name from Kubernetes names, injectively: distinct parts never give the same
/// name. When the parts fit as they are (`[a-z0-9-]`, joined with `_`, within `max`), that is
/// the name. Otherwise (too long, or a `.` that AWS does not accept) the name is a readable
/// prefix, `__`, and the base58 SHA-256 of the parts: a plain name never contains `__`, and two
/// hashed names differ in their full-width hash.
fn derive(parts: &[&str], max: usize) -> String {
    let plain = parts.join(&SEPARATOR.to_string());
    let fits = plain.len() <= max
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if fits {
        return plain;
    }
    let mut hasher = Sha256::new();
    for p in parts {
        // Length-prefixed: the parts cannot be regrouped into other parts with the same bytes.
        hasher.update((p.len() as u64).to_be_bytes());
        hasher.update(p.as_bytes());
    }
    let hash = bs58::encode(hasher.finalize()).into_string();
    let room = max.saturating_sub(hash.len() + HASHED.len());
    let readable: String = plain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == SEPARATOR {
                c
            } else {
                '-'
            }
        })
        .take(room)
        .collect();
    format!("{readable}{HASHED}{hash}")
}

/// Whether `name` has the shape of a name the operator derives in `cluster` (`<cluster>_…` or
/// a hashed `…__<hash>`): such names are reserved, so an explicit `spec.awsName` cannot take
/// the name another object would derive.
pub fn is_reserved_shape(cluster: &str, name: &str) -> bool {
    name.contains(HASHED) || name.starts_with(&format!("{cluster}{SEPARATOR}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn owner() -> Owner {
        Owner {
            cluster: "prod-eu".into(),
            installation: "uid-ks/lmi-system".into(),
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
    fn same_object_with_new_uid_or_without_installation_tag_is_taken_back() {
        let mut earlier = owner();
        earlier.uid = "uid-0".into();
        assert_eq!(
            owner().ownership(&as_hash(earlier.tags())),
            Ownership::OursFromEarlierObject
        );
        let mut legacy = owner().tags();
        legacy.remove(TAG_INSTALLATION);
        assert_eq!(
            owner().ownership(&as_hash(legacy)),
            Ownership::OursFromEarlierObject
        );
    }

    #[test]
    fn another_installation_is_never_ours_even_with_the_same_cluster_and_object() {
        let mut other = owner();
        other.installation = "uid-other/lmi-system".into();
        assert_eq!(
            owner().ownership(&as_hash(other.tags())),
            Ownership::OtherInstallation
        );
        let mut other = owner();
        other.cluster = "prod-us".into();
        let mut tags = other.tags();
        tags.remove(TAG_INSTALLATION);
        assert_eq!(
            owner().ownership(&as_hash(tags)),
            Ownership::OtherInstallation
        );
    }

    #[test]
    fn another_object_or_untagged_is_foreign() {
        let mut other = owner();
        other.object = "another".into();
        assert_eq!(
            owner().ownership(&as_hash(other.tags())),
            Ownership::Foreign
        );
        assert_eq!(owner().ownership(&HashMap::new()), Ownership::Foreign);
    }

    #[test]
    fn lookup_tags_leave_out_the_uid() {
        let tags = owner().lookup_tags();
        assert!(!tags.contains_key(TAG_UID));
        assert_eq!(tags[TAG_INSTALLATION], "uid-ks/lmi-system");
        assert_eq!(tags[TAG_OBJECT], "graviton");
    }

    #[test]
    fn cluster_names_are_dns_labels() {
        assert!(check_cluster_name("prod-eu-1").is_ok());
        for bad in [
            "",
            "Prod",
            "prod_eu",
            "prod.eu",
            "-prod",
            "prod-",
            &"a".repeat(64),
        ] {
            assert!(check_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_plain_names_join_the_parts_with_underscores() {
        assert_eq!(capacity_provider_name("prod", "graviton"), "prod_graviton");
        assert_eq!(
            function_name("prod", "search", "products"),
            "prod_search_products"
        );
    }

    #[test]
    fn dashes_cannot_be_regrouped_between_parts() {
        // The old `-` join mapped both of these to `a-b-c-d`.
        assert_ne!(
            function_name("a", "b-c", "d"),
            function_name("a-b", "c", "d")
        );
        assert_ne!(
            function_name("a", "b", "c-d"),
            function_name("a", "b-c", "d")
        );
    }

    #[test]
    fn dotted_and_long_names_are_hashed_full_width_and_stay_valid() {
        let dotted = capacity_provider_name("prod", "graviton.v2");
        assert_ne!(dotted, capacity_provider_name("prod", "graviton-v2"));
        assert!(dotted.contains("__"), "{dotted}");
        let long = function_name("prod", &"n".repeat(63), &"x".repeat(200));
        assert!(long.len() <= MAX_FUNCTION_NAME, "{long}");
        let hash = long.rsplit("__").next().expect("hash");
        assert!(hash.len() >= 43, "{hash}");
        for name in [&dotted, &long] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name}"
            );
        }
        // Stable: the same input always gives the same name.
        assert_eq!(
            long,
            function_name("prod", &"n".repeat(63), &"x".repeat(200))
        );
    }

    #[test]
    fn derived_shapes_are_reserved() {
        assert!(is_reserved_shape("prod", "prod_team-b_products"));
        assert!(is_reserved_shape("prod", "anything__abc"));
        assert!(!is_reserved_shape("prod", "team-a-products"));
        assert!(!is_reserved_shape("prod", "prod-products"));
    }

    fn dns_label() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?",
            "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
        ]
    }

    fn object_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?",
            "[a-z0-9]([-.a-z0-9]{0,10}[a-z0-9])?",
            "[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?",
        ]
    }

    proptest! {
        /// Injective: two different (cluster, namespace, name) never derive one function name,
        /// also when built to be confusable (a dash moved across a boundary, a dot for a dash,
        /// a shared long prefix).
        #[test]
        fn no_two_objects_derive_the_same_function_name(
            cluster in dns_label(),
            namespace in dns_label(),
            name in object_name(),
            tweak in 0usize..4,
        ) {
            let a = (cluster.clone(), namespace.clone(), name.clone());
            let b = match tweak {
                0 => (format!("{cluster}-{namespace}"), name.clone(), "x".to_owned()),
                1 => (cluster.clone(), format!("{namespace}-{}", &name[..1]), name[1..].to_owned() + "y"),
                2 => (cluster.clone(), namespace.clone(), name.replace('-', ".")),
                _ => (cluster.clone(), namespace.clone(), format!("{name}z")),
            };
            let name_a = function_name(&a.0, &a.1, &a.2);
            let name_b = function_name(&b.0, &b.1, &b.2);
            prop_assert!(name_a.len() <= MAX_FUNCTION_NAME && name_b.len() <= MAX_FUNCTION_NAME);
            if a != b {
                prop_assert_ne!(name_a, name_b);
            }
        }

        /// Many random objects, one name each.
        #[test]
        fn a_population_of_objects_gets_distinct_names(
            objects in proptest::collection::hash_set((dns_label(), object_name()), 1..60),
        ) {
            let names: HashSet<String> = objects
                .iter()
                .map(|(ns, n)| function_name("e2e", ns, n))
                .collect();
            prop_assert_eq!(names.len(), objects.len());
        }
    }
}
