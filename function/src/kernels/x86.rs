//! x86-64 kernels: AVX2+FMA and AVX-512F for f32; AVX2, AVX-VNNI and AVX-512 VNNI for int8.

use std::arch::x86_64::*;

use super::Shape;
use super::generic::{self, Args, Kernel};

pub(super) const F32_AVX2: Shape = Shape::of::<F32Avx2>();
pub(super) const F32_AVX512: Shape = Shape::of::<F32Avx512>();
pub(super) const I8_AVX2: Shape = Shape::of::<I8Avx2>();
pub(super) const I8_AVXVNNI: Shape = Shape::of::<I8AvxVnni>();
pub(super) const I8_AVX512VNNI: Shape = Shape::of::<I8Avx512Vnni>();

struct F32Avx2;

impl Kernel for F32Avx2 {
    type Row = f32;
    type Query = f32;
    type Out = f32;
    type Acc = __m256;
    type RowV = __m256;
    type QueryV = __m256;
    const W: usize = 8;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: only called from entry points that enable the needed features.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values at `p`.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const f32) -> __m256 {
        // SAFETY: as above.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn step(acc: __m256, row: __m256, query: __m256) -> __m256 {
        // SAFETY: only called from the `avx2,fma` entry point below.
        unsafe { _mm256_fmadd_ps(row, query, acc) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: *const f32) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn reduce(acc: __m256) -> f32 {
        // SAFETY: only called from the `avx2,fma` entry point below.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
}

struct F32Avx512;

impl Kernel for F32Avx512 {
    type Row = f32;
    type Query = f32;
    type Out = f32;
    type Acc = __m512;
    type RowV = __m512;
    type QueryV = __m512;
    const W: usize = 16;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: only called from entry points that enable the needed features.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable values at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const f32) -> __m512 {
        // SAFETY: as above.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn step(acc: __m512, row: __m512, query: __m512) -> __m512 {
        // SAFETY: only called from the `avx512f` entry point below.
        unsafe { _mm512_fmadd_ps(row, query, acc) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: *const f32) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn reduce(acc: __m512) -> f32 {
        // SAFETY: only called from the `avx512f` entry point below.
        unsafe { _mm512_reduce_add_ps(acc) }
    }
}

struct I8Avx2;

impl Kernel for I8Avx2 {
    type Row = u8;
    type Query = i8;
    type Out = i32;
    type Acc = __m256i;
    type RowV = __m256i;
    type QueryV = __m256i;
    const W: usize = 32;
    // Each step needs a temporary and the constant of ones besides the accumulators.
    const QMAX: usize = 5;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: only called from entry points that enable the needed features.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 32 readable bytes at `p`.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const i8) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn step(acc: __m256i, row: __m256i, query: __m256i) -> __m256i {
        // SAFETY: only called from the `avx2` entry point below. Rows are ≤ 255 and queries are
        // quantised to ±63, so the i16 pair sums of vpmaddubsw (≤ 2·255·63) never saturate.
        unsafe {
            let pairs = _mm256_maddubs_epi16(row, query);
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: *const u8) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn reduce(acc: __m256i) -> i32 {
        // SAFETY: only called from the `avx2` entry points below.
        unsafe { hsum_epi32_256(acc) }
    }
}

struct I8AvxVnni;

impl Kernel for I8AvxVnni {
    type Row = u8;
    type Query = i8;
    type Out = i32;
    type Acc = __m256i;
    type RowV = __m256i;
    type QueryV = __m256i;
    const W: usize = 32;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: only called from entry points that enable the needed features.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 32 readable bytes at `p`.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const i8) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline(always)]
    unsafe fn step(acc: __m256i, row: __m256i, query: __m256i) -> __m256i {
        // SAFETY: only called from the `avx2,avxvnni` entry point below.
        unsafe { _mm256_dpbusd_avx_epi32(acc, row, query) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: *const u8) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn reduce(acc: __m256i) -> i32 {
        // SAFETY: only called from the `avx2,avxvnni` entry point below.
        unsafe { hsum_epi32_256(acc) }
    }
}

struct I8Avx512Vnni;

impl Kernel for I8Avx512Vnni {
    type Row = u8;
    type Query = i8;
    type Out = i32;
    type Acc = __m512i;
    type RowV = __m512i;
    type QueryV = __m512i;
    const W: usize = 64;
    const QMAX: usize = 6;

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: only called from entry points that enable the needed features.
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn load_row(p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes at `p`.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_query(p: *const i8) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn step(acc: __m512i, row: __m512i, query: __m512i) -> __m512i {
        // SAFETY: only called from the `avx512f,avx512bw,avx512vnni` entry point below.
        unsafe { _mm512_dpbusd_epi32(acc, row, query) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn prefetch_l2(p: *const u8) {
        // SAFETY: prefetching never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
    #[inline(always)]
    unsafe fn reduce(acc: __m512i) -> i32 {
        // SAFETY: only called from the `avx512f,avx512bw,avx512vnni` entry point below.
        unsafe { _mm512_reduce_add_epi32(acc) }
    }
}

#[inline(always)]
unsafe fn hsum_epi32_256(v: __m256i) -> i32 {
    // SAFETY: only called from `avx2` entry points.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// # Safety
/// The CPU supports AVX2 and FMA; `a` satisfies [`generic::score`]'s contract.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn score_f32_avx2(a: &Args<f32, f32, f32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<F32Avx2>(a) }
}

/// # Safety
/// The CPU supports AVX-512F; `a` satisfies [`generic::score`]'s contract.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn score_f32_avx512(a: &Args<f32, f32, f32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<F32Avx512>(a) }
}

/// # Safety
/// The CPU supports AVX2; `a` satisfies [`generic::score`]'s contract. (Queries must lie
/// within ±63 for correct sums: saturation is wrong, not unsound.)
#[target_feature(enable = "avx2")]
pub(super) unsafe fn score_i8_avx2(a: &Args<u8, i8, i32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<I8Avx2>(a) }
}

/// # Safety
/// The CPU supports AVX2 and AVX-VNNI; `a` satisfies [`generic::score`]'s contract.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn score_i8_avxvnni(a: &Args<u8, i8, i32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<I8AvxVnni>(a) }
}

/// # Safety
/// The CPU supports AVX-512F, AVX-512BW and AVX-512 VNNI; `a` satisfies [`generic::score`]'s
/// contract.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn score_i8_avx512vnni(a: &Args<u8, i8, i32>) {
    // SAFETY: forwarded contract.
    unsafe { generic::score::<I8Avx512Vnni>(a) }
}
