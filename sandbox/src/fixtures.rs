//! What the sandbox's AWS account holds before the operator starts: a VPC with private subnets
//! behind a NAT gateway in three zones and one public subnet, a security group for functions,
//! the IAM roles the examples name, and the S3 catalogs their functions read.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use aws_sdk_ec2::types::Tag;
use aws_sdk_s3::primitives::ByteStream;
use lmi_test_support::{AwsEmulator, Egress, Network};

use crate::catalog;
use crate::manifests::{Examples, placeholders};

/// What was created, for the summary and for rendering the examples.
pub struct Fixtures {
    pub network: Network,
    /// Placeholder id in the examples → id in the emulator.
    pub ids: BTreeMap<String, String>,
    pub roles: Vec<String>,
    /// `s3://` URI → number of products.
    pub catalogs: Vec<(String, usize, u32)>,
}

/// Products in each sample catalog.
pub const SAMPLE_PRODUCTS: usize = 2_000;

/// Creates the network, roles and catalogs the examples need.
pub async fn create(aws: &AwsEmulator, examples: &Examples) -> anyhow::Result<Fixtures> {
    let ec2 = aws.ec2();
    let network = Network::builder()
        .private_subnet("us-east-1a")
        .private_subnet("us-east-1b")
        .private_subnet("us-east-1c")
        .public_subnet("us-east-1a")
        .build(&ec2)
        .await
        .context("build the sandbox network")?;

    let private: Vec<&str> = network
        .subnets
        .iter()
        .filter(|s| s.egress == Egress::NatGateway)
        .map(|s| s.id.as_str())
        .collect();
    let public: Vec<&str> = network
        .subnets
        .iter()
        .filter(|s| s.egress == Egress::InternetGateway)
        .map(|s| s.id.as_str())
        .collect();
    tag(&ec2, &private, &[("tier", "private")]).await?;
    tag(&ec2, &public, &[("tier", "public")]).await?;
    tag(
        &ec2,
        &[network.security_group_id.as_str()],
        &[("lmi-role", "functions"), ("Name", "sandbox-functions")],
    )
    .await?;
    tag(&ec2, &[network.vpc_id.as_str()], &[("Name", "sandbox")]).await?;

    let ids = placeholders(&network.vpc_id, &private, &network.security_group_id);

    let mut roles = Vec::new();
    for arn in &examples.role_arns {
        let name = arn
            .rsplit_once(":role/")
            .map(|(_, name)| name)
            .with_context(|| format!("{arn} is not an IAM role ARN"))?;
        let created = aws
            .create_role(name)
            .await
            .with_context(|| format!("create the IAM role {name}"))?;
        if &created != arn {
            bail!(
                "the examples name the role {arn}, but the emulator's account gives {created}; \
                 use the account 123456789012 in the examples"
            );
        }
        roles.push(created);
    }

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.sdk_config())
            .force_path_style(true)
            .build(),
    );
    let mut catalogs = Vec::new();
    let mut buckets = Vec::new();
    for (uri, dimensions) in &examples.catalogs {
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .with_context(|| format!("catalog URI {uri} is not s3://bucket/key"))?;
        if !buckets.iter().any(|b| b == bucket) {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .with_context(|| format!("create the bucket {bucket}"))?;
            buckets.push(bucket.to_owned());
        }
        let body = catalog::sample(SAMPLE_PRODUCTS, *dimensions as usize)
            .with_context(|| format!("write the sample catalog for {uri}"))?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("upload {uri}"))?;
        catalogs.push((uri.clone(), SAMPLE_PRODUCTS, *dimensions));
    }

    Ok(Fixtures {
        network,
        ids,
        roles,
        catalogs,
    })
}

async fn tag(
    ec2: &aws_sdk_ec2::Client,
    resources: &[&str],
    tags: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut call = ec2.create_tags();
    for resource in resources {
        call = call.resources(*resource);
    }
    for (key, value) in tags {
        call = call.tags(Tag::builder().key(*key).value(*value).build());
    }
    call.send()
        .await
        .with_context(|| format!("tag {}", resources.join(", ")))?;
    Ok(())
}
