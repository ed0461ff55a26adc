//! The real kubectl with the project's own CRDs and examples: `apply -f crds/`,
//! `apply -f examples/` (client-side, then server-side), `get` with the printer columns, and a
//! corpus manifest refused with the CRD's message.

use crate::corpus::repo_root;
use crate::kubectl::Kubectl;

#[tokio::test]
async fn kubectl_applies_the_projects_crds_and_examples() {
    let k = Kubectl::empty().await;
    let root = repo_root();
    let crds = root.join("crds").to_string_lossy().into_owned();
    let examples = root.join("examples").to_string_lossy().into_owned();

    let out = k.ok(&["apply", "-f", &crds]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/capacityproviders.lmi.dev created"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/similarityfunctions.lmi.dev created"
        ),
        "{out}"
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/capacityproviders.lmi.dev",
        "--timeout=10s",
    ])
    .await;

    let out = k.ok(&["apply", "-f", &examples]).await;
    assert!(out.contains("namespace/similarity-prod created"), "{out}");
    assert!(out.contains("capacityprovider.lmi.dev/"), "{out}");
    assert!(out.contains("similarityfunction.lmi.dev/"), "{out}");
    assert!(
        !out.contains("configured"),
        "first apply only creates: {out}"
    );
    // A second client-side apply changes nothing; then the same files server-side.
    assert!(
        !k.ok(&["apply", "-f", &examples])
            .await
            .contains("configured")
    );
    let out = k.ok(&["apply", "--server-side", "-f", &examples]).await;
    assert!(out.contains("serverside-applied"), "{out}");

    let providers = k.ok(&["get", "lmicp"]).await;
    let header: Vec<&str> = providers
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec!["NAME", "READY", "REASON", "STATE", "ARCH", "AGE"],
        "{providers}"
    );
    assert!(providers.lines().count() >= 3, "{providers}");
    let wide = k.ok(&["get", "lmicp", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("MAX VCPU"), "{wide}");
    let functions = k.ok(&["get", "simfn", "-A"]).await;
    assert!(functions.starts_with("NAMESPACE"), "{functions}");
    assert!(functions.contains("similarity-prod"), "{functions}");
    let explained = k.ok(&["explain", "lmicp.spec.vpc"]).await;
    assert!(explained.contains("subnetIds"), "{explained}");
}

#[tokio::test]
async fn kubectl_refuses_corpus_manifests_with_the_crds_messages() {
    let k = Kubectl::empty().await;
    let root = repo_root();
    k.ok(&["apply", "-f", &root.join("crds").to_string_lossy()])
        .await;
    let invalid = root.join("tests/validation/invalid");

    let err = k
        .fails(&[
            "apply",
            "-f",
            &invalid.join("cp-17-subnets.yaml").to_string_lossy(),
        ])
        .await;
    assert!(
        err.contains("The CapacityProvider \"cp\" is invalid"),
        "{err}"
    );
    assert!(
        err.contains("spec.vpc.subnetIds: Too many: 17: must have at most 16 items"),
        "{err}"
    );

    let err = k
        .fails(&[
            "apply",
            "--server-side",
            "-f",
            &invalid
                .join("cp-subnet-ids-and-selector.yaml")
                .to_string_lossy(),
        ])
        .await;
    assert!(
        err.contains("set exactly one of vpc.subnetIds or vpc.subnetSelector"),
        "{err}"
    );

    let immutable = root.join("tests/validation/immutable/cp-change-region.yaml");
    let text = std::fs::read_to_string(&immutable).unwrap();
    let (old, new) = text.split_once("\n---\n").unwrap();
    k.ok(&["apply", "-f", &k.file("old.yaml", old)]).await;
    let err = k.fails(&["apply", "-f", &k.file("new.yaml", new)]).await;
    assert!(
        err.contains("spec.region: Invalid value: \"string\": region is immutable"),
        "{err}"
    );
}
