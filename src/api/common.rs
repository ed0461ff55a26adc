//! Types shared by both kinds: policies, drift entries, tags, and helpers that build CEL rules.

use std::collections::BTreeMap;

use kube::core::{Message, Rule};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happens in AWS when the Kubernetes resource is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the AWS resources the operator created for this object.
    #[default]
    Delete,
    /// Leave everything in AWS as it is and only remove the finalizer.
    Retain,
}

/// What the operator does when AWS no longer matches the spec (a change made outside Git).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriftPolicy {
    /// Report the drift and change AWS back to the spec where AWS allows it.
    #[default]
    Correct,
    /// Only report the drift in `status.drift` and the `Drifted` condition. Changes to the
    /// spec itself are still applied; only changes made outside Git are left alone.
    Report,
}

/// One difference between the desired state (the spec) and what AWS reports.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// The spec field that differs, as a dotted path (for example `scaling.maxVCpuCount`).
    pub field: String,
    /// The value the spec asks for, rendered as text.
    pub desired: String,
    /// The value AWS reports, rendered as text (`<absent>` when AWS has no value).
    pub observed: String,
    /// Whether the operator can repair this difference in place. Fields that AWS fixes at
    /// creation (subnets, instance requirements, KMS key) can only be reported.
    #[serde(default)]
    pub correctable: bool,
}

/// AWS resource tags: at most 50, keys 1–128 characters, values up to 256 characters. Keys
/// starting with `aws:` are reserved by AWS and keys starting with `lmi.dev/` by the operator
/// (ownership tags).
pub type Tags = BTreeMap<String, String>;

/// Maximum number of user tags: Lambda allows 50 per resource and the operator adds its own
/// ownership tags, so users get what is left.
pub const MAX_USER_TAGS: u32 = 44;

/// Tag prefix the operator reserves for ownership tags.
pub const OWNERSHIP_TAG_PREFIX: &str = "lmi.dev/";

/// AWS's pattern for tag keys and values (the API model's `TagKey`, `TagValue`): letters,
/// spaces, digits and `_ . : / = + - @`. Values are held to it by the schema; keys cannot be
/// (a regex over every key of a map exceeds the API server's CEL cost budget), so the
/// controllers check them with [`invalid_tag_key`] before any AWS call.
pub const TAG_PATTERN: &str = r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$";

/// CEL rules shared by every tag map in the API.
pub fn tag_rules() -> Rule {
    Rule::new(
        "self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('aws:') && \
         !k.startsWith('lmi.dev/'))",
    )
    .message(
        "tag keys must be 1-128 characters and must not start with 'aws:' (reserved by AWS) or \
         'lmi.dev/' (reserved for the operator's ownership tags)",
    )
}

/// The first tag key outside AWS's pattern ([`TAG_PATTERN`]: letters, spaces, digits and
/// `_ . : / = + - @`), if any.
pub fn invalid_tag_key(tags: &Tags) -> Option<&str> {
    tags.keys()
        .find(|k| {
            // `\p{Z}` (space, line and paragraph separators) is whitespace that is not a
            // control character: a no-break space is allowed, a tab is not.
            !k.chars().all(|c| {
                c.is_alphabetic()
                    || c.is_numeric()
                    || (c.is_whitespace() && !c.is_control())
                    || "_.:/=+-@".contains(c)
            })
        })
        .map(String::as_str)
}

/// A schema for tag values: at most 256 characters of [`TAG_PATTERN`].
pub fn tag_values() -> serde_json::Value {
    serde_json::json!({"type": "string", "maxLength": 256, "pattern": TAG_PATTERN})
}

/// A transition rule that refuses any change to a field once the object exists.
pub fn immutable(field: &str, why: &str) -> Rule {
    Rule::new("self == oldSelf").message(Message::Message(format!("{field} is immutable: {why}")))
}

/// A transition rule on a parent struct that refuses adding or removing an optional child
/// field after creation (a field-level `self == oldSelf` only runs when both sides have it).
pub fn immutable_presence(field: &str, why: &str) -> Rule {
    Rule::new(format!("has(self.{field}) == has(oldSelf.{field})")).message(Message::Message(
        format!("{field} cannot be added or removed after creation: {why}"),
    ))
}

/// Serde helper: skip a `false` boolean so defaults do not clutter server-side apply.
pub fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_outside_awss_pattern_are_found() {
        let ok = Tags::from([
            ("team".into(), String::new()),
            ("Kostenstelle Süd/a=b+c-d@e:f_g.h".into(), String::new()),
            (
                "no\u{a0}break\u{3000}ideographic space".into(),
                String::new(),
            ),
        ]);
        assert_eq!(invalid_tag_key(&ok), None);
        let bad = Tags::from([("a;b".into(), String::new()), ("ok".into(), String::new())]);
        assert_eq!(invalid_tag_key(&bad), Some("a;b"));
        assert_eq!(
            invalid_tag_key(&Tags::from([("tab\there".into(), String::new())])),
            Some("tab\there")
        );
    }
}
