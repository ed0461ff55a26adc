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
