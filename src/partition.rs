//! AWS partitions: a role, a subnet and a provider must all live in the partition of the
//! region the operator works in (`aws`, `aws-cn`, `aws-us-gov`, ...). A role ARN from another
//! partition can never be assumed there, so it is refused before any AWS call.

/// The partition a region belongs to (`us-east-1` → `aws`, `cn-north-1` → `aws-cn`).
pub fn of_region(region: &str) -> &'static str {
    // Longest prefixes first: `us-isob-` before `us-iso-`, `us-gov-` before `us-`.
    const PREFIXES: [(&str, &str); 7] = [
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-gov-", "aws-us-gov"),
        ("cn-", "aws-cn"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The partition named by an ARN (`arn:aws-cn:iam::…` → `aws-cn`), if it is an ARN.
pub fn of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some("arn"), Some(partition)) if !partition.is_empty() => Some(partition),
        _ => None,
    }
}

/// Refuses `arn` (the spec field `field`) when it is not in the partition of `region`, with a
/// message saying what to change.
pub fn check_role(field: &str, arn: &str, region: &str) -> Result<(), String> {
    let want = of_region(region);
    match of_arn(arn) {
        Some(have) if have == want => Ok(()),
        Some(have) => Err(format!(
            "{field} {arn} is in the AWS partition {have}, but the region {region} is in {want}: \
             use a role of an account in {want} (arn:{want}:iam::ACCOUNT:role/NAME)"
        )),
        None => Err(format!("{field} {arn} is not an ARN")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partition() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("ap-southeast-5", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(of_region(region), partition, "{region}");
        }
    }

    #[test]
    fn a_role_of_the_same_partition_passes() {
        assert!(check_role("roleArn", "arn:aws:iam::123456789012:role/x", "eu-west-1").is_ok());
        assert!(
            check_role(
                "roleArn",
                "arn:aws-cn:iam::123456789012:role/x",
                "cn-north-1"
            )
            .is_ok()
        );
    }

    #[test]
    fn a_role_of_another_partition_is_refused_with_what_to_use() {
        let err = check_role(
            "operatorRoleArn",
            "arn:aws-cn:iam::123456789012:role/ops",
            "us-east-1",
        )
        .expect_err("refused");
        assert!(err.contains("operatorRoleArn"), "{err}");
        assert!(err.contains("partition aws-cn"), "{err}");
        assert!(err.contains("arn:aws:iam::ACCOUNT:role/NAME"), "{err}");
        assert!(check_role("roleArn", "not-an-arn", "us-east-1").is_err());
    }
}
