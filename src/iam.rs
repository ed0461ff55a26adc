//! The operator's IAM policy (pure), as `lmi-operator iam-policy` prints it and
//! `deploy/iam/operator-policy.json` holds it with the defaults.
//!
//! Least privilege in what IAM can express for Lambda Managed Instances:
//! - reads everywhere (the operator must see what exists to know what it does not own);
//! - creates only with the ownership tag on the request, changes and deletes only what carries
//!   it (and, with `--installation-id`, only this installation's);
//! - tags on Lambda only at creation (a resource without the ownership tag) or on owned
//!   resources; Lambda checks tagging on create as `lambda:TagResource` without resource tags,
//!   so IAM cannot tell it from tagging an untagged function, and the operator's code never tags
//!   what it does not own (the adoption of a capacity provider, `spec.adopt`, aside);
//! - passes roles to Lambda only from one IAM path (AWS: "Do not try to control who can pass a
//!   role by tagging the role and then using the ResourceTag condition key");
//! - reads function code from S3 only in the buckets named at install;
//! - creates VPC endpoints only for the telemetry services it creates them for.

use serde::Serialize;
use serde_json::{Value, json};

use crate::aws::ec2::TELEMETRY_SERVICES;
use crate::identity::{MANAGED_BY, TAG_INSTALLATION, TAG_MANAGED_BY};

/// What the policy is generated for.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct PolicyOptions {
    /// AWS partition (`aws`, `aws-cn`, `aws-us-gov`, ...).
    #[arg(long, default_value = "aws")]
    pub partition: String,

    /// Account the operator works in (`*`: any, for a template).
    #[arg(long, default_value = "*")]
    pub account: String,

    /// IAM path of the roles the operator may pass to Lambda: capacity provider operator roles
    /// and the tenants' execution roles (for example `/lmi/`, with a team's roles under
    /// `/lmi/<team>/` and its grant naming `arn:aws:iam::ACCOUNT:role/lmi/<team>/*`).
    #[arg(long, default_value = "/lmi/")]
    pub role_path: String,

    /// S3 buckets Lambda may read handler code from on the operator's behalf
    /// (`spec.code.s3`; the chart's `aws.codeBuckets`). None: only the bundled handler.
    #[arg(long = "code-bucket", value_name = "BUCKET")]
    pub code_buckets: Vec<String>,

    /// Pin the policy to one installation (the chart's `installationId`): it then changes and
    /// deletes only what carries this installation's tag.
    #[arg(long)]
    pub installation_id: Option<String>,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            partition: "aws".into(),
            account: "*".into(),
            role_path: "/lmi/".into(),
            code_buckets: Vec::new(),
            installation_id: None,
        }
    }
}

impl PolicyOptions {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:*:{}:{resource}",
            self.partition, self.account
        )
    }

    /// `StringEquals` on the ownership tag (and the installation's, when pinned) of the request
    /// (`aws:RequestTag`) or of the resource (`aws:ResourceTag`).
    fn owned(&self, key: &str) -> Value {
        let mut tags = serde_json::Map::new();
        tags.insert(format!("{key}/{TAG_MANAGED_BY}"), json!(MANAGED_BY));
        if let Some(id) = &self.installation_id {
            tags.insert(format!("{key}/{TAG_INSTALLATION}"), json!(id));
        }
        Value::Object(tags)
    }
}

/// One statement, its members in the order IAM documents show them.
#[derive(Serialize)]
pub struct Statement {
    #[serde(rename = "Sid")]
    sid: &'static str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    action: Value,
    #[serde(rename = "Resource")]
    resource: Value,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<Value>,
}

fn statement(
    sid: &'static str,
    action: Value,
    resource: Value,
    condition: Option<Value>,
) -> Statement {
    Statement {
        sid,
        effect: "Allow",
        action,
        resource,
        condition,
    }
}

/// An IAM policy document.
#[derive(Serialize)]
pub struct Document {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: Vec<Statement>,
}

/// The policy document.
pub fn policy(o: &PolicyOptions) -> Document {
    let capacity_providers = o.arn("lambda", "capacity-provider:*");
    let functions = o.arn("lambda", "function:*");
    let ec2 = |r: &str| o.arn("ec2", r);
    let mut path = o.role_path.clone();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if !path.ends_with('/') {
        path.push('/');
    }
    let mut statements = vec![
        statement(
            "ReadLambda",
            json!([
                "lambda:GetCapacityProvider",
                "lambda:GetFunction",
                "lambda:GetFunctionScalingConfig",
                "lambda:ListFunctionVersionsByCapacityProvider",
                "lambda:ListTags",
                "lambda:ListVersionsByFunction"
            ]),
            json!("*"),
            None,
        ),
        statement(
            "CreateOwnedCapacityProvidersAndFunctions",
            json!(["lambda:CreateCapacityProvider", "lambda:CreateFunction"]),
            json!([capacity_providers, functions]),
            Some(json!({"StringEquals": o.owned("aws:RequestTag")})),
        ),
        statement(
            "TagOnCreateOrAdoptionOnly",
            json!("lambda:TagResource"),
            json!([capacity_providers, functions]),
            Some(json!({
                "StringEquals": o.owned("aws:RequestTag"),
                "Null": {format!("aws:ResourceTag/{TAG_MANAGED_BY}"): "true"}
            })),
        ),
        statement(
            "ChangeOwnedCapacityProviders",
            json!([
                "lambda:DeleteCapacityProvider",
                "lambda:PassCapacityProvider",
                "lambda:TagResource",
                "lambda:UpdateCapacityProvider"
            ]),
            json!(capacity_providers),
            Some(json!({"StringEquals": o.owned("aws:ResourceTag")})),
        ),
        statement(
            "ChangeOwnedFunctions",
            json!([
                "lambda:DeleteFunction",
                "lambda:PublishVersion",
                "lambda:PutFunctionScalingConfig",
                "lambda:TagResource",
                "lambda:UntagResource",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration"
            ]),
            json!(functions),
            Some(json!({"StringEquals": o.owned("aws:ResourceTag")})),
        ),
        statement(
            "PassRolesOnTheLmiPathToLambda",
            json!("iam:PassRole"),
            json!(format!(
                "arn:{}:iam::{}:role{path}*",
                o.partition, o.account
            )),
            Some(json!({"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}})),
        ),
    ];
    if !o.code_buckets.is_empty() {
        let objects: Vec<String> = o
            .code_buckets
            .iter()
            .map(|b| format!("arn:{}:s3:::{b}/*", o.partition))
            .collect();
        statements.push(statement(
            "LetLambdaReadFunctionCodeFromTheCodeBuckets",
            json!(["s3:GetObject", "s3:GetObjectVersion"]),
            json!(objects),
            None,
        ));
    }
    let endpoint_services: Vec<String> = TELEMETRY_SERVICES
        .iter()
        .map(|s| format!("com.amazonaws.*.{s}"))
        .collect();
    statements.extend([
        statement(
            "ReadNetworkAndInstanceTypes",
            json!([
                "ec2:DescribeInstanceTypeOfferings",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeRouteTables",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcEndpoints",
                "ec2:DescribeVpcs"
            ]),
            json!("*"),
            None,
        ),
        statement(
            "CreateSecurityGroupsAndEndpointsInAnyVpc",
            json!(["ec2:CreateSecurityGroup", "ec2:CreateVpcEndpoint"]),
            json!([ec2("vpc/*"), ec2("subnet/*"), ec2("security-group/*")]),
            None,
        ),
        statement(
            "CreateOnlyOwnedSecurityGroups",
            json!("ec2:CreateSecurityGroup"),
            json!(ec2("security-group/*")),
            Some(json!({"StringEquals": o.owned("aws:RequestTag")})),
        ),
        statement(
            "CreateOnlyOwnedTelemetryEndpoints",
            json!("ec2:CreateVpcEndpoint"),
            json!(ec2("vpc-endpoint/*")),
            Some(json!({
                "StringEquals": o.owned("aws:RequestTag"),
                "StringLike": {"ec2:VpceServiceName": endpoint_services}
            })),
        ),
        statement(
            "TagOnlyAtCreation",
            json!("ec2:CreateTags"),
            json!([ec2("security-group/*"), ec2("vpc-endpoint/*")]),
            Some(json!({
                "StringEquals": {"ec2:CreateAction": ["CreateSecurityGroup", "CreateVpcEndpoint"]}
            })),
        ),
        statement(
            "ChangeAndDeleteOwnedSecurityGroups",
            json!([
                "ec2:AuthorizeSecurityGroupEgress",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:DeleteSecurityGroup",
                "ec2:RevokeSecurityGroupEgress"
            ]),
            json!(ec2("security-group/*")),
            Some(json!({"StringEquals": o.owned("aws:ResourceTag")})),
        ),
        statement(
            "DeleteOwnedEndpoints",
            json!("ec2:DeleteVpcEndpoints"),
            json!(ec2("vpc-endpoint/*")),
            Some(json!({"StringEquals": o.owned("aws:ResourceTag")})),
        ),
        statement(
            "AssociateEndpointPrivateDns",
            json!("route53:AssociateVPCWithHostedZone"),
            json!(format!("arn:{}:route53:::hostedzone/*", o.partition)),
            None,
        ),
    ]);
    Document {
        version: "2012-10-17",
        statement: statements,
    }
}

/// The policy as the committed file holds it: pretty JSON with a final newline.
pub fn to_json(policy: &Document) -> String {
    let mut text = serde_json::to_string_pretty(policy).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(policy: &Document, sid: &str) -> Option<Value> {
        serde_json::to_value(policy).ok()?["Statement"]
            .as_array()?
            .iter()
            .find(|s| s["Sid"] == sid)
            .cloned()
    }

    #[test]
    fn roles_are_passed_only_from_the_path_and_only_to_lambda() {
        let p = policy(&PolicyOptions {
            account: "123456789012".into(),
            role_path: "lmi/prod".into(),
            ..Default::default()
        });
        let s = statement(&p, "PassRolesOnTheLmiPathToLambda").expect("statement");
        assert_eq!(s["Resource"], "arn:aws:iam::123456789012:role/lmi/prod/*");
        assert_eq!(
            s["Condition"]["StringEquals"]["iam:PassedToService"],
            "lambda.amazonaws.com"
        );
    }

    #[test]
    fn code_is_read_only_from_the_named_buckets_and_not_at_all_without_them() {
        assert!(
            statement(
                &policy(&PolicyOptions::default()),
                "LetLambdaReadFunctionCodeFromTheCodeBuckets"
            )
            .is_none()
        );
        let p = policy(&PolicyOptions {
            code_buckets: vec!["team-artifacts".into()],
            ..Default::default()
        });
        let s = statement(&p, "LetLambdaReadFunctionCodeFromTheCodeBuckets").expect("statement");
        assert_eq!(s["Resource"], json!(["arn:aws:s3:::team-artifacts/*"]));
    }

    #[test]
    fn lambda_resources_are_tagged_only_on_create_or_when_owned() {
        let p = policy(&PolicyOptions::default());
        let on_create = statement(&p, "TagOnCreateOrAdoptionOnly").expect("statement");
        assert_eq!(
            on_create["Condition"]["Null"]["aws:ResourceTag/lmi.dev/managed-by"],
            "true"
        );
        assert_eq!(
            on_create["Condition"]["StringEquals"]["aws:RequestTag/lmi.dev/managed-by"],
            "lmi-operator"
        );
        let owned = statement(&p, "ChangeOwnedFunctions").expect("statement");
        assert_eq!(
            owned["Condition"]["StringEquals"]["aws:ResourceTag/lmi.dev/managed-by"],
            "lmi-operator"
        );
    }

    #[test]
    fn a_pinned_installation_is_required_on_every_owned_condition() {
        let p = policy(&PolicyOptions {
            installation_id: Some("uid/lmi-system".into()),
            ..Default::default()
        });
        let text = serde_json::to_string(&p).expect("json");
        let pinned = text
            .matches("lmi.dev/installation\":\"uid/lmi-system")
            .count();
        let owned = text.matches("lmi.dev/managed-by\":\"lmi-operator").count();
        assert_eq!(pinned, owned);
        assert!(owned >= 8, "{owned}");
    }

    #[test]
    fn endpoints_are_created_only_for_the_telemetry_services() {
        let p = policy(&PolicyOptions::default());
        let s = statement(&p, "CreateOnlyOwnedTelemetryEndpoints").expect("statement");
        assert_eq!(
            s["Condition"]["StringLike"]["ec2:VpceServiceName"],
            json!([
                "com.amazonaws.*.logs",
                "com.amazonaws.*.monitoring",
                "com.amazonaws.*.xray"
            ])
        );
    }
}
