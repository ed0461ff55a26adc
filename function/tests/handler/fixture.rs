//! Fixtures: a random catalog written as Parquet, a brute-force reference search, and the real
//! `bootstrap` binary started against the local Runtime API.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use lmi_test_support::runtime_api::{Outcome, RuntimeApi};

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

/// A fresh directory under the target's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "handler-{name}-{}-{}",
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

/// The `bootstrap` binary under a local Runtime API.
pub struct Function {
    pub api: RuntimeApi,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// The environment every test function gets; `extra` adds or overrides (an empty value
/// removes a variable).
pub fn base_env(catalog: &str, bedrock: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "similar"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "3"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/similar"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test"),
        ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
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
    /// Starts `bootstrap` with `env` (and nothing else from this process's environment).
    pub async fn start(env: Vec<(String, String)>) -> Function {
        let api = RuntimeApi::start()
            .await
            .expect("start the Runtime API emulator");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            if !v.is_empty() {
                command.env(k, v);
            }
        }
        let mut child = command.spawn().expect("spawn bootstrap");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        Function { api, child, lines }
    }

    /// Starts and waits for init to finish (the first `/next` poll); panics with the output
    /// when init fails.
    pub async fn ready(env: Vec<(String, String)>) -> Function {
        let f = Function::start(env).await;
        if !f.api.wait_ready(Duration::from_secs(60)).await {
            panic!("bootstrap did not become ready:\n{}", f.output().join("\n"));
        }
        f
    }

    /// Invokes once.
    pub async fn invoke(&self, payload: &Value) -> Outcome {
        self.api.invoke(payload).await
    }

    /// Everything printed so far (stdout and stderr lines).
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The printed JSON lines once one of them satisfies `done` (the process's output is read
    /// by another task, so a line printed just before a response may not have arrived yet);
    /// all lines so far after `timeout`.
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

    /// Waits up to `wait` for the process to exit.
    pub async fn exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
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
