//! The engine: a catalog, a thread pool, and a coalescing front for concurrent queries.
//!
//! [`Engine::search`] is what a multi-concurrency handler calls: each query is validated on the
//! caller's task, then queued. One worker thread takes everything queued (up to `max_batch`)
//! and answers it with one pass over the matrix, while newer queries queue behind it. Under
//! light load a query runs alone at once; under heavy load the batches grow, each row read from
//! memory serves many queries, and throughput rises with concurrency.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::catalog::Catalog;
use crate::error::QueryError;
use crate::kernels::{F32Level, I8Level};
use crate::query::{Hit, Query};
use crate::search::{self, Levels, Rescore, Resolved};
use crate::topk::Scored;

/// Engine settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOptions {
    /// Scan threads; 0 means one per available core.
    pub threads: usize,
    /// Most queries answered by one coalesced pass.
    pub max_batch: usize,
    /// How long the first query of a batch may wait for company when the worker is idle.
    /// Zero (the default) never delays a query: batches form only from queries that arrive
    /// while a pass is running, which is exactly when waiting costs nothing.
    pub max_wait: Duration,
    /// After a pass answering n queries, how long the worker may wait for n queries to be
    /// queued again before starting the next pass (at most 1/8 of the last pass's time).
    /// Callers answered by a pass usually come straight back; without this pause a closed loop
    /// of clients splits into a large batch and a batch of one, alternately. Zero disables it.
    pub regroup_wait: Duration,
    /// Largest `top_k` accepted.
    pub max_top_k: usize,
    /// Int8 candidates re-scored exactly per query.
    pub rescore: Rescore,
    /// Force an f32 instruction set (must be supported); `None` picks the best.
    pub f32_level: Option<F32Level>,
    /// Force an int8 instruction set (must be supported); `None` picks the best.
    pub i8_level: Option<I8Level>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            max_batch: 64,
            max_wait: Duration::ZERO,
            regroup_wait: Duration::from_millis(2),
            max_top_k: 1000,
            rescore: Rescore::default(),
            f32_level: None,
            i8_level: None,
        }
    }
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The scan thread pool could not be built.
    #[error("build scan thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// The coalescing worker thread could not be spawned.
    #[error("spawn coalescing worker: {0}")]
    Worker(#[source] std::io::Error),
    /// A forced instruction set is not supported by this CPU.
    #[error("instruction set {0} is not supported by this CPU")]
    Unsupported(String),
    /// `max_batch` or `max_top_k` is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    /// Queries answered through [`Engine::search`].
    pub coalesced_queries: u64,
    /// Passes the coalescing worker ran for them.
    pub coalesced_batches: u64,
}

/// How a coalesced query was answered ([`Engine::search_with_pass`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassInfo {
    /// Queries answered by the same pass over the matrix (1 when the query ran alone).
    pub batch_size: usize,
    /// Time between queueing the query and the start of its pass.
    pub queued: Duration,
    /// Time the pass took (shared by every query in the batch).
    pub pass: Duration,
}

/// The similarity engine. Cheap to clone (a handle); the worker stops when the last handle
/// drops.
#[derive(Clone)]
pub struct Engine {
    handle: Arc<Handle>,
}

struct Core {
    catalog: Catalog,
    pool: rayon::ThreadPool,
    levels: Levels,
    options: EngineOptions,
    queue: Mutex<Queue>,
    wake: Condvar,
    queries: AtomicU64,
    batches: AtomicU64,
    /// Set by [`Engine::panic_in_next_pass`].
    panic_next: AtomicBool,
}

struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

struct Job {
    query: Resolved,
    reply: oneshot::Sender<Result<(Vec<Hit>, PassInfo), QueryError>>,
    queued: Instant,
    /// When the caller stops waiting: a job still queued then is dropped, not scanned.
    deadline: Option<Instant>,
}

/// Owns the worker: dropping the last engine handle stops and joins it.
struct Handle {
    core: Arc<Core>,
    worker: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.core.queue).stop = true;
        self.core.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // A panic while holding the lock leaves a consistent queue (push/pop only): carry on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.handle.core;
        f.debug_struct("Engine")
            .field("catalog", &c.catalog)
            .field("threads", &c.pool.current_num_threads())
            .field("levels", &c.levels)
            .finish()
    }
}

impl Engine {
    /// Starts an engine over `catalog`: builds the scan pool and the coalescing worker.
    pub fn new(catalog: Catalog, options: EngineOptions) -> Result<Self, EngineError> {
        if options.max_batch == 0 {
            return Err(EngineError::Zero("max_batch"));
        }
        if options.max_top_k == 0 {
            return Err(EngineError::Zero("max_top_k"));
        }
        let f32 = pick(options.f32_level, F32Level::available(), F32Level::detect())?;
        let i8 = pick(options.i8_level, I8Level::available(), I8Level::detect())?;
        let threads = if options.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            options.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("similarity-scan-{i}"))
            .build()?;
        let core = Arc::new(Core {
            catalog,
            pool,
            levels: Levels { f32, i8 },
            options,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            queries: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            panic_next: AtomicBool::new(false),
        });
        let worker_core = Arc::clone(&core);
        let worker = std::thread::Builder::new()
            .name("similarity-coalescer".into())
            .spawn(move || worker_core.work())
            .map_err(EngineError::Worker)?;
        Ok(Self {
            handle: Arc::new(Handle {
                core,
                worker: Some(worker),
            }),
        })
    }

    /// The catalog searched.
    pub fn catalog(&self) -> &Catalog {
        &self.handle.core.catalog
    }

    /// The instruction sets in use.
    pub fn levels(&self) -> (F32Level, I8Level) {
        let l = self.handle.core.levels;
        (l.f32, l.i8)
    }

    /// Scan threads.
    pub fn threads(&self) -> usize {
        self.handle.core.pool.current_num_threads()
    }

    /// Counters since start.
    pub fn stats(&self) -> EngineStats {
        let c = &self.handle.core;
        EngineStats {
            coalesced_queries: c.queries.load(Ordering::Relaxed),
            coalesced_batches: c.batches.load(Ordering::Relaxed),
        }
    }

    /// Answers one query on the calling thread (using the scan pool), without coalescing.
    /// Blocks for the duration of a scan: call it from a blocking context.
    pub fn search_blocking(&self, query: &Query) -> Result<Vec<Hit>, QueryError> {
        let resolved = self.handle.core.resolve(query)?;
        let mut out = self.handle.core.run(&[&resolved]);
        Ok(out.pop().unwrap_or_default())
    }

    /// Answers several queries with one pass over the matrix, each result as if it were asked
    /// alone. Blocks like [`Engine::search_blocking`].
    pub fn search_batch(&self, queries: &[Query]) -> Vec<Result<Vec<Hit>, QueryError>> {
        let core = &self.handle.core;
        let resolved: Vec<Result<Resolved, QueryError>> =
            queries.iter().map(|q| core.resolve(q)).collect();
        let ok: Vec<&Resolved> = resolved.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut answers = core.run(&ok).into_iter();
        resolved
            .iter()
            .map(|r| match r {
                Ok(_) => Ok(answers.next().unwrap_or_default()),
                Err(e) => Err(e.clone()),
            })
            .collect()
    }

    /// Answers a query through the coalescing front: it shares a pass over the matrix with the
    /// other queries waiting at the time. Results are identical to [`Engine::search_blocking`].
    /// Invalid queries fail at once, without queueing.
    pub async fn search(&self, query: Query) -> Result<Vec<Hit>, QueryError> {
        self.search_with_pass(query).await.map(|(hits, _)| hits)
    }

    /// [`Engine::search`], also saying how the query was answered: the size of the batch it
    /// shared a pass with, how long it waited and how long the pass took (for metrics).
    pub async fn search_with_pass(&self, query: Query) -> Result<(Vec<Hit>, PassInfo), QueryError> {
        self.search_before(query, None).await
    }

    /// [`Engine::search_with_pass`] for a caller that stops waiting at `deadline` (a Lambda
    /// invocation's deadline, less a margin): if the query is still queued then, it fails with
    /// [`QueryError::DeadlineExceeded`] without costing a scan, so a backlog of queries nobody
    /// waits for any more does not delay the ones still wanted. A query already in a pass when
    /// its deadline passes is answered.
    pub async fn search_before(
        &self,
        query: Query,
        deadline: Option<Instant>,
    ) -> Result<(Vec<Hit>, PassInfo), QueryError> {
        let core = &self.handle.core;
        let resolved = core.resolve(&query)?;
        let (reply, answer) = oneshot::channel();
        {
            let mut q = lock(&core.queue);
            if q.stop {
                return Err(QueryError::EngineStopped);
            }
            q.jobs.push_back(Job {
                query: resolved,
                reply,
                queued: Instant::now(),
                deadline,
            });
        }
        core.wake.notify_one();
        answer.await.unwrap_or(Err(QueryError::EngineStopped))
    }

    /// Makes the coalescing worker panic in its next pass (tests of the engine's and the
    /// handler's panic handling; not for production use).
    #[doc(hidden)]
    pub fn panic_in_next_pass(&self) {
        self.handle.core.panic_next.store(true, Ordering::SeqCst);
    }
}

fn pick<L: Copy + PartialEq + std::fmt::Debug>(
    forced: Option<L>,
    available: Vec<L>,
    best: L,
) -> Result<L, EngineError> {
    match forced {
        None => Ok(best),
        Some(l) if available.contains(&l) => Ok(l),
        Some(l) => Err(EngineError::Unsupported(format!("{l:?}"))),
    }
}

impl Core {
    fn resolve(&self, q: &Query) -> Result<Resolved, QueryError> {
        search::resolve(&self.catalog, self.levels, self.options.max_top_k, q)
    }

    fn run(&self, batch: &[&Resolved]) -> Vec<Vec<Hit>> {
        search::run(
            &self.catalog,
            self.levels,
            &self.pool,
            self.options.rescore,
            batch,
        )
        .into_iter()
        .map(|scored| self.hits(scored))
        .collect()
    }

    fn hits(&self, scored: Vec<Scored>) -> Vec<Hit> {
        scored
            .into_iter()
            .map(|s| {
                let row = s.row as usize;
                Hit {
                    id: self.catalog.id_arc(row),
                    category: self.catalog.category_arc(row),
                    score: s.score,
                    row,
                }
            })
            .collect()
    }

    /// The coalescing loop: wait for work, take a batch, answer it, repeat.
    ///
    /// A panic in a pass (a bug: nothing a query or catalog holds should cause one) fails that
    /// batch and every queued query with [`QueryError::SearchFailed`] and stops the engine:
    /// later searches fail at once with [`QueryError::EngineStopped`] instead of waiting
    /// forever on a worker that is gone. (The handler then exits so that Lambda replaces the
    /// execution environment.)
    fn work(&self) {
        let mut last = (0usize, Duration::ZERO);
        loop {
            let mut jobs = match self.next_batch(last) {
                Some(jobs) => jobs,
                None => return,
            };
            // Callers that gave up (dropped their future) need no answer; callers whose
            // deadline passed while queued get their error without a scan.
            let now = Instant::now();
            jobs.retain(|j| !j.reply.is_closed());
            let (jobs, expired): (Vec<Job>, Vec<Job>) = jobs
                .into_iter()
                .partition(|j| j.deadline.is_none_or(|d| d > now));
            for job in expired {
                let _ = job.reply.send(Err(QueryError::DeadlineExceeded));
            }
            if jobs.is_empty() {
                continue;
            }
            let batch: Vec<&Resolved> = jobs.iter().map(|j| &j.query).collect();
            let started = Instant::now();
            let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // A plain load first: the pass does not write a shared line to check a test hook.
                if self.panic_next.load(Ordering::Relaxed)
                    && self.panic_next.swap(false, Ordering::SeqCst)
                {
                    panic!("injected panic in a search pass (Engine::panic_in_next_pass)");
                }
                self.run(&batch)
            }));
            let Ok(answers) = answers else {
                self.fail_all(jobs);
                return;
            };
            let pass = started.elapsed();
            last = (jobs.len(), pass);
            self.queries.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            self.batches.fetch_add(1, Ordering::Relaxed);
            let batch_size = jobs.len();
            for (job, hits) in jobs.into_iter().zip(answers) {
                let info = PassInfo {
                    batch_size,
                    queued: started.saturating_duration_since(job.queued),
                    pass,
                };
                let _ = job.reply.send(Ok((hits, info)));
            }
        }
    }

    /// After a panic in a pass: stop taking queries, fail the batch and everything queued.
    fn fail_all(&self, batch: Vec<Job>) {
        let queued: Vec<Job> = {
            let mut q = lock(&self.queue);
            q.stop = true;
            q.jobs.drain(..).collect()
        };
        for job in batch.into_iter().chain(queued) {
            let _ = job.reply.send(Err(QueryError::SearchFailed));
        }
    }

    /// Waits for work; `last` is the size and duration of the previous pass.
    fn next_batch(&self, last: (usize, Duration)) -> Option<Vec<Job>> {
        let max = self.options.max_batch;
        let mut q = lock(&self.queue);
        while q.jobs.is_empty() {
            if q.stop {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        // Regroup: give the callers of the last pass a moment to come back.
        let (last_n, last_time) = last;
        let regroup = self.options.regroup_wait.min(last_time / 8);
        let deadline = Instant::now() + regroup;
        while q.jobs.len() < last_n.min(max) && !q.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = self
                .wake
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if !self.options.max_wait.is_zero() {
            while q.jobs.len() < max && !q.stop {
                let waited = q
                    .jobs
                    .front()
                    .map_or(Duration::ZERO, |j| j.queued.elapsed());
                let Some(left) = self.options.max_wait.checked_sub(waited) else {
                    break;
                };
                if left.is_zero() {
                    break;
                }
                q = self
                    .wake
                    .wait_timeout(q, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let n = q.jobs.len().min(max);
        Some(q.jobs.drain(..n).collect())
    }
}
