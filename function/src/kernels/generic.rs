//! The blocked scoring loop shared by every instruction set; each level supplies a [`Kernel`]
//! (load, multiply-accumulate, reduce) and a `#[target_feature]` entry point into which this
//! code is inlined.
//!
//! Loop order: a chunk of rows small enough to stay in L2 is read from memory once; the queries
//! walk over it in tiles of up to six (a tile fits in L1); within a tile, `R` rows × `Q` queries
//! accumulate in registers over the whole dimension, so every row vector loaded is used `Q`
//! times and every query vector `R` times.

use std::mem::size_of;

/// Raw kernel arguments; [`super::score_f32`] and [`super::score_i8`] check every bound first.
pub(crate) struct Args<R, Q, O> {
    pub rows: *const R,
    pub nrows: usize,
    pub stride: usize,
    pub queries: *const Q,
    pub nq: usize,
    pub out: *mut O,
}

/// One instruction set's primitives for one element type.
pub(crate) trait Kernel {
    type Row;
    type Query;
    type Out;
    type Acc: Copy;
    type RowV: Copy;
    type QueryV: Copy;
    /// Elements consumed per step.
    const W: usize;
    /// Widest query tile whose accumulators fit in the register file.
    const QMAX: usize;
    unsafe fn zero() -> Self::Acc;
    unsafe fn load_row(p: *const Self::Row) -> Self::RowV;
    unsafe fn load_query(p: *const Self::Query) -> Self::QueryV;
    unsafe fn step(acc: Self::Acc, row: Self::RowV, query: Self::QueryV) -> Self::Acc;
    unsafe fn reduce(acc: Self::Acc) -> Self::Out;
}

/// Bytes of rows kept hot in L2 while the query tiles pass over them.
const CHUNK_BYTES: usize = 128 * 1024;

/// # Safety
/// `a.rows` must be valid for `nrows * stride` reads, `a.queries` for `nq * stride`, `a.out`
/// for `nrows * nq` writes, `stride` a multiple of `K::W`, and the CPU must support every
/// instruction `K` uses.
#[inline(always)]
pub(crate) unsafe fn score<K: Kernel>(a: &Args<K::Row, K::Query, K::Out>) {
    let chunk = (CHUNK_BYTES / (a.stride * size_of::<K::Row>())).max(4);
    let mut start = 0;
    while start < a.nrows {
        let len = chunk.min(a.nrows - start);
        let mut q0 = 0;
        while q0 < a.nq {
            let qn = (a.nq - q0).min(K::QMAX).min(6);
            // SAFETY: rows start..start+len and queries q0..q0+qn are in bounds (caller).
            unsafe {
                match qn {
                    1 => rows::<K, 1, 4>(a, start, len, q0),
                    2 => rows::<K, 2, 4>(a, start, len, q0),
                    3 => rows::<K, 3, 3>(a, start, len, q0),
                    4 => rows::<K, 4, 2>(a, start, len, q0),
                    5 => rows::<K, 5, 2>(a, start, len, q0),
                    _ => rows::<K, 6, 2>(a, start, len, q0),
                }
            }
            q0 += qn;
        }
        start += len;
    }
}

/// # Safety
/// As [`score`], for rows `start..start + len` and queries `q0..q0 + Q`.
#[inline(always)]
unsafe fn rows<K: Kernel, const Q: usize, const R: usize>(
    a: &Args<K::Row, K::Query, K::Out>,
    start: usize,
    len: usize,
    q0: usize,
) {
    let mut r = 0;
    // SAFETY (whole block): every tile stays within rows start..start+len, queries q0..q0+Q.
    unsafe {
        let queries = a.queries.add(q0 * a.stride);
        while r + R <= len {
            let row = start + r;
            tile::<K, R, Q>(
                a.rows.add(row * a.stride),
                a.stride,
                queries,
                a.out.add(row * a.nq + q0),
                a.nq,
            );
            r += R;
        }
        while r < len {
            let row = start + r;
            tile::<K, 1, Q>(
                a.rows.add(row * a.stride),
                a.stride,
                queries,
                a.out.add(row * a.nq + q0),
                a.nq,
            );
            r += 1;
        }
    }
}

/// `R` rows × `Q` queries, one accumulator per pair, over the whole dimension.
///
/// # Safety
/// `rows` valid for `R * stride` reads, `queries` for `Q * stride`, `out` for writes at
/// `r * nq + q` (r < R, q < Q).
#[inline(always)]
unsafe fn tile<K: Kernel, const R: usize, const Q: usize>(
    rows: *const K::Row,
    stride: usize,
    queries: *const K::Query,
    out: *mut K::Out,
    nq: usize,
) {
    // SAFETY (whole block): offsets stay below R * stride / Q * stride, see the contract above.
    unsafe {
        let mut acc = [[K::zero(); Q]; R];
        let mut k = 0;
        while k < stride {
            let rv: [K::RowV; R] = std::array::from_fn(|r| K::load_row(rows.add(r * stride + k)));
            for q in 0..Q {
                let qv = K::load_query(queries.add(q * stride + k));
                for (accs, &row) in acc.iter_mut().zip(&rv) {
                    accs[q] = K::step(accs[q], row, qv);
                }
            }
            k += K::W;
        }
        for (r, accs) in acc.iter().enumerate() {
            for (q, &v) in accs.iter().enumerate() {
                out.add(r * nq + q).write(K::reduce(v));
            }
        }
    }
}
