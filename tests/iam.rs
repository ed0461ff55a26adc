//! The committed IAM policy is `lmi-operator iam-policy` with the default options, so what
//! deploy/README.md explains is what the generator (and the permissions test) holds.

use std::process::Command;

/// `lmi-operator iam-policy ARGS`, which must succeed.
fn iam_policy(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lmi-operator"))
        .arg("iam-policy")
        .args(args)
        .output()
        .expect("run lmi-operator iam-policy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_committed_policy_is_the_generators_default_output() {
    let out = iam_policy(&[]);
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/iam/operator-policy.json"),
    )
    .expect("read deploy/iam/operator-policy.json");
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "deploy/iam/operator-policy.json is stale: run scripts/generate and commit the result"
    );
}

#[test]
fn the_generator_takes_the_installs_buckets_path_and_installation() {
    let out = iam_policy(&[
        "--account",
        "123456789012",
        "--role-path",
        "/lmi/prod/",
        "--code-bucket",
        "prod-artifacts",
        "--installation-id",
        "abc/lmi-system",
    ]);
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = policy.to_string();
    assert!(
        text.contains("arn:aws:iam::123456789012:role/lmi/prod/*"),
        "{text}"
    );
    assert!(text.contains("arn:aws:s3:::prod-artifacts/*"), "{text}");
    assert!(
        text.contains("\"aws:ResourceTag/lmi.dev/installation\":\"abc/lmi-system\""),
        "{text}"
    );
}
