//! aarch64 kernels: NEON for f32; NEON widening multiplies and `sdot` for int8.

use std::arch::aarch64::*;

use super::Shape;
use super::generic::{self, Args, Kernel};

pub(super) const F32_NEON: Shape = Shape::of::<F32Neon>();
pub(super) const I8_NEON: Shape = Shape::of::<I8Neon>();
pub(super) const I8_NEONDOT: Shape = Shape::of::<I8NeonDot>();

struct F32Neon;

impl Kernel for F32Neon {
    type Row = f32;
    type Query = f32;
    type Out = f32;
    type Acc = float32x4_t;
    type RowV = float32x4_t;
    type QueryV = float32x4_t;
    const W: usize = 4;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        // SAFETY: only called from the `neon` entry point below.
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const f32) -> float32x4_t {
        // SAFETY: the caller guarantees 4 readable values at `p`.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const f32) -> float32x4_t {
        // SAFETY: as above.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn step(acc: float32x4_t, row: float32x4_t, query: float32x4_t) -> float32x4_t {
        // SAFETY: only called from the `neon` entry point below.
        unsafe { vfmaq_f32(acc, row, query) }
    }
    #[inline(always)]
    unsafe fn reduce(acc: float32x4_t) -> f32 {
        // SAFETY: only called from the `neon` entry point below.
        unsafe { vaddvq_f32(acc) }
    }
}

/// Stored rows are `value + 128`; flipping the top bit gives the signed value back.
#[inline(always)]
unsafe fn load_signed(p: *const u8) -> int8x16_t {
    // SAFETY: the caller guarantees 16 readable bytes at `p` and NEON support.
    unsafe { vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), vdupq_n_u8(0x80))) }
}

struct I8Neon;

impl Kernel for I8Neon {
    type Row = u8;
    type Query = i8;
    type Out = i32;
    type Acc = int32x4_t;
    type RowV = int8x16_t;
    type QueryV = int8x16_t;
    const W: usize = 16;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> int32x4_t {
        // SAFETY: only called from the `neon` entry point below.
        unsafe { vdupq_n_s32(0) }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const u8) -> int8x16_t {
        // SAFETY: forwarded.
        unsafe { load_signed(p) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const i8) -> int8x16_t {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        unsafe { vld1q_s8(p) }
    }
    #[inline(always)]
    unsafe fn step(acc: int32x4_t, row: int8x16_t, query: int8x16_t) -> int32x4_t {
        // SAFETY: only called from the `neon` entry point below. i8·i8 products fit i16.
        unsafe {
            let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(row), vget_low_s8(query)));
            vpadalq_s16(acc, vmull_high_s8(row, query))
        }
    }
    #[inline(always)]
    unsafe fn reduce(acc: int32x4_t) -> i32 {
        // SAFETY: only called from the `neon` entry point below.
        unsafe { vaddvq_s32(acc) }
    }
}

struct I8NeonDot;

impl Kernel for I8NeonDot {
    type Row = u8;
    type Query = i8;
    type Out = i32;
    type Acc = int32x4_t;
    type RowV = int8x16_t;
    type QueryV = int8x16_t;
    const W: usize = 16;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> int32x4_t {
        // SAFETY: only called from the `neon,dotprod` entry point below.
        unsafe { vdupq_n_s32(0) }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const u8) -> int8x16_t {
        // SAFETY: forwarded.
        unsafe { load_signed(p) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const i8) -> int8x16_t {
        // SAFETY: the caller guarantees 16 readable bytes at `p`.
        unsafe { vld1q_s8(p) }
    }
    #[inline(always)]
    unsafe fn step(acc: int32x4_t, row: int8x16_t, query: int8x16_t) -> int32x4_t {
        // `vdotq_s32` is not stable yet; the instruction is, so it is written out.
        let mut acc = acc;
        // SAFETY: only called from the `neon,dotprod` entry point below; `sdot` reads and
        // writes registers only.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {row:v}.16b, {query:v}.16b",
                acc = inout(vreg) acc,
                row = in(vreg) row,
                query = in(vreg) query,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }
    #[inline(always)]
    unsafe fn reduce(acc: int32x4_t) -> i32 {
        // SAFETY: only called from the `neon,dotprod` entry point below.
        unsafe { vaddvq_s32(acc) }
    }
}

/// # Safety
/// The CPU supports NEON; `a` satisfies [`generic::score`]'s contract.
#[target_feature(enable = "neon")]
pub(super) unsafe fn score_f32_neon(a: &Args<f32, f32, f32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<F32Neon>(a) }
}

/// # Safety
/// The CPU supports NEON; `a` satisfies [`generic::score`]'s contract.
#[target_feature(enable = "neon")]
pub(super) unsafe fn score_i8_neon(a: &Args<u8, i8, i32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<I8Neon>(a) }
}

/// # Safety
/// The CPU supports NEON and the dot-product extension; `a` satisfies [`generic::score`]'s
/// contract.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn score_i8_neondot(a: &Args<u8, i8, i32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<I8NeonDot>(a) }
}
