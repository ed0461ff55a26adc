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
/// `queries` is packed by [`pack`].
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
    /// Hints that `p` will be read soon, into L1 (no-op where the ISA has no hint).
    #[inline(always)]
    unsafe fn prefetch(_p: *const Self::Row) {}
    /// Hints that `p` will be read later, into L2.
    #[inline(always)]
    unsafe fn prefetch_l2(_p: *const Self::Row) {}
}

/// Bytes of rows kept hot in L2 while the query tiles pass over them.
pub(crate) const CHUNK_BYTES: usize = 128 * 1024;

/// Widest query tile of any kernel.
const TILE_MAX: usize = 6;

/// Query tiles `(first, width)` for `nq` queries: what [`score`] walks and [`pack`] lays out.
/// As few tiles as the widest allowed width needs, with the queries spread evenly over them
/// (32 queries in tiles of at most 6: 6+6+5+5+5+5, not 6×5+2): a narrow last tile would load
/// every row vector for only one or two multiply-adds.
fn tiles(nq: usize, qmax: usize) -> impl Iterator<Item = (usize, usize)> {
    let width = qmax.clamp(1, TILE_MAX);
    let count = nq.div_ceil(width);
    let base = nq.checked_div(count).unwrap_or(0);
    let wider = nq.checked_rem(count).unwrap_or(0);
    (0..count).map(move |t| (t * base + t.min(wider), base + usize::from(t < wider)))
}

/// Lays queries out tile by tile, interleaved within a tile: for each step of `w` elements,
/// the tile's queries follow one another. A tile's working set is then one contiguous block,
/// which stays in L1 while rows stream past (row-major queries, 4 KiB apart, would all compete
/// for the same L1 sets). One query packs to itself.
pub(crate) fn pack<T: Copy + Default>(
    queries: &[T],
    nq: usize,
    stride: usize,
    w: usize,
    qmax: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); nq * stride];
    for (q0, qn) in tiles(nq, qmax) {
        let block = &mut out[q0 * stride..(q0 + qn) * stride];
        for q in 0..qn {
            let src = &queries[(q0 + q) * stride..(q0 + q + 1) * stride];
            for (step, chunk) in src.chunks_exact(w).enumerate() {
                let at = step * qn * w + q * w;
                block[at..at + w].copy_from_slice(chunk);
            }
        }
    }
    out
}

/// Bytes of each vector per k-block when several query tiles share the rows: the tile's slices
/// of queries and rows then sit in L1 with room to spare, while per-pair accumulators wait in a
/// small buffer between blocks. (Storing and reloading an accumulator does not change its value,
/// so the arithmetic is the same as one sweep over the whole dimension.)
pub(crate) const KC_BYTES: usize = 1024;

/// # Safety
/// `a.rows` must be valid for `nrows * stride` reads, `a.queries` for `nq * stride` (packed by
/// [`pack`] with `K`'s shape), `a.out` for `nrows * nq` writes, `stride` a multiple of `K::W`,
/// and the CPU must support every instruction `K` uses.
#[inline(always)]
pub(crate) unsafe fn score<K: Kernel>(a: &Args<K::Row, K::Query, K::Out>) {
    let chunk = (CHUNK_BYTES / (a.stride * size_of::<K::Row>())).max(4);
    let kc = if a.nq <= K::QMAX.min(TILE_MAX) {
        // One query tile: nothing to share between tiles, sweep the whole dimension.
        a.stride
    } else {
        (KC_BYTES / size_of::<K::Row>()).max(K::W) / K::W * K::W
    };
    let mut accs: Vec<K::Acc> = Vec::new();
    if kc < a.stride {
        // SAFETY: zero() only needs the CPU features the caller guarantees.
        accs.resize(chunk * a.nq, unsafe { K::zero() });
    }
    let ntiles = tiles(a.nq, K::QMAX).count();
    let mut start = 0;
    while start < a.nrows {
        let len = chunk.min(a.nrows - start);
        // The next chunk is fetched into L2 a little at a time while this one is computed:
        // memory latency, not bandwidth, limits one core streaming on its own.
        let next = start + len;
        let next_len = chunk.min(a.nrows - next);
        let lines = next_len * a.stride * size_of::<K::Row>() / LINE;
        let calls = len.div_ceil(2) * ntiles * a.stride.div_ceil(kc);
        let mut pf = Prefetch {
            // Only a prefetch address (prefetches never fault): wrapping arithmetic, no bounds
            // claim needed.
            next: a.rows.wrapping_add(next.min(a.nrows) * a.stride),
            lines,
            per_call: if kc == a.stride && a.nq == 1 {
                0
            } else {
                lines.div_ceil(calls.max(1))
            },
            done: 0,
        };
        let mut k0 = 0;
        while k0 < a.stride {
            let k = Block {
                start: k0,
                end: (k0 + kc).min(a.stride),
                first: k0 == 0,
                last: k0 + kc >= a.stride,
                stream: kc == a.stride,
                accs: accs.as_mut_ptr(),
            };
            for (q0, qn) in tiles(a.nq, K::QMAX) {
                // SAFETY: rows start..start+len, queries q0..q0+qn, and (for split sweeps)
                // accumulators (row - start) * nq + q are in bounds.
                unsafe {
                    match qn {
                        1 => rows::<K, 1, 4>(a, start, len, q0, &k, &mut pf),
                        2 => rows::<K, 2, 4>(a, start, len, q0, &k, &mut pf),
                        3 => rows::<K, 3, 3>(a, start, len, q0, &k, &mut pf),
                        4 => rows::<K, 4, 2>(a, start, len, q0, &k, &mut pf),
                        5 => rows::<K, 5, 2>(a, start, len, q0, &k, &mut pf),
                        _ => rows::<K, 6, 2>(a, start, len, q0, &k, &mut pf),
                    }
                }
            }
            k0 += kc;
        }
        start += len;
    }
}

const LINE: usize = 64;
/// How far ahead within a row the L1 prefetches reach.
const AHEAD_BYTES: usize = 256;

/// Progress of the L2 prefetch of the next chunk.
struct Prefetch<T> {
    next: *const T,
    lines: usize,
    per_call: usize,
    done: usize,
}

impl<T> Prefetch<T> {
    /// Issues the next share of the next chunk's prefetches.
    #[inline(always)]
    unsafe fn step<K: Kernel<Row = T>>(&mut self) {
        let end = (self.done + self.per_call).min(self.lines);
        while self.done < end {
            // SAFETY: prefetches never fault and never dereference; the address is computed with
            // wrapping arithmetic, so it is not UB even where it would leave the allocation.
            unsafe { K::prefetch_l2(self.next.wrapping_byte_add(self.done * LINE)) };
            self.done += 1;
        }
    }
}

/// One k-block of a sweep.
struct Block<A> {
    start: usize,
    end: usize,
    /// Accumulators start at zero (else they are reloaded from `accs`).
    first: bool,
    /// Accumulators are reduced into the output (else they are saved to `accs`).
    last: bool,
    /// One sweep over each row (a single query tile): the rows are read once, as a stream, and
    /// each tile fetches the next tile's rows into L2 as it goes. Every row is its own 4 KiB
    /// page at 1024 dimensions, and the hardware prefetchers stop at page boundaries, so
    /// without this every row would start with demand misses.
    stream: bool,
    /// Saved accumulators of the current row chunk: `[row_in_chunk * nq + q]`.
    accs: *mut A,
}

/// # Safety
/// As [`score`], for rows `start..start + len` and queries `q0..q0 + Q`.
#[inline(always)]
unsafe fn rows<K: Kernel, const Q: usize, const R: usize>(
    a: &Args<K::Row, K::Query, K::Out>,
    start: usize,
    len: usize,
    q0: usize,
    k: &Block<K::Acc>,
    pf: &mut Prefetch<K::Row>,
) {
    let mut r = 0;
    // SAFETY (whole block): every tile stays within rows start..start+len, queries q0..q0+Q.
    unsafe {
        let queries = a.queries.add(q0 * a.stride);
        while r + R <= len {
            let row = start + r;
            pf.step::<K>();
            tile::<K, R, Q>(
                a.rows.add(row * a.stride),
                a.stride,
                queries,
                a.out.add(row * a.nq + q0),
                a.nq,
                k,
                // Wrapping: with a whole sweep there are no accumulators (`accs` is an empty
                // Vec's dangling pointer) and the address is never used.
                k.accs.wrapping_add(r * a.nq + q0),
            );
            r += R;
        }
        while r < len {
            let row = start + r;
            pf.step::<K>();
            tile::<K, 1, Q>(
                a.rows.add(row * a.stride),
                a.stride,
                queries,
                a.out.add(row * a.nq + q0),
                a.nq,
                k,
                // Wrapping: with a whole sweep there are no accumulators (`accs` is an empty
                // Vec's dangling pointer) and the address is never used.
                k.accs.wrapping_add(r * a.nq + q0),
            );
            r += 1;
        }
    }
}

/// `R` rows × `Q` queries over one k-block, one accumulator per pair.
///
/// # Safety
/// `rows` valid for `R * stride` reads, `queries` for `Q * stride` (one packed tile), `out` for
/// writes at `r * nq + q` (r < R, q < Q), and unless the block is a whole sweep, `accs` for
/// reads and writes at the same offsets.
#[inline(always)]
unsafe fn tile<K: Kernel, const R: usize, const Q: usize>(
    rows: *const K::Row,
    stride: usize,
    queries: *const K::Query,
    out: *mut K::Out,
    nq: usize,
    block: &Block<K::Acc>,
    accs: *mut K::Acc,
) {
    // SAFETY (whole block): offsets stay below R * stride / Q * stride, see the contract above.
    unsafe {
        let mut acc = [[K::zero(); Q]; R];
        if !block.first {
            for (r, row) in acc.iter_mut().enumerate() {
                for (q, v) in row.iter_mut().enumerate() {
                    *v = accs.add(r * nq + q).read();
                }
            }
        }
        let mut k = block.start;
        while k < block.end {
            if (k * size_of::<K::Row>()).is_multiple_of(LINE) {
                // A few lines ahead in each row: L2 latency hides behind this tile's work.
                for r in 0..R {
                    // Wrapping arithmetic: at the end of the last row this address is past the
                    // matrix, which a prefetch may name but `add`/`byte_add` may not compute.
                    K::prefetch(
                        rows.wrapping_add(r * stride + k)
                            .wrapping_byte_add(AHEAD_BYTES),
                    );
                    if block.stream {
                        // The same line of the next tile's rows (past the end of the scan at
                        // the last tile: prefetches never fault).
                        K::prefetch_l2(rows.wrapping_add((R + r) * stride + k));
                    }
                }
            }
            let rv: [K::RowV; R] = std::array::from_fn(|r| K::load_row(rows.add(r * stride + k)));
            for q in 0..Q {
                let qv = K::load_query(queries.add(k * Q + q * K::W));
                for (accs, &row) in acc.iter_mut().zip(&rv) {
                    accs[q] = K::step(accs[q], row, qv);
                }
            }
            k += K::W;
        }
        for (r, row) in acc.iter().enumerate() {
            for (q, &v) in row.iter().enumerate() {
                if block.last {
                    out.add(r * nq + q).write(K::reduce(v));
                } else {
                    accs.add(r * nq + q).write(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_query_once_in_as_few_even_tiles_as_the_width_allows() {
        assert_eq!(
            tiles(32, 6).collect::<Vec<_>>(),
            [(0, 6), (6, 6), (12, 5), (17, 5), (22, 5), (27, 5)]
        );
        assert_eq!(tiles(1, 6).collect::<Vec<_>>(), [(0, 1)]);
        assert_eq!(tiles(0, 6).count(), 0);
        for nq in 0..100 {
            for qmax in 1..9 {
                let t: Vec<_> = tiles(nq, qmax).collect();
                let width = qmax.min(TILE_MAX);
                assert_eq!(t.len(), nq.div_ceil(width), "{nq} {qmax}");
                let mut next = 0;
                for &(q0, qn) in &t {
                    assert_eq!(q0, next, "{nq} {qmax}: {t:?}");
                    assert!((1..=width).contains(&qn), "{nq} {qmax}: {t:?}");
                    next += qn;
                }
                assert_eq!(next, nq);
                let (lo, hi) = t
                    .iter()
                    .fold((usize::MAX, 0), |(l, h), &(_, w)| (l.min(w), h.max(w)));
                assert!(t.is_empty() || hi - lo <= 1, "{nq} {qmax}: {t:?}");
            }
        }
    }
}
