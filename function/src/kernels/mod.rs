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

/// How a kernel consumes queries: elements per step and widest query tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    w: usize,
    qmax: usize,
}

impl Shape {
    const fn of<K: generic::Kernel>() -> Self {
        Self {
            w: K::W,
            qmax: K::QMAX,
        }
    }
}

/// Queries laid out for one kernel (see [`generic::pack`]).
#[derive(Clone, Debug)]
pub(crate) struct Packed<T> {
    data: Vec<T>,
    nq: usize,
    stride: usize,
    shape: Shape,
}

type F32Fn = unsafe fn(&generic::Args<f32, f32, f32>);
type I8Fn = unsafe fn(&generic::Args<u8, i8, i32>);

/// The f32 kernel for `level`, or the scalar one when the CPU lacks it. Only returns a kernel
/// whose instructions the CPU supports (checked here, at run time).
fn f32_kernel(level: F32Level) -> (Shape, F32Fn) {
    match level {
        #[cfg(target_arch = "x86_64")]
        F32Level::Avx2Fma
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma") =>
        {
            (x86::F32_AVX2, x86::score_f32_avx2)
        }
        #[cfg(target_arch = "x86_64")]
        F32Level::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
            (x86::F32_AVX512, x86::score_f32_avx512)
        }
        #[cfg(target_arch = "aarch64")]
        F32Level::Neon if std::arch::is_aarch64_feature_detected!("neon") => {
            (neon::F32_NEON, neon::score_f32_neon)
        }
        _ => (Shape::of::<scalar::F32x16>(), scalar::score_f32),
    }
}

/// The int8 kernel for `level` (as [`f32_kernel`]), and whether its products carry the +128
/// offset of the stored rows: Σ (row+128)·query on x86 and scalar, Σ row·query on aarch64
/// (which flips the stored bytes back to signed before multiplying).
fn i8_kernel(level: I8Level) -> (Shape, I8Fn, bool) {
    match level {
        #[cfg(target_arch = "x86_64")]
        I8Level::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
            (x86::I8_AVX2, x86::score_i8_avx2, true)
        }
        #[cfg(target_arch = "x86_64")]
        I8Level::AvxVnni
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("avxvnni") =>
        {
            (x86::I8_AVXVNNI, x86::score_i8_avxvnni, true)
        }
        #[cfg(target_arch = "x86_64")]
        I8Level::Avx512Vnni
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni") =>
        {
            (x86::I8_AVX512VNNI, x86::score_i8_avx512vnni, true)
        }
        #[cfg(target_arch = "aarch64")]
        I8Level::Neon if std::arch::is_aarch64_feature_detected!("neon") => {
            (neon::I8_NEON, neon::score_i8_neon, false)
        }
        #[cfg(target_arch = "aarch64")]
        I8Level::NeonDot if std::arch::is_aarch64_feature_detected!("dotprod") => {
            (neon::I8_NEONDOT, neon::score_i8_neondot, false)
        }
        _ => (Shape::of::<scalar::I8x64>(), scalar::score_i8, true),
    }
}

/// Packs `nq` queries of `stride` values for the f32 kernel of `level`.
pub(crate) fn pack_f32(level: F32Level, queries: &[f32], nq: usize, stride: usize) -> Packed<f32> {
    let (shape, _) = f32_kernel(level);
    assert!(
        stride.is_multiple_of(F32_ALIGN),
        "stride {stride} not padded"
    );
    assert!(queries.len() >= nq * stride, "queries slice too short");
    Packed {
        data: generic::pack(queries, nq, stride, shape.w, shape.qmax),
        nq,
        stride,
        shape,
    }
}

/// Packs `nq` int8 queries of `stride` values for the int8 kernel of `level`.
pub(crate) fn pack_i8(level: I8Level, queries: &[i8], nq: usize, stride: usize) -> Packed<i8> {
    let (shape, _, _) = i8_kernel(level);
    assert!(
        stride.is_multiple_of(I8_ALIGN),
        "stride {stride} not padded"
    );
    assert!(queries.len() >= nq * stride, "queries slice too short");
    Packed {
        data: generic::pack(queries, nq, stride, shape.w, shape.qmax),
        nq,
        stride,
        shape,
    }
}

/// Scores `rows` (`nrows` rows of `stride` values) against packed `queries` into
/// `out[r * nq + q]`.
///
/// # Panics
/// If a slice is too short, or the queries were packed for another stride or kernel: internal
/// callers size every buffer from the catalog, so that is a bug, and a panic beats reading out
/// of bounds.
pub(crate) fn score_f32(
    level: F32Level,
    rows: &[f32],
    nrows: usize,
    stride: usize,
    queries: &Packed<f32>,
    out: &mut [f32],
) {
    let (shape, kernel) = f32_kernel(level);
    assert_eq!(shape, queries.shape, "queries packed for another kernel");
    assert_eq!(stride, queries.stride, "queries packed for another stride");
    assert!(rows.len() >= nrows * stride, "rows slice too short");
    assert!(out.len() >= nrows * queries.nq, "output slice too short");
    if nrows == 0 || queries.nq == 0 {
        return;
    }
    let args = generic::Args {
        rows: rows.as_ptr(),
        nrows,
        stride,
        queries: queries.data.as_ptr(),
        nq: queries.nq,
        out: out.as_mut_ptr(),
    };
    // SAFETY: `f32_kernel` only returns kernels the CPU supports; the asserts above (and
    // `pack_f32`'s) bound every pointer the kernel reads or writes, and the stride is padded to
    // a multiple of every kernel's step.
    unsafe { kernel(&args) }
}

/// Scores int8 `rows` (stored as `value + 128` in u8) against packed int8 `queries` into raw
/// `i32` products `out[r * nq + q]`. Returns `true` when the products are Σ (row+128)·query
/// (the caller subtracts 128·Σ query) and `false` when they are Σ row·query.
///
/// # Panics
/// As [`score_f32`].
pub(crate) fn score_i8(
    level: I8Level,
    rows: &[u8],
    nrows: usize,
    stride: usize,
    queries: &Packed<i8>,
    out: &mut [i32],
) -> bool {
    let (shape, kernel, offset) = i8_kernel(level);
    assert_eq!(shape, queries.shape, "queries packed for another kernel");
    assert_eq!(stride, queries.stride, "queries packed for another stride");
    assert!(rows.len() >= nrows * stride, "rows slice too short");
    assert!(out.len() >= nrows * queries.nq, "output slice too short");
    if nrows == 0 || queries.nq == 0 {
        return offset;
    }
    let args = generic::Args {
        rows: rows.as_ptr(),
        nrows,
        stride,
        queries: queries.data.as_ptr(),
        nq: queries.nq,
        out: out.as_mut_ptr(),
    };
    // SAFETY: as in `score_f32`.
    unsafe { kernel(&args) };
    offset
}

/// Every kernel this CPU (or Miri, see `scripts/miri`) runs against a plain loop, over shapes
/// that reach each path: one and several query tiles, split k-blocks (strides over
/// `KC_BYTES`), row tails shorter than a tile, and more than one L2 chunk of rows (the chunk
/// prefetch crosses into the next chunk and, at the last row, past the matrix).
#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: deterministic inputs without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
        fn i8(&mut self, max: i8) -> i8 {
            let span = 2 * i64::from(max) + 1;
            (((self.next() % span as u64) as i64) - i64::from(max)) as i8
        }
    }

    /// (rows, stride, queries) cases: small under Miri, which interprets every instruction.
    fn cases(align: usize, size: usize) -> Vec<(usize, usize, usize)> {
        // 17 queries: three tiles of the widest kernels, several of the narrowest.
        let mut cases = vec![(1, align, 1), (7, align, 3), (5, 2 * align, 17)];
        // A stride over KC_BYTES (split sweeps) and enough rows for two L2 chunks and a tail.
        let wide = generic::KC_BYTES / size + align;
        let rows = if cfg!(miri) {
            9
        } else {
            2 * generic::CHUNK_BYTES / (wide * size) + 3
        };
        cases.push((rows, wide, 1));
        cases.push((rows.min(40), wide, 7));
        cases
    }

    /// The levels a CI step requires (`LMI_REQUIRE_LEVELS=Neon,NeonDot`, as `scripts/test` sets
    /// under qemu), checked against `available`: the step cannot pass by testing only the scalar
    /// kernels on a machine (or emulator) that lacks the SIMD extension it was meant to cover.
    fn check_required<L: std::fmt::Debug>(available: &[L], all: &[&str]) {
        let required = std::env::var("LMI_REQUIRE_LEVELS").unwrap_or_default();
        let names: Vec<String> = available.iter().map(|l| format!("{l:?}")).collect();
        for want in required
            .split(',')
            .map(str::trim)
            .filter(|w| all.contains(w))
        {
            assert!(
                names.iter().any(|n| n == want),
                "LMI_REQUIRE_LEVELS asks for {want}, but only {names:?} are available here"
            );
        }
    }

    #[test]
    fn every_f32_level_scores_like_a_plain_loop() {
        let mut rng = Rng(7);
        check_required(
            &F32Level::available(),
            &["Scalar", "Avx2Fma", "Avx512", "Neon"],
        );
        // Under Miri with AVX2+FMA enabled (scripts/test), the generic tile code runs through the
        // AVX2 kernel, not only the scalar one.
        #[cfg(all(
            miri,
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        assert!(F32Level::available().contains(&F32Level::Avx2Fma));
        for level in F32Level::available() {
            for (nrows, stride, nq) in cases(F32_ALIGN, 4) {
                let rows: Vec<f32> = (0..nrows * stride).map(|_| rng.f32()).collect();
                let queries: Vec<f32> = (0..nq * stride).map(|_| rng.f32()).collect();
                let mut out = vec![f32::NAN; nrows * nq];
                let packed = pack_f32(level, &queries, nq, stride);
                score_f32(level, &rows, nrows, stride, &packed, &mut out);
                for r in 0..nrows {
                    for q in 0..nq {
                        let want: f64 = (0..stride)
                            .map(|k| {
                                f64::from(rows[r * stride + k]) * f64::from(queries[q * stride + k])
                            })
                            .sum();
                        let got = f64::from(out[r * nq + q]);
                        assert!(
                            (got - want).abs() <= 1e-4 * stride as f64,
                            "{level:?} rows {nrows} stride {stride} queries {nq}: \
                             ({r}, {q}) = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_i8_level_scores_exactly() {
        let mut rng = Rng(8);
        check_required(
            &I8Level::available(),
            &["Scalar", "Avx2", "AvxVnni", "Avx512Vnni", "Neon", "NeonDot"],
        );
        for level in I8Level::available() {
            for (nrows, stride, nq) in cases(I8_ALIGN, 1) {
                let signed: Vec<i8> = (0..nrows * stride).map(|_| rng.i8(127)).collect();
                // Stored as value + 128 (see `score_i8`).
                let rows: Vec<u8> = signed.iter().map(|&v| (i16::from(v) + 128) as u8).collect();
                let max = level.query_max();
                let queries: Vec<i8> = (0..nq * stride).map(|_| rng.i8(max)).collect();
                let mut out = vec![0i32; nrows * nq];
                let packed = pack_i8(level, &queries, nq, stride);
                let offset = score_i8(level, &rows, nrows, stride, &packed, &mut out);
                for r in 0..nrows {
                    for q in 0..nq {
                        let query = &queries[q * stride..(q + 1) * stride];
                        let row = &signed[r * stride..(r + 1) * stride];
                        let mut want: i32 = row
                            .iter()
                            .zip(query)
                            .map(|(&a, &b)| i32::from(a) * i32::from(b))
                            .sum();
                        if offset {
                            want += 128 * query.iter().map(|&b| i32::from(b)).sum::<i32>();
                        }
                        assert_eq!(
                            out[r * nq + q],
                            want,
                            "{level:?} rows {nrows} stride {stride} queries {nq}: ({r}, {q})"
                        );
                    }
                }
            }
        }
    }
}
