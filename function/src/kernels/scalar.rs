//! Portable kernels: the fallback on CPUs without a supported vector unit, written in the same
//! shape as the vector kernels (16 independent f32 lanes, reduced pairwise).

use super::generic::{self, Args, Kernel};

/// 16 f32 lanes in plain arrays.
pub(crate) struct F32x16;

impl Kernel for F32x16 {
    type Row = f32;
    type Query = f32;
    type Out = f32;
    type Acc = [f32; 16];
    type RowV = [f32; 16];
    type QueryV = [f32; 16];
    const W: usize = 16;
    const QMAX: usize = 2;

    #[inline(always)]
    unsafe fn zero() -> Self::Acc {
        [0.0; 16]
    }
    #[inline(always)]
    unsafe fn load_row(p: *const f32) -> Self::RowV {
        // SAFETY: the caller guarantees 16 readable values at `p`.
        unsafe { p.cast::<[f32; 16]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const f32) -> Self::QueryV {
        // SAFETY: as above.
        unsafe { p.cast::<[f32; 16]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn step(mut acc: Self::Acc, row: Self::RowV, query: Self::QueryV) -> Self::Acc {
        for i in 0..16 {
            acc[i] += row[i] * query[i];
        }
        acc
    }
    #[inline(always)]
    unsafe fn reduce(acc: Self::Acc) -> f32 {
        let mut v = acc;
        let mut n = 16;
        while n > 1 {
            n /= 2;
            for i in 0..n {
                v[i] += v[i + n];
            }
        }
        v[0]
    }
}

/// 64 int8 lanes: stored rows are `value + 128` as u8, products are Σ (row+128)·query.
pub(crate) struct I8x64;

impl Kernel for I8x64 {
    type Row = u8;
    type Query = i8;
    type Out = i32;
    type Acc = i32;
    type RowV = [u8; 64];
    type QueryV = [i8; 64];
    const W: usize = 64;
    const QMAX: usize = 4;

    #[inline(always)]
    unsafe fn zero() -> i32 {
        0
    }
    #[inline(always)]
    unsafe fn load_row(p: *const u8) -> Self::RowV {
        // SAFETY: the caller guarantees 64 readable bytes at `p`.
        unsafe { p.cast::<[u8; 64]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const i8) -> Self::QueryV {
        // SAFETY: as above.
        unsafe { p.cast::<[i8; 64]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn step(acc: i32, row: Self::RowV, query: Self::QueryV) -> i32 {
        let mut sum = 0i32;
        for i in 0..64 {
            sum += i32::from(row[i]) * i32::from(query[i]);
        }
        acc + sum
    }
    #[inline(always)]
    unsafe fn reduce(acc: i32) -> i32 {
        acc
    }
}

/// # Safety
/// `a` satisfies [`generic::score`]'s contract.
pub(super) unsafe fn score_f32(a: &Args<f32, f32, f32>) {
    // SAFETY: forwarded contract; plain Rust needs no CPU feature.
    unsafe { generic::score::<F32x16>(a) }
}

/// # Safety
/// `a` satisfies [`generic::score`]'s contract.
pub(super) unsafe fn score_i8(a: &Args<u8, i8, i32>) {
    // SAFETY: forwarded contract; plain Rust needs no CPU feature.
    unsafe { generic::score::<I8x64>(a) }
}
