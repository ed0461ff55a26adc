//! Crash: the real `lmi-operator run` binary (as a Deployment runs it: kubeconfig, the AWS
//! default credential chain and `AWS_ENDPOINT_URL`) SIGKILLed 20 times at random moments while
//! providers and functions converge — specs keep changing between the kills, a function is
//! deleted and one added — and restarted each time. At the end AWS holds exactly what the specs
//! ask for: one provider and one function per object, each configuration published once, one
//! security group per role and one endpoint per service.
//!
//! And crashes at chosen points: between creating the telemetry endpoints' security group and
//! opening it to the VPC, between creating the first telemetry endpoint and the others, and
//! between creating a function (in another region) and reporting it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use lmi_operator::identity::{MANAGED_BY, TAG_MANAGED_BY};
use lmi_test_support::{Egress, Fault, Network};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::harness::functions::{PROVIDER, TEAM, is_ready};
use crate::harness::{CLUSTER, World, eventually, has_condition, provider_conditions};
use crate::inventory::{Inventory, duplicate_configs, published, succeeded};

const KILLS: usize = 20;
const MEMORY: [i32; 4] = [2048, 4096, 6144, 8192];

/// The operator binary running against a world, its output appended to one log file.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn start(world: &World, log: PathBuf) -> Operator {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("operator log");
        let err = out.try_clone().expect("operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_lmi-operator"))
            .args(["run", "--cluster-name", CLUSTER, "--log-format", "text"])
            // One process at a time: a restarted one would wait out the dead one's lease.
            .arg("--leader-election=false")
            .args(["--namespace", world.config.namespace.as_str()])
            .args(["--installation-id", world.config.installation_id.as_str()])
            .args(["--resync-interval", "2s", "--pending-interval", "300ms"])
            .args(["--terminal-retry", "2s", "--handler-dir"])
            .arg(world.handlers.dir())
            .envs(lmi_test_support::client_env(world.proxy.endpoint()))
            .env("KUBECONFIG", world.api.operator_kubeconfig())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            // Where the binary serves probes and metrics: free loopback ports, not 8080/8081.
            .env("LMI_HEALTH_ADDR", "127.0.0.1:0")
            .env("LMI_METRICS_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("start lmi-operator");
        Operator { child, log }
    }

    /// SIGKILL: no shutdown, no in-flight reconcile finishes.
    async fn kill(mut self) -> PathBuf {
        self.child.start_kill().expect("SIGKILL the operator");
        let status = self.child.wait().await.expect("reap the operator");
        assert!(
            !status.success(),
            "the operator exited by itself before the kill: {status}\n{}",
            tail(&self.log)
        );
        self.log
    }
}

/// The last lines of the operator's log.
fn tail(log: &PathBuf) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn function(name: &str, provider: &str, memory: i32, role: &str) -> Value {
    json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "SimilarityFunction",
        "metadata": {"name": name, "namespace": TEAM},
        "spec": {
            "capacityProviderRef": {"name": provider},
            "roleArn": role,
            "memoryMiB": memory,
            "memoryGiBPerVCpu": 2,
            "maxConcurrencyPerEnvironment": 16,
            "scaling": {"minExecutionEnvironments": 1, "maxExecutionEnvironments": 4},
            "catalog": {"uri": "s3://catalogs/products.parquet", "dimensions": 1024},
            "embedding": {"modelId": "amazon.nova-2-multimodal-embeddings-v1:0", "dimensions": 1024},
            // Enough to keep every version published in this test: duplicates would show.
            "versions": {"retain": 20},
        }
    })
}

/// A provider on isolated subnets with a managed security group and telemetry endpoints.
fn isolated_provider(name: &str, isolated: &Network, role: &str) -> Value {
    json!({
        "apiVersion": "lmi.dev/v1alpha1",
        "kind": "CapacityProvider",
        "metadata": {"name": name},
        "spec": {
            "vpc": {
                "subnetIds": isolated.subnet_ids(Egress::None),
                "managedSecurityGroup": {},
                "telemetryEndpoints": "Create",
            },
            "operatorRoleArn": role,
            "instances": {"architecture": "arm64"},
            "scaling": {"mode": "Auto", "maxVCpuCount": 32},
            "tenants": [crate::harness::grant(TEAM, json!({"names": [TEAM]}), role)],
        }
    })
}

async fn isolated_network(world: &World) -> Network {
    Network::builder()
        .isolated_subnet("us-east-1a")
        .isolated_subnet("us-east-1b")
        .cidr("10.7.0.0/16")
        .build(&world.ec2)
        .await
        .expect("isolated network")
}

/// Security groups the operator owns, with their `lmi.dev/role` tag and HTTPS ingress CIDRs.
async fn owned_groups(world: &World) -> Vec<(String, String, Vec<String>)> {
    world
        .ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_MANAGED_BY}"))
                .values(MANAGED_BY)
                .build(),
        )
        .send()
        .await
        .expect("describe security groups")
        .security_groups()
        .iter()
        .map(|g| {
            let role = g
                .tags()
                .iter()
                .find(|t| t.key() == Some("lmi.dev/role"))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_owned();
            let https_from = g
                .ip_permissions()
                .iter()
                .filter(|p| p.from_port() == Some(443) && p.to_port() == Some(443))
                .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip()))
                .map(str::to_owned)
                .collect();
            (
                g.group_id().unwrap_or_default().to_owned(),
                role,
                https_from,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_during_convergence_end_in_the_spec_without_duplicates() {
    let seed = std::env::var("LMI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash seed {seed} (replay with LMI_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let (world, nat) = World::for_functions().await;
    let isolated = isolated_network(&world).await;
    // Providers and versions stay Pending a while, so kills land in the middle of waits too.
    world
        .aws
        .set_state_delay(Duration::from_millis(500))
        .await
        .expect("state delay");
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("reliability-crash-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);

    world.apply_provider(world.function_provider(&nat)).await;
    world
        .apply_provider(isolated_provider("isolated", &isolated, &world.role_arn))
        .await;
    // Every memory size each function was given, in order.
    let mut history: BTreeMap<String, (String, Vec<i32>)> = BTreeMap::new();
    for (name, provider) in [
        ("fn-1", "graviton"),
        ("fn-2", "graviton"),
        ("fn-3", "isolated"),
        ("fn-4", "isolated"),
    ] {
        history.insert(name.into(), (provider.into(), vec![4096]));
        world
            .apply_function(&function(name, provider, 4096, &world.role_arn))
            .await;
    }

    let mut operator = Operator::start(&world, log.clone());
    let mut busy_kills = 0;
    let started = Instant::now();
    for kill in 1..=KILLS {
        let life_starts = world.proxy.log().len();
        // Every life gets work: a function deleted, one added, or one given another memory
        // size. `changed` is the function the work is about.
        let changed = match kill {
            8 => {
                history.remove("fn-2");
                world.delete_function(TEAM, "fn-2").await;
                "fn-2".to_owned()
            }
            12 => {
                history.insert("fn-5".into(), ("isolated".into(), vec![2048]));
                world
                    .apply_function(&function("fn-5", "isolated", 2048, &world.role_arn))
                    .await;
                "fn-5".to_owned()
            }
            _ => {
                let names: Vec<String> = history.keys().cloned().collect();
                let name = names[rng.random_range(0..names.len())].clone();
                let (provider, sizes) = history.get_mut(&name).expect("function");
                let others: Vec<i32> = MEMORY
                    .iter()
                    .copied()
                    .filter(|m| sizes.last() != Some(m))
                    .collect();
                let memory = others[rng.random_range(0..others.len())];
                sizes.push(memory);
                let provider = provider.clone();
                world
                    .apply_function(&function(&name, &provider, memory, &world.role_arn))
                    .await;
                name
            }
        };
        // Most kills land just after the operator started changing AWS for this life (its
        // first mutating call; on a slow machine that wait is longer, not the kill earlier);
        // the rest at a random moment, in a wait or between passes.
        if rng.random_bool(0.7) {
            let acting = eventually(Duration::from_secs(60), || async {
                world.proxy.log()[life_starts..]
                    .iter()
                    .any(|r| !r.is_read_only())
            })
            .await;
            assert!(
                acting,
                "life {kill}: the operator made no change to AWS for a changed spec\n{}",
                tail(&log)
            );
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        }
        // Interrupted: the operator had started changing AWS in this life, and the change
        // it was given was not finished (the function not Ready for its spec, or not gone).
        let mutated = world.proxy.log()[life_starts..]
            .iter()
            .any(|r| !r.is_read_only());
        let unfinished = match world.functions(TEAM).get_opt(&changed).await {
            Ok(Some(sf)) => !history.contains_key(&changed) || !is_ready(&sf),
            _ => false,
        };
        if mutated && unfinished {
            busy_kills += 1;
        }
        let log = operator.kill().await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        operator = Operator::start(&world, log);
    }
    eprintln!(
        "{KILLS} kills in {:?}, {busy_kills} of them interrupted the operator changing AWS",
        started.elapsed()
    );
    assert!(
        busy_kills >= KILLS / 2,
        "only {busy_kills} of {KILLS} kills interrupted work: the test exercised little"
    );

    // The last operator converges everything.
    let live: BTreeSet<String> = history.keys().cloned().collect();
    let converged = eventually(Duration::from_secs(120), || async {
        let mut ok = !matches!(world.functions(TEAM).get_opt("fn-2").await, Ok(Some(_)));
        for name in ["graviton", "isolated"] {
            ok &= matches!(world.providers().get_opt(name).await,
                Ok(Some(cp)) if has_condition(provider_conditions(&cp), "Ready", "True", None));
        }
        for (name, (_, sizes)) in &history {
            ok &= match world.functions(TEAM).get_opt(name).await {
                Ok(Some(sf)) => {
                    is_ready(&sf)
                        && world.aws_function(TEAM, name).await.is_some_and(|f| {
                            f.configuration().and_then(|c| c.memory_size()) == sizes.last().copied()
                        })
                }
                _ => false,
            };
        }
        ok
    })
    .await;
    assert!(
        converged,
        "no convergence after the last restart\n{}",
        tail(&log)
    );

    let inventory = Inventory::read(&world).await;
    let functions: BTreeSet<String> = live
        .iter()
        .map(|n| world.function_aws_name(TEAM, n))
        .collect();
    assert_eq!(
        inventory.functions.keys().cloned().collect::<BTreeSet<_>>(),
        functions
    );
    assert_eq!(inventory.providers.len(), 2, "{inventory:?}");
    for (name, (_, sizes)) in &history {
        let versions = published(&world, &world.function_aws_name(TEAM, name)).await;
        let duplicates = duplicate_configs(&versions);
        assert!(
            duplicates.is_empty(),
            "{name}: a configuration published twice: {duplicates:?} (memory sizes {sizes:?})"
        );
        let distinct: BTreeSet<i32> = sizes.iter().copied().collect();
        assert!(
            versions.len() <= distinct.len(),
            "{name}: {} versions for {} configurations ({sizes:?}): {versions:?}",
            versions.len(),
            distinct.len()
        );
        assert!(
            versions
                .iter()
                .all(|v| v.memory_mib.is_some_and(|m| distinct.contains(&m))),
            "{name}: a version of a configuration never asked for: {versions:?}"
        );
    }
    // One security group per role and one endpoint per telemetry service, whatever the kills.
    let groups = owned_groups(&world).await;
    let roles: Vec<&str> = groups.iter().map(|(_, role, _)| role.as_str()).collect();
    assert_eq!(roles.len(), 2, "owned security groups: {groups:?}");
    assert!(
        roles.contains(&"instances") && roles.contains(&"endpoints"),
        "{groups:?}"
    );
    assert_eq!(inventory.endpoints.len(), 3, "{inventory:?}");
    // Creates AWS answered, over the whole test: at most one per object (a kill may lose the
    // record of one, never add one).
    let calls = world.proxy.log();
    for (operation, most) in [
        ("CreateCapacityProvider", 2),
        ("CreateSecurityGroup", 2),
        ("CreateVpcEndpoint", 3),
        ("CreateFunction", 5),
    ] {
        let n = succeeded(&calls, operation);
        assert!(
            n <= most,
            "{operation} succeeded {n} times, at most {most} expected"
        );
    }
    drop(operator);
}

/// A crash right after the endpoints' security group is created, before HTTPS from the VPC is
/// allowed in: the next operator opens the existing group instead of leaving the endpoints
/// unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_creating_and_opening_the_endpoints_group_is_repaired() {
    let mut world = World::start().await;
    let isolated = isolated_network(&world).await;
    world.proxy.fail_next(
        Some("AuthorizeSecurityGroupIngress"),
        (0..10_000).map(|_| Fault::InternalError),
    );
    world.start_operator();
    world
        .apply_provider(isolated_provider("isolated", &isolated, &world.role_arn))
        .await;
    let attempted = eventually(Duration::from_secs(30), || async {
        world.proxy.calls("ec2", "AuthorizeSecurityGroupIngress") > 0
    })
    .await;
    assert!(attempted, "the endpoints' group was never opened");
    world.kill_operator().await;
    let groups = owned_groups(&world).await;
    assert!(
        groups
            .iter()
            .any(|(_, role, https)| role == "endpoints" && https.is_empty()),
        "the crash left no closed endpoints group: {groups:?}"
    );

    world.proxy.clear_faults();
    world.start_operator();
    world
        .wait_provider("isolated", "Ready", |cp| {
            has_condition(provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    let opened = eventually(Duration::from_secs(20), || async {
        owned_groups(&world).await.iter().any(|(_, role, https)| {
            role == "endpoints" && https == std::slice::from_ref(&isolated.cidr)
        })
    })
    .await;
    assert!(
        opened,
        "the endpoints' group stays closed: {:?}",
        owned_groups(&world).await
    );
    assert_eq!(owned_groups(&world).await.len(), 2, "a group created twice");
    world.stop_operator().await;
}

/// A crash after the logs endpoint was created, before the metrics and traces ones: the logs
/// endpoint gives the subnets egress, but the next operator still completes the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_first_and_the_other_endpoints_is_completed() {
    let mut world = World::start().await;
    let isolated = isolated_network(&world).await;
    world.proxy.let_through(Some("CreateVpcEndpoint"), 1);
    world.proxy.fail_next(
        Some("CreateVpcEndpoint"),
        (0..10_000).map(|_| Fault::InternalError),
    );
    world.start_operator();
    world
        .apply_provider(isolated_provider("isolated", &isolated, &world.role_arn))
        .await;
    let attempted = eventually(Duration::from_secs(30), || async {
        world.proxy.calls("ec2", "CreateVpcEndpoint") > 1
    })
    .await;
    assert!(attempted, "the second endpoint was never attempted");
    world.kill_operator().await;
    assert_eq!(
        Inventory::read(&world).await.endpoints.len(),
        1,
        "the crash should leave the logs endpoint alone"
    );

    world.proxy.clear_faults();
    world.start_operator();
    world
        .wait_provider("isolated", "Ready", |cp| {
            has_condition(provider_conditions(cp), "Ready", "True", None)
        })
        .await;
    let completed = eventually(Duration::from_secs(20), || async {
        Inventory::read(&world).await.endpoints.len() == 3
    })
    .await;
    let inventory = Inventory::read(&world).await;
    assert!(completed, "the endpoints were not completed: {inventory:?}");
    assert_eq!(
        succeeded(&world.proxy.log(), "CreateVpcEndpoint"),
        3,
        "an endpoint created twice"
    );
    world.stop_operator().await;
}

/// A crash after CreateFunction, before the function's ARN reached its status, on a provider in
/// another region than the operator's: the object is then deleted, and the next operator finds
/// the function where it was created (the provider's ARN, recorded before the create, names
/// the region) and deletes it instead of leaving it behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_created_but_never_reported_is_still_deleted_with_its_object() {
    const WEST: &str = "us-west-2";
    let mut world = World::start().await;
    world.create_namespace(TEAM, &[]).await;
    let west = lmi_test_support::sdk_config(world.aws.endpoint())
        .to_builder()
        .region(aws_config::Region::from_static(WEST))
        .build();
    let net = Network::builder()
        .private_subnet("us-west-2a")
        .private_subnet("us-west-2b")
        .build(&aws_sdk_ec2::Client::new(&west))
        .await
        .expect("a network in us-west-2");
    let west_lambda = aws_sdk_lambda::Client::new(&west);
    let mut provider = crate::harness::provider_manifest(
        PROVIDER,
        &net.private_subnet_ids(),
        std::slice::from_ref(&net.security_group_id),
        &world.role_arn,
    );
    provider["spec"]["region"] = WEST.into();
    world.start_operator();
    world.apply_provider(provider).await;
    world
        .wait_provider(PROVIDER, "Ready", |cp| {
            has_condition(provider_conditions(cp), "Ready", "True", None)
        })
        .await;

    // The function is created; everything after it fails, and the operator dies.
    world.proxy.fail_next(
        Some("PublishVersion"),
        (0..10_000).map(|_| Fault::InternalError),
    );
    world.apply_function(&world.function(TEAM, "fn")).await;
    let created = eventually(Duration::from_secs(30), || async {
        succeeded(&world.proxy.log(), "CreateFunction") == 1
    })
    .await;
    assert!(created, "the function was never created");
    world.kill_operator().await;
    let aws_name = world.function_aws_name(TEAM, "fn");
    let exists = |name: String| {
        let lambda = west_lambda.clone();
        async move {
            lambda
                .get_function()
                .function_name(name)
                .send()
                .await
                .is_ok()
        }
    };
    assert!(exists(aws_name.clone()).await, "created in {WEST}");
    let status = world
        .functions(TEAM)
        .get("fn")
        .await
        .expect("the function object")
        .status
        .unwrap_or_default();
    assert_eq!(
        status.function_arn, None,
        "the crash must come before the report"
    );

    // Deleted while no operator runs; the next one cleans up.
    world.delete_function(TEAM, "fn").await;
    world.proxy.clear_faults();
    world.start_operator();
    world.wait_function_gone(TEAM, "fn").await;
    assert!(
        !exists(aws_name.clone()).await,
        "{aws_name} was left behind in {WEST}"
    );
    world.stop_operator().await;
}
