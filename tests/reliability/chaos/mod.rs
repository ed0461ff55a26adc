//! Chaos: 200 random operations — providers and functions applied, changed (fields the schema
//! lets change) and deleted, and AWS changed behind the operator's back (function scaling,
//! memory and code, a function deleted, provider scaling) — while the fault proxy throttles 10%
//! of AWS calls, fails 5% with a 5xx and delays them all, and the API server is slow, drops
//! watches, answers 409 and 500 now and then, and restarts once in a while. Operations follow each other quickly, never waiting for
//! Ready. Then, faults off: every resource converges to its spec (Ready, and AWS holding what the
//! spec asks), a resync changes nothing, and deleting everything leaves nothing the operator
//! created in AWS.
//!
//! Throughout, a neighbour shares the AWS account: another installation of the operator (its
//! own cluster, the same `--cluster-name`) with a provider and a function of its own. Neither
//! operator may touch the other's resources: the neighbour's stay byte for byte as they were and
//! its operator makes no mutating call, and deleting everything in the chaos world leaves them.
//!
//! The operations come from a seeded generator; the seed is printed (shown when the test
//! fails) and `LMI_CHAOS_SEED=<seed>` replays the same sequence. The operator's timing differs
//! from run to run, so a replay makes the same moves, not the same interleaving.

mod checks;
mod model;

use std::time::{Duration, Instant};

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{CapacityProviderScalingConfig, FunctionScalingConfig};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Resource};
use lmi_operator::api::{CapacityProvider, SimilarityFunction};
use lmi_operator::identity;
use lmi_test_support::kube::{ApiFault as Fault, Method};
use lmi_test_support::{FaultPlan, Network, Outcome};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use self::model::{FunctionSpec, Model, Networking, Networks, ProviderSpec};
use crate::harness::functions::{TEAM, handler_zip};
use crate::harness::{CLUSTER, World};
use crate::inventory::{Inventory, succeeded};

const OPERATIONS: usize = 200;
const MAX_PROVIDERS: usize = 3;
const MAX_FUNCTIONS: usize = 8;
/// How long the world may take to converge once the faults stop.
const SETTLE: Duration = Duration::from_secs(150);

/// One random move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    NewProvider,
    NewFunction,
    ChangeProvider,
    ChangeFunction,
    DeleteFunction,
    /// Deletes a provider and, right after, the functions on it (the provider waits for them).
    DeleteProvider,
    /// Out of band: the serving version's scaling.
    TamperScaling,
    /// Out of band: `$LATEST`'s memory.
    TamperMemory,
    /// Out of band: `$LATEST`'s code.
    TamperCode,
    /// Out of band: the whole function.
    DeleteInAws,
    /// Out of band: the provider's max vCPUs.
    TamperProvider,
    DropWatches,
    /// The next status writes fail with 409.
    StatusConflicts,
    /// The next requests (any) fail with 500.
    ServerErrors,
    /// The next PATCH fails with 409.
    PatchConflict,
    /// The API server goes away for a moment (connections and watches drop, then it serves
    /// again with everything kept).
    RestartApiServer,
}

const WEIGHTS: &[(Op, u32)] = &[
    (Op::NewProvider, 5),
    (Op::NewFunction, 12),
    (Op::ChangeProvider, 8),
    (Op::ChangeFunction, 22),
    (Op::DeleteFunction, 4),
    (Op::DeleteProvider, 1),
    (Op::TamperScaling, 6),
    (Op::TamperMemory, 6),
    (Op::TamperCode, 5),
    (Op::DeleteInAws, 3),
    (Op::TamperProvider, 5),
    (Op::DropWatches, 4),
    (Op::StatusConflicts, 4),
    (Op::ServerErrors, 3),
    (Op::PatchConflict, 3),
    (Op::RestartApiServer, 1),
];

struct Chaos {
    world: World,
    nets: Networks,
    model: Model,
    rng: StdRng,
    seed: u64,
    done: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_random_operations_under_faults_converge_and_leave_nothing_behind() {
    let seed = std::env::var("LMI_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("chaos seed {seed} (replay with LMI_CHAOS_SEED={seed})");
    let (mut world, nat) = World::for_functions().await;
    let isolated = Network::builder()
        .isolated_subnet("us-east-1a")
        .isolated_subnet("us-east-1b")
        .cidr("10.7.0.0/16")
        .build(&world.ec2)
        .await
        .expect("isolated network");
    // Providers and versions stay Pending a moment, as in AWS.
    world
        .aws
        .set_state_delay(Duration::from_millis(300))
        .await
        .expect("state delay");
    world.proxy.set_plan(
        FaultPlan::seeded(seed)
            .throttle(0.10)
            .internal_error(0.05)
            .latency(Duration::from_millis(15)),
    );
    world.api.set_latency(Duration::from_millis(3));
    let neighbour = Neighbour::start(&world, &nat).await;
    world.start_operator();
    let mut chaos = Chaos {
        world,
        nets: Networks { nat, isolated },
        model: Model::default(),
        rng: StdRng::seed_from_u64(seed),
        seed,
        done: Vec::new(),
    };

    let started = Instant::now();
    for _ in 0..OPERATIONS {
        let op = chaos.pick();
        let what = chaos.run(op).await;
        chaos.done.push(what);
        let pause = chaos.rng.random_range(20..200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    eprintln!(
        "{OPERATIONS} operations in {:?}: {} providers and {} functions live, {} and {} deleted",
        started.elapsed(),
        chaos.model.providers.len(),
        chaos.model.functions.len(),
        chaos.model.deleted_providers.len(),
        chaos.model.deleted_functions.len()
    );

    let log = chaos.world.proxy.log();
    let injected = log
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Injected(_)))
        .count();
    let tampered = chaos
        .done
        .iter()
        .filter(|line| line.starts_with("tamper") || line.contains(" in AWS: "))
        .count();
    let tampered_ok = chaos.done.iter().filter(|l| l.ends_with(": ok")).count();
    eprintln!(
        "AWS calls by the operator: {} ({injected} answered with an injected fault), {} versions \
         published; {tampered_ok} of {tampered} out-of-band changes hit an existing resource",
        log.len(),
        succeeded(&log, "PublishVersion")
    );

    // The run exercised what it claims: AWS faults answered a share of the calls near the
    // plan's 15%, the API server's injected errors fired, and out-of-band changes landed.
    chaos.check(
        injected * 20 >= log.len() && injected > 0,
        format!(
            "only {injected} of {} AWS calls got an injected fault",
            log.len()
        ),
    );
    let api_faults = chaos.world.api.faults_fired();
    let api_ops = chaos
        .done
        .iter()
        .filter(|l| l.starts_with("API server: 409") || l.starts_with("API server: 500"))
        .count();
    chaos.check(
        api_ops == 0 || api_faults > 0,
        format!("{api_ops} API server fault operations, none fired"),
    );
    chaos.check(
        tampered < 3 || tampered_ok > 0,
        format!("none of {tampered} out-of-band changes hit an existing resource"),
    );
    eprintln!("{api_faults} API server requests answered with an injected fault");

    // Faults off: everything converges to its spec.
    chaos.world.proxy.clear_faults();
    chaos.world.api.clear_faults();
    let settling = Instant::now();
    chaos.settle("converge to the spec").await;
    eprintln!(
        "converged {:?} after the faults stopped",
        settling.elapsed()
    );

    // A converged world needs no change: a few resyncs make no mutating call.
    tokio::time::sleep(Duration::from_secs(1)).await;
    chaos.world.proxy.clear_log();
    chaos
        .world
        .quiet_window(chaos.world.config.resync_interval * 2 + Duration::from_secs(1))
        .await;
    let mutating = chaos.world.operator_calls(true);
    chaos.check(
        mutating.is_empty(),
        format!("resyncs of the converged world made mutating calls: {mutating:?}"),
    );

    // Delete everything (functions first, providers right after, no waiting in between).
    let functions: Vec<String> = chaos.model.functions.keys().cloned().collect();
    for name in functions {
        chaos.delete_function(&name).await;
    }
    let providers: Vec<String> = chaos.model.providers.keys().cloned().collect();
    for name in providers {
        chaos.delete_provider(&name).await;
    }
    chaos.settle("delete everything").await;
    let inventory = Inventory::read(&chaos.world).await;
    chaos.check(
        inventory.is_empty(),
        format!("AWS still holds what the operator created: {inventory:#?}"),
    );
    neighbour.check_untouched(&chaos).await;
    chaos.world.stop_operator().await;
}

/// Another installation on the same account: a provider and a function Ready before the chaos.
struct Neighbour {
    world: World,
    function: String,
    snapshot: crate::harness::tenants::FunctionSnapshot,
    provider: String,
}

impl Neighbour {
    async fn start(world: &World, nat: &Network) -> Neighbour {
        let mut neighbour = world.another_installation("neighbour").await;
        neighbour.create_namespace(TEAM, &[]).await;
        neighbour.start_operator();
        neighbour.ready_provider(nat).await;
        neighbour
            .apply_function(&neighbour.function(TEAM, "neighbour"))
            .await;
        neighbour.wait_function_ready(TEAM, "neighbour").await;
        let function = neighbour.function_aws_name(TEAM, "neighbour");
        let snapshot = neighbour.lambda_snapshot().await[&function].clone();
        neighbour.proxy.clear_log();
        Neighbour {
            provider: identity::capacity_provider_name(
                CLUSTER,
                crate::harness::functions::PROVIDER,
            ),
            world: neighbour,
            function,
            snapshot,
        }
    }

    /// The neighbour's resources are as they were, still Ready, and its operator never had to
    /// change anything (it would, had the chaos operator touched them).
    async fn check_untouched(&self, chaos: &Chaos) {
        let now = self.world.lambda_snapshot().await;
        chaos.check(
            now.get(&self.function) == Some(&self.snapshot),
            format!(
                "the neighbour's function changed: {:#?} then {:#?}",
                self.snapshot,
                now.get(&self.function)
            ),
        );
        chaos.check(
            self.world
                .aws_provider_names()
                .await
                .contains(&self.provider),
            format!("the neighbour's provider {} is gone", self.provider),
        );
        let mutating = self.world.operator_calls(true);
        chaos.check(
            mutating.is_empty(),
            format!("the neighbour's operator had to change AWS: {mutating:?}"),
        );
        let ready = self
            .world
            .functions(TEAM)
            .get("neighbour")
            .await
            .is_ok_and(|sf| crate::harness::functions::is_ready(&sf));
        chaos.check(ready, "the neighbour's function is no longer Ready".into());
    }
}

/// `ok`, or the AWS error code of a failed out-of-band call.
fn outcome<T, E: ProvideErrorMetadata>(result: Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {}", e.code().unwrap_or("no error code")),
    }
}

impl Chaos {
    /// Fails with the seed and the last operations.
    fn check(&self, ok: bool, message: String) {
        if !ok {
            let tail = self.done.len().saturating_sub(40);
            panic!(
                "{message}\nseed {} (LMI_CHAOS_SEED={0}); last operations:\n  {}",
                self.seed,
                self.done[tail..].join("\n  ")
            );
        }
    }

    /// Waits until [`checks::converged`] holds, failing after [`SETTLE`] with what is wrong.
    async fn settle(&self, what: &str) {
        let start = Instant::now();
        let mut last;
        loop {
            last = checks::converged(&self.world, &self.model).await;
            if last.is_ok() || start.elapsed() > SETTLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Err(wrong) = last {
            self.check(false, format!("did not {what} within {SETTLE:?}: {wrong}"));
        }
    }

    /// A random operation among those that apply now.
    fn pick(&mut self) -> Op {
        let providers = self.model.providers.len();
        let functions = self.model.functions.len();
        let possible: Vec<(Op, u32)> = WEIGHTS
            .iter()
            .copied()
            .filter(|(op, _)| match op {
                Op::NewProvider => providers < MAX_PROVIDERS,
                Op::NewFunction => providers > 0 && functions < MAX_FUNCTIONS,
                Op::ChangeProvider | Op::DeleteProvider | Op::TamperProvider => providers > 0,
                Op::ChangeFunction
                | Op::DeleteFunction
                | Op::TamperScaling
                | Op::TamperMemory
                | Op::TamperCode
                | Op::DeleteInAws => functions > 0,
                Op::DropWatches
                | Op::StatusConflicts
                | Op::ServerErrors
                | Op::PatchConflict
                | Op::RestartApiServer => true,
            })
            .collect();
        let total: u32 = possible.iter().map(|(_, w)| w).sum();
        let mut draw = self.rng.random_range(0..total);
        for (op, weight) in possible {
            if draw < weight {
                return op;
            }
            draw -= weight;
        }
        unreachable!("the draw is below the total weight")
    }

    fn any_provider(&mut self) -> String {
        let names: Vec<&String> = self.model.providers.keys().collect();
        names[self.rng.random_range(0..names.len())].clone()
    }

    fn any_function(&mut self) -> String {
        let names: Vec<&String> = self.model.functions.keys().collect();
        names[self.rng.random_range(0..names.len())].clone()
    }

    fn pick_from<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.rng.random_range(0..choices.len())]
    }

    /// Runs `op`; returns a line saying what it did.
    async fn run(&mut self, op: Op) -> String {
        match op {
            Op::NewProvider => {
                let name = self.model.fresh_name("cp");
                let spec = ProviderSpec {
                    networking: self.pick_from(&[
                        Networking::GivenGroup,
                        Networking::ManagedGroup,
                        Networking::Endpoints,
                    ]),
                    max_vcpu: self.pick_from(&[16, 32, 64, 128]),
                    tag: format!("t{}", self.rng.random_range(0..1000)),
                };
                let line = format!("new provider {name} {spec:?}");
                self.model.providers.insert(name.clone(), spec);
                self.apply_provider(&name).await;
                line
            }
            Op::NewFunction => {
                let name = self.model.fresh_name("fn");
                let spec = FunctionSpec {
                    provider: self.any_provider(),
                    memory_mib: self.pick_from(&[2048, 4096, 6144, 8192]),
                    concurrency: self.pick_from(&[8, 16, 32, 64]),
                    min: self.pick_from(&[0, 1, 2]),
                    max: self.pick_from(&[2, 4, 8]),
                    retain: self.pick_from(&[1, 2, 3]),
                    revision: "r0".into(),
                };
                let line = format!("new function {name} {spec:?}");
                self.model.functions.insert(name.clone(), spec);
                self.apply_function(&name).await;
                line
            }
            Op::ChangeProvider => {
                let name = self.any_provider();
                let max_vcpu = self.pick_from(&[16, 32, 64, 128]);
                let tag = format!("t{}", self.rng.random_range(0..1000));
                if let Some(spec) = self.model.providers.get_mut(&name) {
                    spec.max_vcpu = max_vcpu;
                    spec.tag = tag.clone();
                }
                self.apply_provider(&name).await;
                format!("change provider {name}: maxVCpuCount {max_vcpu}, tag {tag}")
            }
            Op::ChangeFunction => {
                let name = self.any_function();
                let field = self.rng.random_range(0..5);
                let memory = self.pick_from(&[2048, 4096, 6144, 8192]);
                let concurrency = self.pick_from(&[8, 16, 32, 64]);
                let (min, max) = (self.pick_from(&[0, 1, 2]), self.pick_from(&[2, 4, 8]));
                let retain = self.pick_from(&[1, 2, 3]);
                let revision = format!("r{}", self.rng.random_range(0..1000));
                let spec = self.model.functions.get_mut(&name).expect("live function");
                let line = match field {
                    0 => {
                        spec.memory_mib = memory;
                        format!("change function {name}: memory {memory}")
                    }
                    1 => {
                        spec.concurrency = concurrency;
                        format!("change function {name}: concurrency {concurrency}")
                    }
                    2 => {
                        (spec.min, spec.max) = (min, max);
                        format!("change function {name}: scaling {min}..{max}")
                    }
                    3 => {
                        spec.retain = retain;
                        format!("change function {name}: retain {retain}")
                    }
                    _ => {
                        spec.revision = revision.clone();
                        format!("change function {name}: environment {revision}")
                    }
                };
                self.apply_function(&name).await;
                line
            }
            Op::DeleteFunction => {
                let name = self.any_function();
                self.delete_function(&name).await;
                format!("delete function {name}")
            }
            Op::DeleteProvider => {
                let name = self.any_provider();
                self.delete_provider(&name).await;
                let on_it = self.model.functions_on(&name);
                for function in &on_it {
                    self.delete_function(function).await;
                }
                format!("delete provider {name} and its functions {on_it:?}")
            }
            Op::TamperScaling => {
                let name = self.any_function();
                let Some(version) = self.serving_version(&name).await else {
                    return format!("tamper scaling of {name}: no version yet");
                };
                let result = self
                    .world
                    .lambda
                    .put_function_scaling_config()
                    .function_name(self.world.function_aws_name(TEAM, &name))
                    .qualifier(&version)
                    .function_scaling_config(
                        FunctionScalingConfig::builder()
                            .min_execution_environments(0)
                            .max_execution_environments(40)
                            .build(),
                    )
                    .send()
                    .await;
                format!("tamper scaling of {name} v{version}: {}", outcome(result))
            }
            Op::TamperMemory => {
                let name = self.any_function();
                let result = self
                    .world
                    .lambda
                    .update_function_configuration()
                    .function_name(self.world.function_aws_name(TEAM, &name))
                    .memory_size(10240)
                    .send()
                    .await;
                format!("tamper memory of {name}: {}", outcome(result))
            }
            Op::TamperCode => {
                let name = self.any_function();
                let marker = format!("tampered {}", self.done.len());
                let result = self
                    .world
                    .lambda
                    .update_function_code()
                    .function_name(self.world.function_aws_name(TEAM, &name))
                    .zip_file(Blob::new(handler_zip(&marker)))
                    .send()
                    .await;
                format!("tamper code of {name}: {}", outcome(result))
            }
            Op::DeleteInAws => {
                let name = self.any_function();
                let result = self
                    .world
                    .lambda
                    .delete_function()
                    .function_name(self.world.function_aws_name(TEAM, &name))
                    .send()
                    .await;
                format!("delete {name} in AWS: {}", outcome(result))
            }
            Op::TamperProvider => {
                let name = self.any_provider();
                let result = self
                    .world
                    .lambda
                    .update_capacity_provider()
                    .capacity_provider_name(identity::capacity_provider_name(CLUSTER, &name))
                    .capacity_provider_scaling_config(
                        CapacityProviderScalingConfig::builder()
                            .max_v_cpu_count(1000)
                            .build(),
                    )
                    .send()
                    .await;
                format!("tamper max vCPUs of {name}: {}", outcome(result))
            }
            Op::DropWatches => {
                self.world.api.drop_watches();
                "API server: drop watches".into()
            }
            Op::StatusConflicts => {
                self.world
                    .api
                    .inject(Fault::status(409).times(3).path_contains("/status"));
                "API server: 409 on the next 3 status writes".into()
            }
            Op::ServerErrors => {
                self.world.api.inject(Fault::status(500).times(2));
                "API server: 500 on the next 2 requests".into()
            }
            Op::PatchConflict => {
                self.world
                    .api
                    .inject(Fault::status(409).times(1).method(Method::PATCH));
                "API server: 409 on the next PATCH".into()
            }
            Op::RestartApiServer => {
                self.world.api.restart(Duration::from_millis(200)).await;
                "API server: gone for 200 ms".into()
            }
        }
    }

    /// The version the function's status says serves it.
    async fn serving_version(&self, name: &str) -> Option<String> {
        let sf = self.world.functions(TEAM).get_opt(name).await.ok()??;
        sf.status?.version
    }

    async fn apply_provider(&self, name: &str) {
        let spec = &self.model.providers[name];
        let manifest = model::provider_manifest(name, spec, &self.nets, &self.world.role_arn);
        self.apply::<CapacityProvider>(&manifest).await;
    }

    async fn apply_function(&self, name: &str) {
        let spec = &self.model.functions[name];
        let manifest = model::function_manifest(name, spec, &self.world.role_arn);
        self.apply::<SimilarityFunction>(&manifest).await;
    }

    async fn delete_provider(&mut self, name: &str) {
        self.model.providers.remove(name);
        self.model.deleted_providers.insert(name.to_owned());
        let api = self.world.providers();
        self.delete(&api, name).await;
    }

    async fn delete_function(&mut self, name: &str) {
        self.model.functions.remove(name);
        self.model.deleted_functions.insert(name.to_owned());
        let api = self.world.functions(TEAM);
        self.delete(&api, name).await;
    }

    /// Server-side apply as the user; the API server's injected faults are retried, as a user
    /// (or Argo CD) would.
    async fn apply<K: Resource<DynamicType = ()>>(&self, manifest: &Value) {
        let name = manifest["metadata"]["name"].as_str().expect("name");
        let resource = ApiResource::erase::<K>(&());
        let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.world.kube.clone(), ns, &resource),
            None => Api::all_with(self.world.kube.clone(), &resource),
        };
        let params = PatchParams::apply("e2e-user").force();
        let mut attempts = 0;
        while let Err(e) = api.patch(name, &params, &Patch::Apply(manifest)).await {
            attempts += 1;
            self.check(attempts < 20, format!("apply {name} keeps failing: {e}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delete<K>(&self, api: &Api<K>, name: &str)
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let mut attempts = 0;
        loop {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => return,
                Err(kube::Error::Api(status)) if status.code == 404 => return,
                Err(e) => {
                    attempts += 1;
                    self.check(attempts < 20, format!("delete {name} keeps failing: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
