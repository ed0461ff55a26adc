//! The emulator's own lifecycle.

use std::time::Duration;

use lmi_test_support::{AwsEmulator, EmulatorOptions, SupportError};

#[tokio::test]
async fn dropping_the_emulator_stops_it() {
    let aws = AwsEmulator::start().await.unwrap();
    let address = aws.endpoint().trim_start_matches("http://").to_owned();
    assert!(tokio::net::TcpStream::connect(&address).await.is_ok());
    drop(aws);
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "nothing listens on {address} any more"
    );
}

#[tokio::test]
async fn emulators_are_independent() {
    let first = AwsEmulator::start().await.unwrap();
    let second = AwsEmulator::start().await.unwrap();
    assert_ne!(first.endpoint(), second.endpoint());
    first
        .ec2()
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .unwrap();
    let seen = second
        .ec2()
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .filter(|v| v.cidr_block() == Some("10.9.0.0/16"))
        .count();
    assert_eq!(seen, 0);
}

#[tokio::test]
async fn control_errors_are_reported() {
    let aws = AwsEmulator::start().await.unwrap();
    let error = aws
        .force_capacity_provider_state("never-created", Some("Failed"))
        .await
        .unwrap_err();
    assert!(matches!(error, SupportError::Control { .. }), "{error}");
    assert!(error.to_string().contains("404"), "{error}");
}

#[tokio::test]
async fn a_start_that_times_out_says_so() {
    let error = AwsEmulator::start_with(EmulatorOptions {
        ready_timeout: Duration::from_millis(1),
        ..EmulatorOptions::default()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, SupportError::EmulatorTimeout { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_child_process_reaches_the_emulator_through_client_env() {
    let aws = AwsEmulator::start().await.unwrap();
    let name = crate::common::unique("from-env");
    aws.ec2()
        .create_vpc()
        .cidr_block("10.3.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value(&name)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Another process with nothing but the environment (boto3's default chain, as the operator
    // binary would use the Rust SDK's) finds what this one created.
    let python = lmi_test_support::script_path()
        .parent()
        .unwrap()
        .join("../.venv-aws/bin/python");
    let script = "import boto3; vpcs = boto3.client('ec2').describe_vpcs()['Vpcs']; \
                  print([t['Value'] for v in vpcs for t in v.get('Tags', [])])";
    let output = tokio::process::Command::new(python)
        .args(["-c", script])
        .env_clear()
        .envs(aws.client_env())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(&name));
}
