//! The Deployment: hardened pod, probes and ports that match the operator's flags, the
//! downward API, and settings the operator's own command line accepts.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use lmi_operator::run::RunArgs;

use crate::helm::{self, REQUIRED};

fn pod(extra: &[&str]) -> PodSpec {
    let objects = helm::render(extra);
    let deployment: Deployment =
        serde_json::from_value(helm::find(&objects, "Deployment", None).clone())
            .expect("Deployment");
    deployment.spec.template.spec.expect("pod spec")
}

fn operator(pod: &PodSpec) -> &Container {
    assert_eq!(pod.containers.len(), 1);
    &pod.containers[0]
}

#[test]
fn the_pod_runs_unprivileged_with_a_read_only_root() {
    for values in [REQUIRED, &["-f", &helm::full_values()][..]] {
        let pod = pod(values);
        let psc = pod.security_context.clone().expect("pod securityContext");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let c = operator(&pod);
        let sc = c
            .security_context
            .clone()
            .expect("container securityContext");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(
            sc.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_owned()])
        );
        let resources = c.resources.clone().expect("resources");
        assert!(resources.requests.is_some_and(|r| r.contains_key("memory")));
        assert!(resources.limits.is_some_and(|r| r.contains_key("memory")));
    }
}

#[test]
fn the_default_image_is_the_one_the_build_script_tags() {
    let pod = pod(REQUIRED);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        operator(&pod).image.as_deref(),
        Some(format!("ghcr.io/lmi-operator/lmi-operator:{version}").as_str())
    );
    let chart = helm::read(&helm::chart().join("Chart.yaml"));
    assert!(
        chart.contains(&format!("appVersion: \"{version}\"")),
        "Chart.yaml appVersion must be the operator's version {version}"
    );
    assert!(
        chart.contains(&format!("\nversion: {version}\n")),
        "the chart is versioned with the operator"
    );
    let script = helm::read(&helm::root().join("scripts/build-image"));
    assert!(
        script.contains("ghcr.io/lmi-operator/lmi-operator"),
        "scripts/build-image tags another repository than the chart's default"
    );
}

#[test]
fn probes_hit_the_health_endpoints_on_the_health_port() {
    for values in [REQUIRED, &["-f", &helm::full_values()][..]] {
        let pod = pod(values);
        let c = operator(&pod);
        let ports: BTreeMap<String, i32> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().expect("port name"), p.container_port))
            .collect();
        let env = env(c);
        let port_of = |addr: &str| addr.rsplit(':').next().and_then(|p| p.parse::<i32>().ok());
        assert_eq!(port_of(&env["LMI_HEALTH_ADDR"]), Some(ports["http-health"]));
        assert_eq!(
            port_of(&env["LMI_METRICS_ADDR"]),
            Some(ports["http-metrics"])
        );
        for (probe, path) in [
            (c.liveness_probe.clone(), "/healthz"),
            (c.readiness_probe.clone(), "/readyz"),
        ] {
            let get = probe.and_then(|p| p.http_get).expect("httpGet probe");
            assert_eq!(get.path.as_deref(), Some(path));
            assert_eq!(
                serde_json::to_value(&get.port).expect("port"),
                "http-health"
            );
        }
    }
}

#[test]
fn the_pod_knows_its_name_and_namespace_from_the_downward_api() {
    let pod = pod(REQUIRED);
    let c = operator(&pod);
    for (name, path) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let var = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let field = var
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        assert_eq!(field, Some(path), "{name}");
    }
}

/// The environment of the container, with downward API values filled in as the kubelet would.
fn env(c: &Container) -> BTreeMap<String, String> {
    c.env
        .iter()
        .flatten()
        .map(|e| {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.namespace") => "lmi-system".to_owned(),
                        Some("metadata.name") => "lmi-operator-7d9f-abcde".to_owned(),
                        other => panic!("unexpected downward API field {other:?}"),
                    }
                }
                (None, None) => String::new(),
            };
            (e.name.clone(), value)
        })
        .collect()
}

#[derive(Parser, Debug)]
struct Run {
    #[command(flatten)]
    args: RunArgs,
}

/// Parses the container's environment with the operator's own flags: every variable the chart
/// sets must be one the operator reads, with a value it accepts. (Environment variables are
/// turned into the equivalent flags, since a test cannot safely change its own environment.)
fn parse_env(env: &BTreeMap<String, String>) -> RunArgs {
    let command = Run::command();
    let mut argv = vec!["lmi-operator-run".to_owned()];
    for (name, value) in env {
        let flag = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
            .and_then(|a| a.get_long());
        match flag {
            Some(long) => argv.push(format!("--{long}={value}")),
            None => assert!(
                name.starts_with("AWS_"),
                "the chart sets {name}, which the operator does not read"
            ),
        }
    }
    Run::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("the operator rejects the chart's settings {argv:?}:\n{e}"))
        .args
}

#[test]
fn the_operator_accepts_every_setting_the_chart_passes() {
    let pod = pod(REQUIRED);
    let args = parse_env(&env(operator(&pod)));
    assert_eq!(args.cluster_name, "test");
    assert_eq!(args.namespace, "lmi-system");
    assert!(args.runtime.leader_election);
    assert_eq!(args.runtime.lease_duration, Duration::from_secs(15));
    assert_eq!(
        args.runtime.pod_name.as_deref(),
        Some("lmi-operator-7d9f-abcde")
    );

    let pod = self::pod(&["-f", &helm::full_values()]);
    let env = env(operator(&pod));
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_ENDPOINT_URL"], "http://aws-emulator.test.svc:5000");
    let args = parse_env(&env);
    assert_eq!(args.cluster_name, "prod-eu-1");
    assert_eq!(
        args.installation_id.as_deref(),
        Some("7f0c1e52-3a4b-4c5d-8e9f-0a1b2c3d4e5f/lmi-system")
    );
    assert_eq!(args.code_buckets, ["search-artifacts", "shared-artifacts"]);
    assert_eq!(args.runtime.lease_name, "lmi-leader");
    assert_eq!(args.runtime.lease_duration, Duration::from_secs(20));
    assert_eq!(args.runtime.lease_grace, Duration::from_secs(6));
    assert_eq!(args.runtime.capacity_provider_concurrency, 1);
    assert_eq!(args.runtime.similarity_function_concurrency, 16);
    assert_eq!(args.runtime.log_level, "info,lmi_operator=debug");
    assert_eq!(args.resync_interval, Duration::from_secs(600));
    assert_eq!(args.runtime.metrics_addr.port(), 9090);
}

#[test]
fn leader_election_off_renders_no_lease_role() {
    let objects = helm::render(&[
        "--set",
        "clusterName=t",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicaCount=1",
    ]);
    assert!(!helm::kinds(&objects).contains(&"Role".to_owned()));
    // Without a lease, the old pod must stop before the new one starts.
    let strategy = |objects: &[serde_json::Value]| {
        helm::find(objects, "Deployment", None)["spec"]["strategy"]["type"].clone()
    };
    assert_eq!(strategy(&objects), "Recreate");
    assert_eq!(
        strategy(&helm::render(&["--set", "clusterName=t"])),
        serde_json::Value::Null,
        "with leader election the default rolling update is safe"
    );
    let pod = pod(&[
        "--set",
        "clusterName=t",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicaCount=1",
    ]);
    assert!(!parse_env(&env(operator(&pod))).runtime.leader_election);
}
