//! `values.schema.json` refuses bad values at install time, naming the value.

use crate::helm;

/// Renders with `--set` arguments on top of the required values; returns helm's error.
fn refused(sets: &[&str]) -> String {
    let mut args = vec!["--set", "clusterName=test"];
    for set in sets {
        args.push("--set");
        args.push(set);
    }
    let run = helm::template(&args);
    assert!(!run.ok, "{sets:?} was accepted");
    run.stderr
}

#[test]
fn the_cluster_name_is_required() {
    let run = helm::template(&[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("clusterName is required"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_values_are_refused_with_the_path_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["clusterName=Prod_1"], "/clusterName"),
        (&["replicaCount=-1"], "/replicaCount"),
        (&["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (&["image.digest=latest"], "/image/digest"),
        (
            &["leaderElection.leaseDuration=15"],
            "/leaderElection/leaseDuration",
        ),
        (
            &["leaderElection.leaseDuration=1500ms"],
            "/leaderElection/leaseDuration",
        ),
        (
            &["controller.resyncInterval=often"],
            "/controller/resyncInterval",
        ),
        (
            &["controller.capacityProviderConcurrency=0"],
            "/controller/capacityProviderConcurrency",
        ),
        (&["logging.format=xml"], "/logging/format"),
        (&["metrics.port=70000"], "/metrics/port"),
        (&["aws.region=Europe"], "/aws/region"),
        (&["aws.endpointUrl=localhost:5000"], "/aws/endpointUrl"),
        (&["aws.codeBuckets={Not_A_Bucket}"], "/aws/codeBuckets/0"),
        (&["installationId=a#b"], "/installationId"),
        (
            &["securityContext.readOnlyRootFilesystem=false"],
            "/securityContext/readOnlyRootFilesystem",
        ),
        (
            &["securityContext.allowPrivilegeEscalation=true"],
            "/securityContext/allowPrivilegeEscalation",
        ),
        (
            &["securityContext.capabilities.add[0]=NET_ADMIN"],
            "/securityContext/capabilities/add",
        ),
        (
            &["podSecurityContext.runAsNonRoot=false"],
            "/podSecurityContext/runAsNonRoot",
        ),
        (
            &["podSecurityContext.runAsUser=0"],
            "/podSecurityContext/runAsUser",
        ),
        (
            &["serviceAccount.annotations.x=1"],
            "/serviceAccount/annotations/x",
        ),
        (
            &["leaderElection.leaseName=Not_A_Name"],
            "/leaderElection/leaseName",
        ),
        (&["metrics.serviceMonitr.enabled=true"], "serviceMonitr"),
        (&["replicas=3"], "'replicas' not allowed"),
    ];
    for (sets, expected) in cases {
        let error = refused(sets);
        assert!(
            error.contains("schema") && error.contains(expected),
            "{sets:?}: the error does not name {expected}:\n{error}"
        );
    }
}

#[test]
fn several_replicas_need_leader_election() {
    let error = refused(&["leaderElection.enabled=false", "replicaCount=2"]);
    assert!(error.contains("leaderElection.enabled"), "{error}");
}
