//! Exact top-k search: resolving queries, planning the scan, running it on the pool.
//!
//! A batch of queries is answered with one pass over the matrix. The rows to scan are cut into
//! segments, each with the set of queries that want it (all queries, unless some filter by
//! category: then per category block), and segments into tasks that the pool's threads take.
//! Each task scores a slice of rows against its segment's queries with the SIMD kernels and
//! keeps a bounded top-k per query; the per-task top-ks are merged at the end. A single query is
//! simply a batch of one: same kernels, same arithmetic, same results.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use std::ops::Range;
use std::sync::Arc;

use rayon::ThreadPool;
use rayon::prelude::*;

use crate::catalog::Catalog;
use crate::error::QueryError;
use crate::kernels::{self, F32Level, I8_ALIGN, I8Level, Packed};
use crate::query::{Query, Target};
use crate::topk::{Scored, TopK};

/// The instruction sets an engine scores with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Levels {
    pub f32: F32Level,
    pub i8: I8Level,
}

/// How many int8 candidates are re-scored exactly: `max(top_k × factor, min)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rescore {
    /// Candidates per requested hit.
    pub factor: usize,
    /// Candidates at least.
    pub min: usize,
}

impl Default for Rescore {
    fn default() -> Self {
        Self { factor: 4, min: 64 }
    }
}

impl Rescore {
    fn candidates(self, k: usize) -> usize {
        k.saturating_mul(self.factor).max(self.min).max(k)
    }
}

/// A validated query, ready to scan.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// Unit vector, zero-padded to the catalog stride.
    pub vector: Vec<f32>,
    pub k: usize,
    /// Category blocks to scan (sorted), or `None` for all rows.
    pub blocks: Option<Vec<usize>>,
    pub min_score: f32,
    /// Rows never returned (sorted).
    pub exclude: Vec<u32>,
    pub quant: Option<Quantized>,
}

#[derive(Clone, Debug)]
pub(crate) struct Quantized {
    pub data: Vec<i8>,
    pub scale: f32,
    pub sum: i64,
}

impl Resolved {
    fn wants(&self, block: usize) -> bool {
        self.blocks
            .as_ref()
            .is_none_or(|b| b.binary_search(&block).is_ok())
    }

    fn excludes(&self, row: u32) -> bool {
        !self.exclude.is_empty() && self.exclude.binary_search(&row).is_ok()
    }
}

pub(crate) fn resolve(
    cat: &Catalog,
    levels: Levels,
    max_top_k: usize,
    q: &Query,
) -> Result<Resolved, QueryError> {
    if q.top_k == 0 || q.top_k > max_top_k {
        return Err(QueryError::TopK {
            top_k: q.top_k,
            max: max_top_k,
        });
    }
    if q.min_score.is_some_and(f32::is_nan) {
        return Err(QueryError::MinScore);
    }
    let mut exclude = Vec::new();
    let vector = match &q.target {
        Target::Vector(v) => normalised(cat, v)?,
        Target::Id(id) => {
            let row = cat
                .row_of(id)
                .ok_or_else(|| QueryError::UnknownId(id.clone()))?;
            if !q.include_self {
                exclude.push(row as u32);
            }
            cat.padded(row).to_vec()
        }
    };
    exclude.extend(
        q.exclude_ids
            .iter()
            .filter_map(|id| cat.row_of(id))
            .map(|r| r as u32),
    );
    exclude.sort_unstable();
    exclude.dedup();
    let blocks = (!q.categories.is_empty()).then(|| {
        let mut b: Vec<usize> = q
            .categories
            .iter()
            .filter_map(|c| cat.category_index(c))
            .collect();
        b.sort_unstable();
        b.dedup();
        b
    });
    let quant = cat
        .int8
        .as_ref()
        .map(|m| quantize(&vector, m.stride, levels.i8.query_max()));
    Ok(Resolved {
        vector,
        k: q.top_k,
        blocks,
        min_score: q.min_score.unwrap_or(f32::NEG_INFINITY),
        exclude,
        quant,
    })
}

fn normalised(cat: &Catalog, v: &[f32]) -> Result<Vec<f32>, QueryError> {
    if v.len() != cat.dim {
        return Err(QueryError::Dimension {
            expected: cat.dim,
            found: v.len(),
        });
    }
    let norm = crate::catalog::norm(v).map_err(|index| QueryError::NonFinite { index })?;
    if norm == 0.0 {
        return Err(QueryError::ZeroVector);
    }
    let scale = (1.0 / norm) as f32;
    let mut out = vec![0f32; cat.stride];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x * scale;
    }
    Ok(out)
}

fn quantize(v: &[f32], stride: usize, max: i8) -> Quantized {
    let maxabs = v.iter().fold(0f32, |a, &x| a.max(x.abs()));
    let scale = maxabs / f32::from(max);
    let inv = if maxabs > 0.0 {
        f32::from(max) / maxabs
    } else {
        0.0
    };
    let mut data = vec![0i8; stride];
    let lim = f32::from(max);
    for (d, &x) in data.iter_mut().zip(v) {
        *d = (x * inv).round().clamp(-lim, lim) as i8;
    }
    let sum = data.iter().map(|&d| i64::from(d)).sum();
    debug_assert!(stride.is_multiple_of(I8_ALIGN));
    Quantized { data, scale, sum }
}

/// Rows per task at least, so that small filtered scans do not drown in scheduling. Larger scans
/// are cut into 16 tasks per thread: a thread slowed down (by the hypervisor, another process)
/// leaves the rest of its share to be stolen by the others rather than finishing last.
const MIN_TASK_ROWS: usize = 256;
/// Rows scored per kernel call inside a task (the score buffer is this × queries).
const SUB_ROWS: usize = 256;
/// Scans smaller than this many bytes run on the calling thread.
const INLINE_BYTES: usize = 2 << 20;

/// Rows to scan and the queries (indices into the batch) that want them.
struct Segment {
    rows: Range<usize>,
    group: Arc<Group>,
}

/// Queries sharing segments, with their vectors packed for the kernels.
struct Group {
    members: Vec<usize>,
    f32s: Option<Packed<f32>>,
    i8s: Option<Packed<i8>>,
}

struct Task {
    rows: Range<usize>,
    group: Arc<Group>,
}

struct State {
    tops: Vec<TopK>,
    fbuf: Vec<f32>,
    ibuf: Vec<i32>,
}

/// Answers a batch with one pass over the matrix; best first, per query.
pub(crate) fn run(
    cat: &Catalog,
    levels: Levels,
    pool: &ThreadPool,
    rescore: Rescore,
    batch: &[&Resolved],
) -> Vec<Vec<Scored>> {
    let int8 = cat.int8.is_some();
    let keep = |q: &Resolved| if int8 { rescore.candidates(q.k) } else { q.k };
    let segments = plan(cat, levels, batch);
    let scanned: usize = segments
        .iter()
        .map(|s| s.rows.len() * s.group.members.len())
        .sum();
    let bytes = scanned
        * if int8 {
            cat.int8.as_ref().map_or(0, |m| m.stride)
        } else {
            cat.stride * 4
        };
    let threads = pool.current_num_threads().max(1);
    let total_rows: usize = segments.iter().map(|s| s.rows.len()).sum();
    let task_rows = (total_rows / (threads * 16)).max(MIN_TASK_ROWS);
    let tasks: Vec<Task> = segments
        .iter()
        .flat_map(|s| {
            s.rows.clone().step_by(task_rows).map(move |start| Task {
                rows: start..(start + task_rows).min(s.rows.end),
                group: Arc::clone(&s.group),
            })
        })
        .collect();
    let fresh = || State {
        tops: batch.iter().map(|q| TopK::new(keep(q))).collect(),
        fbuf: Vec::new(),
        ibuf: Vec::new(),
    };
    let step = |mut st: State, t: &Task| {
        scan(cat, levels, batch, t, &mut st);
        st
    };
    let merge = |mut a: State, b: State| {
        for (x, y) in a.tops.iter_mut().zip(b.tops) {
            x.merge(y);
        }
        a
    };
    let state = if bytes < INLINE_BYTES || tasks.len() <= 1 {
        tasks.iter().fold(fresh(), step)
    } else {
        pool.install(|| tasks.par_iter().fold(fresh, step).reduce(fresh, merge))
    };
    state
        .tops
        .into_iter()
        .zip(batch)
        .map(|(top, q)| {
            if int8 {
                rescore_exact(cat, levels, q, top)
            } else {
                top.into_sorted()
            }
        })
        .collect()
}

fn plan(cat: &Catalog, levels: Levels, batch: &[&Resolved]) -> Vec<Segment> {
    let pack = |members: Vec<usize>| {
        let (f32s, i8s) = match &cat.int8 {
            Some(m) => {
                let mut raw = Vec::with_capacity(members.len() * m.stride);
                for &i in &members {
                    match &batch[i].quant {
                        Some(q) => raw.extend_from_slice(&q.data),
                        None => raw.resize(raw.len() + m.stride, 0),
                    }
                }
                (
                    None,
                    Some(kernels::pack_i8(levels.i8, &raw, members.len(), m.stride)),
                )
            }
            None => {
                let mut raw = Vec::with_capacity(members.len() * cat.stride);
                for &i in &members {
                    raw.extend_from_slice(&batch[i].vector);
                }
                (
                    Some(kernels::pack_f32(
                        levels.f32,
                        &raw,
                        members.len(),
                        cat.stride,
                    )),
                    None,
                )
            }
        };
        Arc::new(Group { members, f32s, i8s })
    };
    if batch.iter().all(|q| q.blocks.is_none()) {
        return vec![Segment {
            rows: 0..cat.len(),
            group: pack((0..batch.len()).collect()),
        }];
    }
    let mut segments: Vec<Segment> = Vec::new();
    for (b, block) in cat.blocks.iter().enumerate() {
        let members: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].wants(b)).collect();
        if members.is_empty() || block.rows.is_empty() {
            continue;
        }
        match segments.last_mut() {
            Some(last) if last.rows.end == block.rows.start && last.group.members == members => {
                last.rows.end = block.rows.end;
            }
            _ => segments.push(Segment {
                rows: block.rows.clone(),
                group: pack(members),
            }),
        }
    }
    segments
}

fn scan(cat: &Catalog, levels: Levels, batch: &[&Resolved], t: &Task, st: &mut State) {
    let g = &t.group;
    let nq = g.members.len();
    let mut start = t.rows.start;
    while start < t.rows.end {
        let end = (start + SUB_ROWS).min(t.rows.end);
        let n = end - start;
        match (cat.int8.as_ref(), &g.f32s, &g.i8s) {
            (None, Some(packed), _) => {
                let stride = cat.stride;
                st.fbuf.resize(n * nq, 0.0);
                kernels::score_f32(
                    levels.f32,
                    &cat.vectors.as_slice()[start * stride..end * stride],
                    n,
                    stride,
                    packed,
                    &mut st.fbuf,
                );
                for (j, &m) in g.members.iter().enumerate() {
                    let q = batch[m];
                    let top = &mut st.tops[m];
                    for i in 0..n {
                        let s = st.fbuf[i * nq + j];
                        let row = (start + i) as u32;
                        if top.admits(s) && s >= q.min_score && !q.excludes(row) {
                            top.push(s, row);
                        }
                    }
                }
            }
            (Some(m8), _, Some(packed)) => {
                let stride = m8.stride;
                st.ibuf.resize(n * nq, 0);
                let offset = kernels::score_i8(
                    levels.i8,
                    &m8.data.as_slice()[start * stride..end * stride],
                    n,
                    stride,
                    packed,
                    &mut st.ibuf,
                );
                for (j, &m) in g.members.iter().enumerate() {
                    let q = batch[m];
                    let Some(quant) = q.quant.as_ref() else {
                        continue;
                    };
                    let correction = if offset { 128 * quant.sum } else { 0 };
                    let top = &mut st.tops[m];
                    for i in 0..n {
                        let raw = i64::from(st.ibuf[i * nq + j]) - correction;
                        let s = raw as f32 * m8.scales[start + i] * quant.scale;
                        let row = (start + i) as u32;
                        if top.admits(s) && !q.excludes(row) {
                            top.push(s, row);
                        }
                    }
                }
            }
            // `plan` packs f32 queries for f32 catalogs and int8 queries for int8 ones.
            _ => {}
        }
        start = end;
    }
}

/// Exact float32 scores for the int8 candidates, then the best `k` of them.
fn rescore_exact(cat: &Catalog, levels: Levels, q: &Resolved, candidates: TopK) -> Vec<Scored> {
    let mut top = TopK::new(q.k);
    let mut out = [0f32];
    let packed = kernels::pack_f32(levels.f32, &q.vector, 1, cat.stride);
    for c in candidates.into_sorted() {
        let row = c.row as usize;
        kernels::score_f32(
            levels.f32,
            cat.padded(row),
            1,
            cat.stride,
            &packed,
            &mut out,
        );
        let s = out[0];
        if s >= q.min_score && top.admits(s) {
            top.push(s, c.row);
        }
    }
    top.into_sorted()
}
