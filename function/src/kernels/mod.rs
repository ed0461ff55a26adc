//! SIMD scoring kernels: inner products between catalog rows and a batch of queries.
//!
//! This is the only module allowed to use `unsafe`: the CPU-specific kernels are
//! `#[target_feature]` functions, callable only after runtime feature detection, and the aligned
//! matrix buffer is one raw allocation. Everything outside sees safe functions that check slice
//! lengths before entering a kernel.
//!
//! Arithmetic contract: for one (row, query) pair every f32 kernel keeps one accumulator vector
//! of the level's width, walks the dimension in order, and reduces the accumulator the same way
//! whatever the tile shape. So a score does not depend on how many queries share the pass or
//! where a row falls in a tile: one-by-one and coalesced searches give bit-identical scores.
//! (Different levels may differ in the last bits; an engine uses one level for its lifetime.)
//! The int8 kernels are exact integer arithmetic.
#![allow(unsafe_code)]

mod aligned;
mod generic;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use aligned::AlignedVec;

/// Row strides are padded to this many f32 values (64 bytes), so every row starts on a cache
/// line and the kernels never need a tail loop: padding is zero and adds nothing to a product.
pub(crate) const F32_ALIGN: usize = 16;
/// Row strides of int8 matrices are padded to this many bytes.
pub(crate) const I8_ALIGN: usize = 64;

/// The instruction set an engine scores f32 vectors with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum F32Level {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 with FMA (8 lanes).
    Avx2Fma,
    /// x86-64 AVX-512F (16 lanes).
    Avx512,
    /// aarch64 Advanced SIMD (4 lanes).
    Neon,
}

/// The instruction set an engine scores int8 vectors with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum I8Level {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 `vpmaddubsw` (queries quantised to ±63 so pair sums cannot saturate).
    Avx2,
    /// x86-64 AVX-VNNI `vpdpbusd` on 256-bit registers.
    AvxVnni,
    /// x86-64 AVX-512 VNNI `vpdpbusd` on 512-bit registers.
    Avx512Vnni,
    /// aarch64 Advanced SIMD widening multiplies.
    Neon,
    /// aarch64 `sdot` (the dot-product extension, Graviton 2 and later).
    NeonDot,
}

impl F32Level {
    /// The best level this CPU supports.
    pub fn detect() -> Self {
        Self::available().into_iter().last().unwrap_or(Self::Scalar)
    }

    /// Every level this CPU supports, weakest first.
    pub fn available() -> Vec<Self> {
        let mut levels = vec![Self::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                levels.push(Self::Avx2Fma);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                levels.push(Self::Avx512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                levels.push(Self::Neon);
            }
        }
        levels
    }
}

impl I8Level {
    /// The best level this CPU supports.
    pub fn detect() -> Self {
        Self::available().into_iter().last().unwrap_or(Self::Scalar)
    }

    /// Every level this CPU supports, weakest first.
    pub fn available() -> Vec<Self> {
        let mut levels = vec![Self::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                levels.push(Self::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("avxvnni")
            {
                levels.push(Self::AvxVnni);
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                levels.push(Self::Avx512Vnni);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                levels.push(Self::Neon);
            }
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                levels.push(Self::NeonDot);
            }
        }
        levels
    }

    /// Largest magnitude a quantised query component may take at this level.
    pub(crate) fn query_max(self) -> i8 {
        match self {
            // u8 (≤ 255) × i8 pairs are summed into i16 by vpmaddubsw: 2·255·63 < 2^15.
            Self::Avx2 => 63,
            _ => 127,
        }
    }
}

/// Scores `rows` (`nrows` rows of `stride` values) against `queries` (`nq` rows of `stride`
/// values) into `out[r * nq + q]`.
///
/// # Panics
/// If a slice is too short or `stride` is not a multiple of [`F32_ALIGN`]: internal callers size
/// every buffer from the catalog, so that is a bug, and a panic beats reading out of bounds.
pub(crate) fn score_f32(
    level: F32Level,
    rows: &[f32],
    nrows: usize,
    stride: usize,
    queries: &[f32],
    nq: usize,
    out: &mut [f32],
) {
    assert!(
        stride.is_multiple_of(F32_ALIGN),
        "stride {stride} not padded"
    );
    assert!(rows.len() >= nrows * stride, "rows slice too short");
    assert!(queries.len() >= nq * stride, "queries slice too short");
    assert!(out.len() >= nrows * nq, "output slice too short");
    if nrows == 0 || nq == 0 {
        return;
    }
    let args = generic::Args {
        rows: rows.as_ptr(),
        nrows,
        stride,
        queries: queries.as_ptr(),
        nq,
        out: out.as_mut_ptr(),
    };
    match level {
        #[cfg(target_arch = "x86_64")]
        F32Level::Avx2Fma if avx2_fma() => {
            // SAFETY: the CPU has AVX2 and FMA (checked just now); the asserts above bound every
            // pointer the kernel reads or writes.
            unsafe { x86::score_f32_avx2(&args) }
        }
        #[cfg(target_arch = "x86_64")]
        F32Level::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
            // SAFETY: as above, for AVX-512F.
            unsafe { x86::score_f32_avx512(&args) }
        }
        #[cfg(target_arch = "aarch64")]
        F32Level::Neon if std::arch::is_aarch64_feature_detected!("neon") => {
            // SAFETY: as above, for NEON.
            unsafe { neon::score_f32_neon(&args) }
        }
        // SAFETY: the asserts above bound every pointer the kernel reads or writes.
        _ => unsafe { generic::score::<scalar::F32x16>(&args) },
    }
}

/// Scores int8 `rows` (stored as `value + 128` in u8) against int8 `queries` into raw `i32`
/// products `out[r * nq + q]`. Returns `true` when the products are Σ (row+128)·query (x86
/// levels and scalar: the caller subtracts 128·Σ query) and `false` when they are Σ row·query
/// (aarch64 levels flip the stored bytes back to signed before multiplying).
///
/// # Panics
/// As [`score_f32`], with [`I8_ALIGN`].
pub(crate) fn score_i8(
    level: I8Level,
    rows: &[u8],
    nrows: usize,
    stride: usize,
    queries: &[i8],
    nq: usize,
    out: &mut [i32],
) -> bool {
    assert!(
        stride.is_multiple_of(I8_ALIGN),
        "stride {stride} not padded"
    );
    assert!(rows.len() >= nrows * stride, "rows slice too short");
    assert!(queries.len() >= nq * stride, "queries slice too short");
    assert!(out.len() >= nrows * nq, "output slice too short");
    if nrows == 0 || nq == 0 {
        return true;
    }
    let args = generic::Args {
        rows: rows.as_ptr(),
        nrows,
        stride,
        queries: queries.as_ptr(),
        nq,
        out: out.as_mut_ptr(),
    };
    match level {
        #[cfg(target_arch = "x86_64")]
        I8Level::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
            // SAFETY: the CPU has AVX2; the asserts above bound every pointer.
            unsafe { x86::score_i8_avx2(&args) };
            true
        }
        #[cfg(target_arch = "x86_64")]
        I8Level::AvxVnni
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("avxvnni") =>
        {
            // SAFETY: the CPU has AVX2 and AVX-VNNI; the asserts above bound every pointer.
            unsafe { x86::score_i8_avxvnni(&args) };
            true
        }
        #[cfg(target_arch = "x86_64")]
        I8Level::Avx512Vnni
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni") =>
        {
            // SAFETY: the CPU has AVX-512F/BW/VNNI; the asserts above bound every pointer.
            unsafe { x86::score_i8_avx512vnni(&args) };
            true
        }
        #[cfg(target_arch = "aarch64")]
        I8Level::Neon if std::arch::is_aarch64_feature_detected!("neon") => {
            // SAFETY: the CPU has NEON; the asserts above bound every pointer.
            unsafe { neon::score_i8_neon(&args) };
            false
        }
        #[cfg(target_arch = "aarch64")]
        I8Level::NeonDot if std::arch::is_aarch64_feature_detected!("dotprod") => {
            // SAFETY: the CPU has the dot-product extension; the asserts above bound every pointer.
            unsafe { neon::score_i8_neondot(&args) };
            false
        }
        _ => {
            // SAFETY: the asserts above bound every pointer the kernel reads or writes.
            unsafe { generic::score::<scalar::I8x64>(&args) };
            true
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
