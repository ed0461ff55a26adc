//! `lmi-scale`: the scale benchmark. Runs the real `lmi-operator` binary against a real
//! kube-apiserver and the AWS emulator (through the counting proxy), applies many
//! SimilarityFunctions spread over a few CapacityProviders, and reports the time until all are
//! Ready, the AWS calls per resource to converge and per steady-state resync, and the
//! operator's resident memory and CPU at steady state. `scripts/bench-scale` runs it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use lmi_sandbox::{detail, spawn_operator, step, stop};
use lmi_test_support::kube::{ControlPlane, ControlPlaneOptions};
use lmi_test_support::{AwsEmulator, FaultProxy, Network};
use serde_json::{Value, json};

/// Flags of `lmi-scale`.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The `lmi-operator` binary (build it with `--release` for representative figures).
    #[arg(long)]
    operator: PathBuf,
    /// Number of SimilarityFunctions.
    #[arg(long, default_value_t = 1000)]
    functions: usize,
    /// Number of CapacityProviders they are spread over. AWS allows 100 function versions per
    /// provider and each function here (`versions.retain: 2`) needs 4, so at most 25 fit on one.
    #[arg(long, default_value_t = 40)]
    providers: usize,
    /// Number of namespaces they are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// The operator's resync interval (its default is 5m: at AWS's 15 control-plane calls a
    /// second, a resync of a thousand functions needs about two and a half minutes of calls).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    resync_interval: Duration,
    /// How many resync intervals the steady state is observed for.
    #[arg(long, default_value_t = 2)]
    resyncs: u32,
    /// How long to wait for everything to become Ready.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Where the kubeconfig, the operator log and the stand-in handler zips go.
    #[arg(long, default_value = ".sandbox/scale")]
    state: PathBuf,
}

#[tokio::main]
async fn main() {
    if let Err(error) = run(Args::parse()).await {
        eprintln!("scale benchmark failed: {error:#}");
        std::process::exit(1);
    }
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("lmi.dev", "v1alpha1", kind))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.providers == 0 || args.namespaces == 0 {
        bail!("--providers and --namespaces must be at least 1");
    }
    std::fs::create_dir_all(&args.state)?;
    let handler_dir = args.state.join("handler");
    write_stand_in_handler(&handler_dir)?;

    step("starting the AWS emulator, the counting proxy and the API server");
    let aws = AwsEmulator::start()
        .await
        .context("start the AWS emulator")?;
    let proxy = FaultProxy::start(aws.endpoint())
        .await
        .context("start the proxy")?;
    let plane = ControlPlane::start(ControlPlaneOptions::default())
        .await
        .context("start the control plane (scripts/fetch-tools finds its binaries)")?;
    plane
        .install_crds(Path::new("crds"))
        .await
        .context("install crds/")?;
    let kubeconfig = lmi_sandbox::absolute(&args.state.join("kubeconfig"))?;
    plane.write_kubeconfig(&kubeconfig, plane.admin_token(), None)?;
    let network = Network::good(&aws.ec2())
        .await
        .context("build the network")?;
    let role = aws
        .create_role("lmi-scale")
        .await
        .context("create a role")?;

    step("starting lmi-operator");
    let log_path = args.state.join("operator.log");
    let resync = humantime::format_duration(args.resync_interval).to_string();
    let mut operator = spawn_operator(
        &args.operator,
        &handler_dir,
        lmi_test_support::client_env(proxy.endpoint()),
        &kubeconfig,
        &log_path,
        &["--resync-interval", &resync, "--pending-interval", "2s"],
    )?;
    let pid = operator.id().context("the operator has no pid")?;

    let client = plane.admin_client().await?;
    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|i| format!("team-{i:02}"))
        .collect();
    step(&format!(
        "applying {} providers and {} functions in {} namespaces",
        args.providers, args.functions, args.namespaces
    ));
    let started = Instant::now();
    let apply = PatchParams::apply("lmi-scale").force();
    for namespace in &namespaces {
        Api::<Namespace>::all(client.clone())
            .patch(
                namespace,
                &apply,
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": namespace}})),
            )
            .await
            .with_context(|| format!("create namespace {namespace}"))?;
    }
    let providers = Api::<DynamicObject>::all_with(client.clone(), &resource("CapacityProvider"));
    let subnets: Vec<String> = network.private_subnet_ids();
    for p in 0..args.providers {
        let name = format!("pool-{p}");
        let manifest = json!({
            "apiVersion": "lmi.dev/v1alpha1", "kind": "CapacityProvider",
            "metadata": {"name": name},
            "spec": {
                "vpc": {"subnetIds": subnets, "securityGroupIds": [network.security_group_id]},
                "operatorRoleArn": role,
                "instances": {"architecture": if p % 2 == 0 { "x86_64" } else { "arm64" }},
                "scaling": {"mode": "Auto", "maxVCpuCount": 1000},
                "tenants": [{
                    "name": "scale",
                    "namespaces": {"names": namespaces},
                    "executionRoleArns": [role],
                    "catalogSources": ["s3://catalogs/"],
                }],
            }
        });
        providers
            .patch(&name, &apply, &Patch::Apply(manifest))
            .await
            .with_context(|| format!("apply provider {name}"))?;
    }
    let function_resource = resource("SimilarityFunction");
    for f in 0..args.functions {
        let name = format!("search-{f:04}");
        let namespace = &namespaces[f % namespaces.len()];
        let manifest = json!({
            "apiVersion": "lmi.dev/v1alpha1", "kind": "SimilarityFunction",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "capacityProviderRef": {"name": format!("pool-{}", f % args.providers)},
                "roleArn": role,
                "memoryMiB": 2048,
                "memoryGiBPerVCpu": 2,
                "scaling": {"minExecutionEnvironments": 1, "maxExecutionEnvironments": 2},
                "catalog": {"uri": format!("s3://catalogs/{namespace}/{name}.parquet"),
                            "dimensions": 256},
                "versions": {"retain": 2},
            }
        });
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &function_resource)
            .patch(&name, &apply, &Patch::Apply(manifest))
            .await
            .with_context(|| format!("apply function {namespace}/{name}"))?;
    }
    let applied = started.elapsed();
    detail(&format!("applied in {:.1}s", applied.as_secs_f64()));

    step("waiting until everything is Ready");
    let functions = Api::<DynamicObject>::all_with(client.clone(), &function_resource);
    let objects = args.providers + args.functions;
    loop {
        let ready = count_ready(&providers).await? + count_ready(&functions).await?;
        if ready == objects {
            break;
        }
        if started.elapsed() > args.timeout {
            stop(&mut operator).await;
            bail!(
                "only {ready} of {objects} Ready after {:?}; see {}",
                args.timeout,
                log_path.display()
            );
        }
        if let Ok(Some(status)) = operator.try_wait() {
            bail!("the operator exited ({status}); see {}", log_path.display());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let converge_time = started.elapsed();
    let converge_log = proxy.log();
    let converge_mutating = converge_log.iter().filter(|r| !r.is_read_only()).count();
    let throttled = converge_log
        .iter()
        .filter(|r| r.outcome == lmi_test_support::Outcome::Forwarded(429))
        .count();
    let floor = rate_floor(&converge_log);
    detail(&format!(
        "all {objects} Ready in {:.1}s ({} AWS calls, {} mutating)",
        converge_time.as_secs_f64(),
        converge_log.len(),
        converge_mutating
    ));

    // Let the last status writes and requeues settle, then watch whole resync periods.
    tokio::time::sleep(Duration::from_secs(5)).await;
    step(&format!(
        "observing the steady state for {} resync intervals of {resync}",
        args.resyncs
    ));
    proxy.clear_log();
    let window = args.resync_interval * args.resyncs;
    let cpu_start = cpu_seconds(pid)?;
    let window_start = Instant::now();
    let mut peak_rss = 0u64;
    let mut rss_samples = Vec::new();
    while window_start.elapsed() < window {
        let rss = rss_bytes(pid)?;
        peak_rss = peak_rss.max(rss);
        rss_samples.push(rss);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let cpu = cpu_seconds(pid)? - cpu_start;
    let elapsed = window_start.elapsed().as_secs_f64();
    let steady = proxy.log();
    let steady_mutating: Vec<String> = steady
        .iter()
        .filter(|r| !r.is_read_only())
        .map(|r| r.operation.clone())
        .collect();
    let still_ready = count_ready(&providers).await? + count_ready(&functions).await?;
    stop(&mut operator).await;

    rss_samples.sort_unstable();
    let median_rss = rss_samples.get(rss_samples.len() / 2).copied().unwrap_or(0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let resyncs_seen = elapsed / args.resync_interval.as_secs_f64();
    let report = json!({
        "providers": args.providers,
        "functions": args.functions,
        "seconds_to_all_ready": converge_time.as_secs_f64(),
        "aws_calls_to_converge": converge_log.len(),
        "aws_calls_to_converge_per_resource": converge_log.len() as f64 / objects as f64,
        "mutating_calls_to_converge": converge_mutating,
        "rate_floor_seconds": floor,
        "converge_time_over_rate_floor": converge_time.as_secs_f64() / floor,
        "throttled_calls": throttled,
        "steady_state_seconds": elapsed,
        "steady_state_aws_calls": steady.len(),
        "steady_state_reads_per_resource_per_resync":
            steady.len() as f64 / objects as f64 / resyncs_seen,
        "steady_state_mutating_calls": steady_mutating.len(),
        "operator_rss_mib_median": mib(median_rss),
        "operator_rss_mib_peak": mib(peak_rss),
        "operator_cpu_percent_of_one_core": 100.0 * cpu / elapsed,
        "still_ready_at_end": still_ready,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| time until {} functions on {} providers are Ready | {:.0} s |",
        args.functions,
        args.providers,
        converge_time.as_secs_f64()
    );
    println!(
        "| the floor AWS's request rates impose on those calls (operator's rates: 90% of AWS's) | {floor:.0} s (ratio {:.2}) |",
        converge_time.as_secs_f64() / floor
    );
    println!(
        "| AWS calls per resource to converge | {:.1} (throttled: {throttled}) |",
        converge_log.len() as f64 / objects as f64
    );
    println!(
        "| AWS calls per resource per steady-state resync | {:.2} (mutating: {}) |",
        steady.len() as f64 / objects as f64 / resyncs_seen,
        steady_mutating.len()
    );
    println!(
        "| operator resident memory at steady state | {:.0} MiB (peak {:.0} MiB) |",
        mib(median_rss),
        mib(peak_rss)
    );
    println!(
        "| operator CPU at steady state | {:.1}% of one core |",
        100.0 * cpu / elapsed
    );
    if !steady_mutating.is_empty() {
        bail!("the steady state made mutating AWS calls: {steady_mutating:?}");
    }
    if still_ready != objects {
        bail!("only {still_ready} of {objects} were still Ready at the end");
    }
    Ok(())
}

/// The shortest time the Lambda calls in `log` can take at the operator's default request
/// rates (`lmi_operator::aws::rate`): the slowest bucket decides.
fn rate_floor(log: &[lmi_test_support::OperationRecord]) -> f64 {
    let rates = lmi_operator::aws::rate::AwsRates::default();
    let (mut reads, mut writes, mut control, mut get) = (0.0, 0.0, 0.0, 0.0);
    for r in log.iter().filter(|r| r.service == "lambda") {
        match r.operation.as_str() {
            "GetCapacityProvider"
            | "ListCapacityProviders"
            | "ListFunctionVersionsByCapacityProvider" => reads += 1.0,
            "CreateCapacityProvider" | "UpdateCapacityProvider" | "DeleteCapacityProvider" => {
                writes += 1.0
            }
            "GetFunction" => get += 1.0,
            _ => control += 1.0,
        }
    }
    [
        reads / rates.capacity_provider_reads,
        writes / rates.capacity_provider_writes,
        control / rates.control_plane,
        get / rates.get_function,
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

/// How many objects of `api` are Ready for their current generation.
async fn count_ready(api: &Api<DynamicObject>) -> anyhow::Result<usize> {
    let list = api
        .list(&ListParams::default())
        .await
        .context("list objects")?;
    Ok(list
        .items
        .iter()
        .filter(|o| {
            let status = o.data.get("status").cloned().unwrap_or(Value::Null);
            status["observedGeneration"].as_i64() == o.metadata.generation
                && status["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .count())
}

/// A tiny `bootstrap` zip for both architectures: the benchmark measures the operator, and
/// moto keeps every uploaded package in memory.
fn write_stand_in_handler(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for arch in ["x86_64", "arm64"] {
        let path = dir.join(format!("bootstrap-{arch}.zip"));
        let file = std::fs::File::create(&path)?;
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755);
        zip.start_file("bootstrap", options)?;
        std::io::Write::write_all(&mut zip, b"#!/bin/sh\necho stand-in\n")?;
        zip.finish()?;
    }
    Ok(())
}

/// Resident set size of a process.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("read the operator's /proc status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .context("no VmRSS in /proc status")
}

/// User + system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .context("read the operator's /proc stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("no utime/stime in /proc stat")?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}
