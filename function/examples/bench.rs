//! Benchmark driver for `scripts/bench-similarity` (not a test, not part of the Lambda binary).
//!
//! Subcommands (all output is JSON on stdout):
//! - `gen --dir D --n N --dim D [--queries Q] [--seed S]`: a synthetic catalog of normalised
//!   Gaussian vectors, grouped into 16 categories, as `catalog.parquet` (what we load),
//!   `vectors.npy` and `queries.npy` (what the Python baselines load). File row i = catalog row i.
//! - `run --dir D --threads T --storage f32|int8`: load (timed, RSS after), then single-query
//!   latency, batches of 32, and 32 concurrent clients through the coalescing front; prints the
//!   figures and the top-10 rows of the first queries for the exactness and recall checks.
//! - `membw --threads T`: memory read bandwidth (the ceiling for a single-query scan).
//! - `handler --dir D --zip Z --threads T [--clients "1 8"] [--per-client Q]`: the cost of the
//!   runtime path — the handler package under AWS's Lambda Runtime Interface Emulator (Managed
//!   Instances mode, 8 slots) answering vector queries, client-observed p50/p99 at each client
//!   count, next to the handler's own search time and the in-process engine's time for the same
//!   queries.
//! - `hostile --dir D --zip Z --threads T [--concurrency C] [--rounds R] [--size BYTES]
//!   [--large-slots N]`: the
//!   memory a burst of maximum-size hostile requests costs the handler under the emulator (C
//!   slots, C requests at once, R rounds): peak RSS growth of `bootstrap` over its warm RSS
//!   (VmHWM after resetting it through /proc/PID/clear_refs), against the catalog matrix's size,
//!   and how every request was answered.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use lmi_similarity::{Catalog, Engine, EngineOptions, LoadOptions, Query, Storage};
use lmi_test_support::lambda::{EnvironmentOptions, ExecutionEnvironment, hostile_requests};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rayon::prelude::*;
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CATEGORIES: usize = 16;
const ROW_GROUP: usize = 16 * 1024;
const K: usize = 10;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = Flags::parse(&args[1.min(args.len())..]);
    let out = match args.first().map(String::as_str) {
        Some("gen") => gen_data(&flags)?,
        Some("run") => run(&flags)?,
        Some("membw") => membw(flags.usize("threads", 1))?,
        Some("handler") => handler(&flags)?,
        Some("hostile") => hostile(&flags)?,
        _ => return Err("usage: bench gen|run|membw|handler|hostile [--flag value]...".into()),
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Self {
        let mut m = HashMap::new();
        for pair in args.chunks(2) {
            if let [k, v] = pair {
                m.insert(k.trim_start_matches("--").to_string(), v.clone());
            }
        }
        Self(m)
    }
    fn usize(&self, k: &str, default: usize) -> usize {
        self.0
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    fn str(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
}

// ---- data ---------------------------------------------------------------------------------

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A unit vector of Gaussian components, from (seed, index) alone.
fn gaussian_unit(seed: u64, index: u64, dim: usize) -> Vec<f32> {
    let mut state = splitmix(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut v = Vec::with_capacity(dim);
    while v.len() < dim {
        state = splitmix(state);
        let u1 = ((state >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        state = splitmix(state);
        let u2 = (state >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        v.push((r * t.cos()) as f32);
        v.push((r * t.sin()) as f32);
    }
    v.truncate(dim);
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    v.iter().map(|&x| (f64::from(x) / n) as f32).collect()
}

fn npy_header(rows: usize, dim: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let mut h = dict.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend(h);
    out
}

fn write_npy(
    path: &Path,
    rows: usize,
    dim: usize,
    mut row: impl FnMut(usize) -> Vec<f32>,
) -> Res<()> {
    let mut w = BufWriter::with_capacity(8 << 20, File::create(path)?);
    w.write_all(&npy_header(rows, dim))?;
    for i in 0..rows {
        for x in row(i) {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

fn read_npy(path: &Path) -> Res<(usize, usize, Vec<f32>)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen])?;
    let shape = header.split("'shape': (").nth(1).ok_or("npy shape")?;
    let shape: Vec<usize> = shape
        .split(')')
        .next()
        .ok_or("npy shape")?
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape[0], shape[1], data))
}

fn gen_data(f: &Flags) -> Res<Value> {
    let dir = PathBuf::from(f.str("dir", "target/bench-data"));
    let (n, dim, nq, seed) = (
        f.usize("n", 200_000),
        f.usize("dim", 1024),
        f.usize("queries", 256),
        f.usize("seed", 42) as u64,
    );
    std::fs::create_dir_all(&dir)?;
    let meta = json!({"n": n, "dim": dim, "queries": nq, "seed": seed, "categories": CATEGORIES});
    let meta_path = dir.join("meta.json");
    if std::fs::read_to_string(&meta_path)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        == Some(meta.clone())
    {
        return Ok(json!({"generated": false, "dir": dir}));
    }
    let t = Instant::now();
    let schema_batch = |rows: std::ops::Range<usize>, vecs: &[Vec<f32>]| -> Res<RecordBatch> {
        let mut ids = StringBuilder::new();
        let mut cats = StringBuilder::new();
        let mut emb = FixedSizeListBuilder::with_capacity(
            Float32Builder::with_capacity(vecs.len() * dim),
            dim as i32,
            vecs.len(),
        );
        for (i, v) in rows.zip(vecs) {
            ids.append_value(format!("p{i}"));
            // Category blocks in file order, so file row i is catalog row i.
            cats.append_value(format!("cat{:02}", i * CATEGORIES / n));
            emb.values().append_slice(v);
            emb.append(true);
        }
        Ok(RecordBatch::try_from_iter([
            ("id", Arc::new(ids.finish()) as ArrayRef),
            ("category", Arc::new(cats.finish()) as ArrayRef),
            ("embedding", Arc::new(emb.finish()) as ArrayRef),
        ])?)
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let parquet_path = dir.join("catalog.parquet");
    let mut npy = BufWriter::with_capacity(8 << 20, File::create(dir.join("vectors.npy"))?);
    npy.write_all(&npy_header(n, dim))?;
    let mut writer: Option<ArrowWriter<File>> = None;
    for start in (0..n).step_by(ROW_GROUP) {
        let end = (start + ROW_GROUP).min(n);
        let vecs: Vec<Vec<f32>> = (start..end)
            .into_par_iter()
            .map(|i| gaussian_unit(seed, i as u64, dim))
            .collect();
        for v in &vecs {
            for x in v {
                npy.write_all(&x.to_le_bytes())?;
            }
        }
        let batch = schema_batch(start..end, &vecs)?;
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(ArrowWriter::try_new(
                File::create(&parquet_path)?,
                batch.schema(),
                Some(props.clone()),
            )?),
        };
        w.write(&batch)?;
    }
    npy.flush()?;
    if let Some(w) = writer {
        w.close()?;
    }
    write_npy(&dir.join("queries.npy"), nq, dim, |i| {
        gaussian_unit(seed ^ 0xABCD_EF01, i as u64, dim)
    })?;
    std::fs::write(&meta_path, serde_json::to_string(&meta)?)?;
    Ok(json!({"generated": true, "dir": dir, "seconds": t.elapsed().as_secs_f64()}))
}

// ---- measurements -------------------------------------------------------------------------

/// Anonymous memory of this process backed by transparent huge pages (`AnonHugePages` of
/// `/proc/self/smaps_rollup`), to report how much of the matrix the kernel put on them.
fn anon_huge_bytes() -> usize {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn stats(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({"median_ms": percentile(&v, 0.5) * 1e3, "p99_ms": percentile(&v, 0.99) * 1e3,
           "min_ms": percentile(&v, 0.0) * 1e3, "samples": v.len()})
}

/// `clients` concurrent clients, each sending its `per_client` queries (`query(client *
/// per_client + j)`) one after another through the engine's coalescing front; every latency.
async fn clients_through_front(
    engine: &Engine,
    clients: usize,
    per_client: usize,
    query: impl Fn(usize) -> Query,
) -> Vec<f64> {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let e = engine.clone();
            let queries: Vec<Query> = (0..per_client).map(|j| query(c * per_client + j)).collect();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for query in queries {
                    let t = Instant::now();
                    let _ = e.search(query).await;
                    lat.push(t.elapsed().as_secs_f64());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

fn read_file_seconds(path: &Path) -> Res<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let bytes = std::fs::read(path)?;
        best = best.min(t.elapsed().as_secs_f64());
        drop(bytes);
    }
    Ok(best)
}

fn run(f: &Flags) -> Res<Value> {
    let dir = PathBuf::from(f.str("dir", "target/bench-data"));
    let threads = f.usize("threads", 1);
    let storage = match f.str("storage", "f32").as_str() {
        "int8" => Storage::Int8,
        _ => Storage::F32,
    };
    let parquet_path = dir.join("catalog.parquet");
    let file_bytes = std::fs::metadata(&parquet_path)?.len();
    let read_s = read_file_seconds(&parquet_path)?;
    let rss_before = rss_bytes();
    let t = Instant::now();
    let catalog = Catalog::from_parquet_path(
        &parquet_path,
        &LoadOptions {
            storage,
            ..Default::default()
        },
    )?;
    let load_s = t.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let huge_after = anon_huge_bytes();
    let memory = catalog.memory();
    let (n, dim) = (catalog.len(), catalog.dim());
    let (_, _, qdata) = read_npy(&dir.join("queries.npy"))?;
    let queries: Vec<Vec<f32>> = qdata.chunks_exact(dim).map(<[f32]>::to_vec).collect();
    let engine = Engine::new(
        catalog,
        EngineOptions {
            threads,
            max_batch: 64,
            ..Default::default()
        },
    )?;
    let q = |i: usize| Query::by_vector(queries[i % queries.len()].clone()).with_top_k(K);

    // Single queries, one after another.
    let single_n = f.usize("single", if storage == Storage::Int8 { 100 } else { 40 });
    for i in 0..3 {
        engine.search_blocking(&q(i))?;
    }
    let mut lat = Vec::new();
    let mut top = Vec::new();
    for i in 0..single_n {
        let t = Instant::now();
        let hits = engine.search_blocking(&q(i))?;
        lat.push(t.elapsed().as_secs_f64());
        if i < 64 {
            top.push(hits.iter().map(|h| h.row).collect::<Vec<_>>());
        }
    }
    let single = stats(lat);

    // Batches of 32.
    let reps = f.usize("batches", 4);
    let batch: Vec<Query> = (0..32).map(q).collect();
    let first = engine.search_batch(&batch);
    for (i, r) in first.iter().enumerate() {
        let rows: Vec<usize> = r
            .as_ref()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| h.row)
            .collect();
        if i < top.len() && rows != top[i] {
            return Err(format!("batch result {i} differs from the single-query result").into());
        }
    }
    let t = Instant::now();
    for _ in 0..reps {
        engine.search_batch(&batch);
    }
    let batch_qps = (32 * reps) as f64 / t.elapsed().as_secs_f64();

    // 32 concurrent clients through the coalescing front.
    let per_client = f.usize("per-client", if storage == Storage::Int8 { 24 } else { 8 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let before = engine.stats();
    let t = Instant::now();
    let conc_lat = rt.block_on(clients_through_front(&engine, 32, per_client, q));
    let conc_s = t.elapsed().as_secs_f64();
    let after = engine.stats();
    let done = conc_lat.len();
    let batches = after.coalesced_batches - before.coalesced_batches;
    // Check the coalesced answers against the single-query ones.
    let check: Vec<Vec<usize>> = rt.block_on(async {
        let tasks: Vec<_> = (0..top.len())
            .map(|i| {
                let e = engine.clone();
                let query = q(i);
                tokio::spawn(async move { e.search(query).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            let hits = t.await.ok().and_then(Result::ok).unwrap_or_default();
            out.push(hits.iter().map(|h| h.row).collect());
        }
        out
    });
    if check != top {
        return Err("coalesced results differ from single-query results".into());
    }

    let scan_bytes = match storage {
        Storage::Int8 => n * dim,
        _ => n * dim * 4,
    } as f64;
    let median_s = single["median_ms"].as_f64().unwrap_or(f64::NAN) / 1e3;
    Ok(json!({
        "threads": threads,
        "storage": format!("{storage:?}"),
        "levels": format!("{:?}", engine.levels()),
        "n": n, "dim": dim,
        "file_bytes": file_bytes,
        "read_file_s": read_s,
        "load_s": load_s,
        "rss_before_load": rss_before,
        "rss_after_load": rss_after,
        "anon_huge_pages_after_load": huge_after,
        "memory": memory,
        "f32_matrix_raw_bytes": n * dim * 4,
        "single": single,
        "single_gbps": scan_bytes / median_s / 1e9,
        "batch32_qps": batch_qps,
        "concurrent32": {
            "qps": done as f64 / conc_s,
            "latency": stats(conc_lat),
            "mean_batch": done as f64 / batches.max(1) as f64,
        },
        "top": top,
    }))
}

/// Read bandwidth: each thread folds its share of a 1 GiB buffer, best of 5. The buffer is
/// mapped and advised onto transparent huge pages like the engine's matrices (and numpy's large
/// arrays), so the ceiling is measured under the same paging as the scans it is compared with.
#[allow(unsafe_code)]
fn membw(threads: usize) -> Res<Value> {
    let words = (1usize << 30) / 8;
    let mut map = memmap2::MmapMut::map_anon(words * 8)?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    // SAFETY: the mapping is page aligned, words * 8 bytes long and zero-initialised, and any
    // bytes are a valid u64; it outlives `buf`.
    let buf: &mut [u64] =
        unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<u64>(), words) };
    buf.par_iter_mut()
        .enumerate()
        .for_each(|(i, w)| *w = (i as u64).wrapping_mul(0x9E37));
    let buf: &[u64] = buf;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut best = Duration::MAX;
    let mut sink = 0u64;
    for _ in 0..5 {
        let t = Instant::now();
        sink ^= pool.install(|| {
            buf.par_chunks(words / threads)
                .map(|part| {
                    let mut acc = [0u64; 8];
                    for c in part.chunks_exact(8) {
                        for (a, &x) in acc.iter_mut().zip(c) {
                            *a ^= x;
                        }
                    }
                    acc.iter().fold(0, |a, &b| a ^ b)
                })
                .reduce(|| 0, |a, b| a ^ b)
        });
        best = best.min(t.elapsed());
    }
    Ok(
        json!({"threads": threads, "gbps": (words * 8) as f64 / best.as_secs_f64() / 1e9, "sink": sink}),
    )
}

// ---- the handler under AWS's runtime emulator ------------------------------------------------

/// The environment the package runs with: the catalog, its dimension, the scan threads, the
/// log level, then `extra` (an empty value leaves a variable out).
fn package_env(
    catalog: &Path,
    dim: usize,
    threads: usize,
    log_level: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let catalog = catalog.to_string_lossy();
    let (dim, threads) = (dim.to_string(), threads.to_string());
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("LMI_CATALOG_URI", catalog.as_ref()),
        ("LMI_EMBEDDING_DIMENSIONS", dim.as_str()),
        ("LMI_SCAN_THREADS", threads.as_str()),
        ("AWS_LAMBDA_LOG_LEVEL", log_level),
    ]
    .iter()
    .chain(extra)
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The package started under the emulator, once it answers `probe` (init loads the catalog
/// before the first `/next`).
async fn answering(
    zip: &Path,
    options: &EnvironmentOptions,
    probe: &str,
) -> Res<ExecutionEnvironment> {
    let started = Instant::now();
    let environment = ExecutionEnvironment::start(zip, options).await?;
    loop {
        let answer = environment.invoke(probe.as_bytes()).await?;
        if answer.json().get("results").is_some() {
            return Ok(environment);
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err(format!("the handler never answered: {}", environment.log()).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn handler(f: &Flags) -> Res<Value> {
    let dir = std::fs::canonicalize(f.str("dir", "target/bench-data"))?;
    let zip = PathBuf::from(f.str("zip", "dist/handler/bootstrap-x86_64.zip"));
    let threads = f.usize("threads", 2);
    let per_client = f.usize("per-client", 100);
    let clients: Vec<usize> = f
        .str("clients", "1 8")
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    let catalog_path = dir.join("catalog.parquet");
    let (_, dim, qdata) = read_npy(&dir.join("queries.npy"))?;
    let queries: Vec<Vec<f32>> = qdata.chunks_exact(dim).map(<[f32]>::to_vec).collect();
    let query = |i: usize| queries[i % queries.len()].clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // The engine in this process: the same catalog, threads and queries.
    let engine = Engine::new(
        Catalog::from_parquet_path(&catalog_path, &LoadOptions::default())?,
        EngineOptions {
            threads,
            ..Default::default()
        },
    )?;
    let rows = engine.catalog().len();
    let mut in_process = serde_json::Map::new();
    for &c in &clients {
        let lat = rt.block_on(clients_through_front(&engine, c, per_client, |i| {
            Query::by_vector(query(i)).with_top_k(K)
        }));
        in_process.insert(format!("clients_{c}"), stats(lat));
    }
    drop(engine);

    // The package under the emulator.
    let options = EnvironmentOptions {
        env: package_env(&catalog_path, dim, threads, "warn", &[]),
        concurrency: 8,
        timeout: Duration::from_secs(60),
        memory_mib: 4096,
        ..Default::default()
    };
    let handler = rt.block_on(async {
        let probe = json!({"vector": query(0), "topK": K}).to_string();
        let environment = Arc::new(answering(&zip, &options, &probe).await?);
        let mut out = serde_json::Map::new();
        for &c in &clients {
            let tasks: Vec<_> = (0..c)
                .map(|client| {
                    let env = Arc::clone(&environment);
                    let bodies: Vec<String> = (0..per_client)
                        .map(|j| {
                            json!({"vector": query(client * per_client + j), "topK": K}).to_string()
                        })
                        .collect();
                    tokio::spawn(async move {
                        let mut rows = Vec::new();
                        for body in bodies {
                            let answer = env
                                .invoke(body.as_bytes())
                                .await
                                .map_err(|e| e.to_string())?;
                            let json = answer.json();
                            let timing = |name: &str| {
                                json["timings"][name].as_f64().unwrap_or(f64::NAN) / 1e3
                            };
                            if json.get("results").is_none() {
                                return Err(format!("not answered: {json}"));
                            }
                            rows.push((
                                answer.elapsed.as_secs_f64(),
                                timing("totalMs"),
                                timing("searchMs"),
                            ));
                        }
                        Ok::<_, String>(rows)
                    })
                })
                .collect();
            let mut rows = Vec::new();
            for task in tasks {
                rows.extend(task.await.map_err(|e| e.to_string())??);
            }
            out.insert(
                format!("clients_{c}"),
                json!({
                    "client": stats(rows.iter().map(|r| r.0).collect()),
                    "handler_total": stats(rows.iter().map(|r| r.1).collect()),
                    "handler_search": stats(rows.iter().map(|r| r.2).collect()),
                }),
            );
        }
        Ok::<_, Box<dyn std::error::Error>>(Value::Object(out))
    })?;
    Ok(json!({
        "rows": rows,
        "dim": dim,
        "threads": threads,
        "per_client": per_client,
        "engine_in_process": Value::Object(in_process),
        "handler_under_rie": handler,
    }))
}

// ---- hostile requests: the memory they cost ---------------------------------------------------

/// `bootstrap`'s pid: the newest process (by start time) whose command line is the package's
/// `/var/task/bootstrap` (the runtime is in its own process group, so an emulator killed
/// elsewhere can leave an older one behind).
fn bootstrap_pid() -> Option<u32> {
    let started = |pid: u32| -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22 (starttime), counted after the parenthesised command name.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(19)?
            .parse()
            .ok()
    };
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"/var/task/bootstrap"))
        })
        .max_by_key(|&pid| started(pid).unwrap_or(0))
}

/// A `/proc/PID/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(pid: u32, field: &str) -> Res<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

fn hostile(f: &Flags) -> Res<Value> {
    let dir = std::fs::canonicalize(f.str("dir", "target/bench-data"))?;
    let zip = PathBuf::from(f.str("zip", "dist/handler/bootstrap-x86_64.zip"));
    let threads = f.usize("threads", 2);
    let concurrency = f.usize("concurrency", 64);
    let rounds = f.usize("rounds", 3);
    let size = f.usize("size", 6_000_000);
    let large_slots = f.str("large-slots", "");
    let catalog_path = dir.join("catalog.parquet");
    let (_, dim, qdata) = read_npy(&dir.join("queries.npy"))?;
    let rows =
        parquet::file::reader::SerializedFileReader::new(File::open(&catalog_path)?).map(|r| {
            parquet::file::reader::FileReader::metadata(&r)
                .file_metadata()
                .num_rows()
        })?;
    let matrix_bytes = rows as usize * dim * 4;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = EnvironmentOptions {
        env: package_env(
            &catalog_path,
            dim,
            threads,
            "error",
            &[("LMI_LARGE_EVENT_SLOTS", &large_slots)],
        ),
        concurrency: concurrency as u32,
        timeout: Duration::from_secs(60),
        memory_mib: 8192,
        ..Default::default()
    };
    let probe = json!({"vector": &qdata[..dim], "topK": K}).to_string();
    rt.block_on(async {
        let environment = Arc::new(answering(&zip, &options, &probe).await?);
        let pid = bootstrap_pid().ok_or("no /var/task/bootstrap process")?;
        // Warm: every slot answers valid queries once (thread stacks, allocator arenas).
        let burst = |bodies: Vec<Vec<u8>>| {
            let tasks: Vec<_> = bodies
                .into_iter()
                .map(|body| {
                    let env = Arc::clone(&environment);
                    tokio::spawn(async move { env.invoke(&body).await.map(|a| a.json()) })
                })
                .collect();
            async move {
                let mut answers = Vec::new();
                for t in tasks {
                    answers.push(
                        t.await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?,
                    );
                }
                Ok::<_, String>(answers)
            }
        };
        burst(vec![probe.clone().into_bytes(); concurrency]).await?;
        let warm_rss = status_bytes(pid, "VmRSS")?;
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
        let requests = hostile_requests(size);
        let kinds: Vec<&str> = requests.iter().map(|(name, _)| *name).collect();
        let mut answered = serde_json::Map::new();
        for _ in 0..rounds {
            let bodies: Vec<Vec<u8>> = requests
                .iter()
                .cycle()
                .take(concurrency)
                .map(|(_, body)| body.clone())
                .collect();
            for answer in burst(bodies).await? {
                let kind = answer["statusCode"]
                    .as_u64()
                    .map(|s| format!("http {s}"))
                    .or_else(|| answer["errorType"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "answered".to_owned());
                let n = answered.entry(kind).or_insert(json!(0));
                *n = json!(n.as_u64().unwrap_or(0) + 1);
            }
        }
        let peak = status_bytes(pid, "VmHWM")?;
        let after = status_bytes(pid, "VmRSS")?;
        let growth = peak.saturating_sub(warm_rss);
        Ok(json!({
            "rows": rows,
            "dim": dim,
            "matrix_bytes": matrix_bytes,
            "concurrency": concurrency,
            "rounds": rounds,
            "request_bytes": size,
            "kinds": kinds,
            "answers": answered,
            "warm_rss_bytes": warm_rss,
            "peak_rss_bytes": peak,
            "rss_after_bytes": after,
            "peak_growth_bytes": growth,
            "peak_growth_vs_matrix": growth as f64 / matrix_bytes as f64,
        }))
    })
}
