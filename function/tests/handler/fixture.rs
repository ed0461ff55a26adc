//! Fixtures: a random catalog written as Parquet, a brute-force reference search, and the
//! handler package run by AWS's Lambda Runtime Interface Emulator in Managed Instances mode.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use lmi_test_support::lambda::{Arch, EnvironmentOptions, ExecutionEnvironment};
use parquet::arrow::ArrowWriter;
use serde_json::Value;

/// The model id the functions are configured with.
pub const MODEL: &str = "amazon.nova-2-multimodal-embeddings-v1:0";
/// The catalog dimension (one Nova produces).
pub const DIM: usize = 256;

/// splitmix64: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.uniform()).collect()
    }
}

/// One catalog product.
#[derive(Clone, Debug)]
pub struct Product {
    pub id: String,
    pub category: String,
    pub vector: Vec<f32>,
    pub name: String,
    pub price: f64,
}

pub const CATEGORIES: [&str; 4] = ["bags", "hats", "shoes", "socks"];

/// `n` random products of dimension `dim`.
pub fn products(seed: u64, n: usize, dim: usize) -> Vec<Product> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| Product {
            id: format!("sku-{i:05}"),
            category: CATEGORIES[rng.below(CATEGORIES.len())].to_owned(),
            vector: rng.vector(dim),
            name: format!("product {i}"),
            price: (i % 97) as f64 + 0.5,
        })
        .collect()
}

/// The catalog as Parquet bytes: id, category, embedding (fixed-size list), name, price.
pub fn parquet(products: &[Product], dim: usize) -> Vec<u8> {
    let ids = StringArray::from_iter_values(products.iter().map(|p| p.id.as_str()));
    let cats = StringArray::from_iter_values(products.iter().map(|p| p.category.as_str()));
    let mut emb = FixedSizeListBuilder::new(Float32Builder::new(), dim as i32);
    for p in products {
        emb.values().append_slice(&p.vector);
        emb.append(true);
    }
    let names = StringArray::from_iter_values(products.iter().map(|p| p.name.as_str()));
    let prices = Float64Array::from_iter_values(products.iter().map(|p| p.price));
    let batch = RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(ids) as ArrayRef),
        ("category", std::sync::Arc::new(cats) as ArrayRef),
        ("embedding", std::sync::Arc::new(emb.finish()) as ArrayRef),
        ("name", std::sync::Arc::new(names) as ArrayRef),
        ("price", std::sync::Arc::new(prices) as ArrayRef),
    ])
    .expect("batch");
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory the function can read: Lambda runs the runtime as an unprivileged user
/// (the emulator too, uid 993 here), so test files live under the system's temporary directory,
/// not under the target directory in root's home. Each test process owns `<pid>-*` entries;
/// those of processes that are gone are removed on first use.
pub fn temp_dir(name: &str) -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join("lmi-handler-tests");
        std::fs::create_dir_all(&root).expect("temp root");
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or_default();
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        root
    });
    let dir = root.join(format!(
        "{}-{name}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes the catalog to a fresh directory and returns its path.
pub fn catalog_file(products: &[Product], dim: usize) -> PathBuf {
    let path = temp_dir("catalog").join("catalog.parquet");
    std::fs::write(&path, parquet(products, dim)).expect("write catalog");
    path
}

fn unit(v: &[f32]) -> Vec<f64> {
    let n = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|&x| f64::from(x) / n).collect()
}

/// Exact top-k by cosine in f64: (id, score), best first.
pub fn brute_force(
    products: &[Product],
    query: &[f32],
    k: usize,
    categories: &[&str],
    min_score: Option<f64>,
    excluded: &[&str],
) -> Vec<(String, f64)> {
    let q = unit(query);
    let mut scored: Vec<(String, f64)> = products
        .iter()
        .filter(|p| categories.is_empty() || categories.contains(&p.category.as_str()))
        .filter(|p| !excluded.contains(&p.id.as_str()))
        .map(|p| {
            let s = unit(&p.vector).iter().zip(&q).map(|(a, b)| a * b).sum();
            (p.id.clone(), s)
        })
        .filter(|(_, s)| min_score.is_none_or(|m| *s >= m))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

/// Asserts a response's results equal the reference (same ids in order, scores within 1e-4).
pub fn assert_results(response: &Value, expected: &[(String, f64)]) {
    let results = response["results"].as_array().expect("results array");
    let got: Vec<(&str, f64)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id"),
                r["score"].as_f64().expect("score"),
            )
        })
        .collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        expected.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        "ranked ids differ from brute force"
    );
    for ((_, s), (_, e)) in got.iter().zip(expected) {
        assert!((s - e).abs() < 1e-4, "score {s} vs brute force {e}");
    }
}

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The function's answer.
    Response(Value),
    /// A function error (or the runtime's): `errorType` and the whole body.
    Error {
        /// `errorType`.
        header: String,
        /// `{"errorType", "errorMessage", ...}`.
        body: Value,
    },
}

impl Outcome {
    /// The response body, or a panic naming the error.
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            Outcome::Error { body, .. } => panic!("function error: {body}"),
        }
    }
}

/// The handler package that runs: the `bootstrap-x86_64.zip` `scripts/build-handler` made
/// (`LMI_HANDLER_DIST`, as CI sets it), else this test build's `bootstrap` packaged the same way
/// (`bootstrap` at the root, mode 755).
pub fn package() -> PathBuf {
    static PACKAGE: OnceLock<PathBuf> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            if let Some(dist) = std::env::var_os("LMI_HANDLER_DIST") {
                let zip = PathBuf::from(dist).join("bootstrap-x86_64.zip");
                assert!(zip.is_file(), "LMI_HANDLER_DIST names no {}", zip.display());
                return zip;
            }
            assert!(
                std::env::var_os("LMI_REQUIRE_HANDLER_ZIPS").is_none(),
                "LMI_REQUIRE_HANDLER_ZIPS is set but LMI_HANDLER_DIST is not"
            );
            let zip = temp_dir("package").join("bootstrap-x86_64.zip");
            let binary = std::fs::read(env!("CARGO_BIN_EXE_bootstrap")).expect("read bootstrap");
            let mut writer = zip::ZipWriter::new(std::fs::File::create(&zip).expect("zip file"));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(0o755);
            writer.start_file("bootstrap", options).expect("zip entry");
            std::io::Write::write_all(&mut writer, &binary).expect("zip write");
            writer.finish().expect("zip finish");
            zip
        })
        .clone()
}

/// The handler package under AWS's Lambda runtime (the Runtime Interface Emulator, Managed
/// Instances mode).
pub struct Function {
    /// The execution environment.
    pub environment: ExecutionEnvironment,
}

/// What a failed init left: the handler's `init failed` line, and the whole log.
#[derive(Debug)]
pub struct InitFailure {
    /// `errorType` of the line.
    pub error_type: String,
    /// `error`: the cause, in words.
    pub message: String,
    /// Everything the emulator and the function printed.
    pub log: String,
}

/// How the emulator runs a function with `env`: `AWS_LAMBDA_MAX_CONCURRENCY`,
/// `AWS_LAMBDA_FUNCTION_TIMEOUT` and `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` from it; an empty value
/// leaves a variable out.
pub fn options(env: Vec<(String, String)>) -> EnvironmentOptions {
    let number = |name: &str, default: u64| {
        env.iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(default)
    };
    EnvironmentOptions {
        concurrency: number("AWS_LAMBDA_MAX_CONCURRENCY", 8) as u32,
        timeout: Duration::from_secs(number("AWS_LAMBDA_FUNCTION_TIMEOUT", 30)),
        memory_mib: number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 2048) as u32,
        env: env.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        arch: Arch::X86_64,
    }
}

/// The environment every test function gets; `extra` adds or overrides (an empty value
/// removes a variable). `AWS_LAMBDA_MAX_CONCURRENCY` and `AWS_LAMBDA_FUNCTION_TIMEOUT` set how
/// the emulator runs the function.
pub fn base_env(catalog: &str, bedrock: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "similar"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "3"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/similar"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "30"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock),
        ("LMI_CATALOG_URI", catalog),
        ("LMI_EMBEDDING_MODEL_ID", MODEL),
        ("LMI_EMBEDDING_DIMENSIONS", "256"),
        ("LMI_MAX_TOP_K", "50"),
        ("LMI_SCAN_THREADS", "2"),
        ("LMI_BEDROCK_MAX_ATTEMPTS", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Function {
    /// Starts the package with `env` (and nothing else from this process's environment).
    pub async fn start(env: Vec<(String, String)>) -> Function {
        Function::start_package(&package(), Arch::X86_64, env).await
    }

    /// Starts the package `zip` built for `arch`.
    pub async fn start_package(zip: &Path, arch: Arch, env: Vec<(String, String)>) -> Function {
        let options = EnvironmentOptions {
            arch,
            ..options(env)
        };
        let environment = ExecutionEnvironment::start(zip, &options)
            .await
            .expect("start the function under the Lambda runtime emulator");
        Function { environment }
    }

    /// Starts the package expecting its init to fail: waits for the emulator to stop and
    /// returns the handler's `init failed` line.
    pub async fn init_failure(env: Vec<(String, String)>) -> InitFailure {
        let options = options(env);
        let mut f = Function {
            environment: ExecutionEnvironment::spawn(&package(), &options)
                .expect("start the function under the Lambda runtime emulator"),
        };
        let status = f.exit(Duration::from_secs(60)).await;
        let log = f.output().join("\n");
        assert!(
            status.is_some(),
            "the emulator kept running after a failed init:\n{log}"
        );
        let line = f
            .json_lines()
            .into_iter()
            .find(|l| l["message"] == "init failed")
            .unwrap_or_else(|| panic!("no 'init failed' line:\n{log}"));
        let error_type = line["errorType"].as_str().unwrap_or_default().to_owned();
        // The emulator took the handler's own type (`Function.<errorType>`) for the failed init.
        assert!(
            log.lines()
                .any(|l| l.contains("INIT failed")
                    && l.contains(&format!("err=Function.{error_type}"))),
            "the emulator did not record the failed init as Function.{error_type}:\n{log}"
        );
        InitFailure {
            error_type,
            message: line["error"].as_str().unwrap_or_default().to_owned(),
            log,
        }
    }

    /// Starts the package, and waits until its init is done (the catalog is loaded); panics
    /// with the output when init fails.
    pub async fn ready(env: Vec<(String, String)>) -> Function {
        Function::until_loaded(Function::start(env).await).await
    }

    /// Waits until `f`'s init is done; panics with the output when init fails.
    pub async fn until_loaded(f: Function) -> Function {
        let loaded = f
            .lines_until(Duration::from_secs(120), |line| {
                line.contains("\"message\":\"ready\"") || line.contains("INIT failed")
            })
            .await;
        if !loaded.iter().any(|l| l.contains("\"message\":\"ready\"")) {
            panic!("the function did not become ready:\n{}", loaded.join("\n"));
        }
        f
    }

    /// Invokes once.
    pub async fn invoke(&self, payload: &Value) -> Outcome {
        let invocation = self
            .environment
            .invoke_json(payload)
            .await
            .expect("invoke the function");
        let body = invocation.json();
        match invocation.error_type() {
            Some(header) => Outcome::Error { header, body },
            None => Outcome::Response(body),
        }
    }

    /// Everything the emulator and the function printed so far.
    pub fn output(&self) -> Vec<String> {
        self.environment.log().lines().map(str::to_owned).collect()
    }

    /// The printed lines once one of them satisfies `done`; all lines so far after `timeout`.
    pub async fn lines_until(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let lines = self.output();
            if lines.iter().any(|l| done(l)) || tokio::time::Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The printed JSON lines once one of them satisfies `done` (the function's output reaches
    /// the log asynchronously, so a line printed just before a response may not be there yet);
    /// all JSON lines so far after `timeout`.
    pub async fn json_lines_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let lines = self.json_lines();
            if lines.iter().any(&done) || tokio::time::Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The printed lines that are JSON objects.
    pub fn json_lines(&self) -> Vec<Value> {
        self.output()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The most invocations the emulator had in the function at once, from its `START` and
    /// `END RequestId` lines.
    pub fn max_in_flight(&self) -> usize {
        let (mut now, mut max) = (0usize, 0usize);
        for line in self.output() {
            if line.starts_with("START RequestId:") {
                now += 1;
                max = max.max(now);
            } else if line.starts_with("END RequestId:") {
                now = now.saturating_sub(1);
            }
        }
        max
    }

    /// Waits up to `wait` for the emulator to stop (it stops when the runtime exits).
    pub async fn exit(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(status) = self.environment.exited() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `base_env` with overrides applied.
pub fn with(mut env: Vec<(String, String)>, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in overrides {
        env.retain(|(name, _)| name != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    env
}
