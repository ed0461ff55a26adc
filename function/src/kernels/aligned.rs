//! A zero-initialised, page-aligned buffer for the catalog matrices.
//!
//! `Vec<f32>` only promises 4-byte alignment; rows padded to 64 bytes only start on cache lines
//! if the buffer does. The buffer is an anonymous memory mapping: page aligned, zero without a
//! memset (pages are mapped lazily and first touched by the loader that fills them, so resident
//! memory grows with the rows written, not with a second pass), and on Linux advised onto
//! transparent huge pages. A scan reads every row once; with 4 KiB pages every 4 KiB row of a
//! 1024-dimension catalog is its own TLB miss, with 2 MiB pages one miss covers 512 rows. (numpy
//! advises its large arrays the same way, which is part of why its matrix-vector product scans
//! faster than a plain heap buffer.)

use memmap2::MmapMut;

/// Element types for which all-zero bytes are a valid value.
pub(crate) trait Zeroable: Copy + Send + Sync + 'static {}
impl Zeroable for f32 {}
impl Zeroable for u8 {}

/// A fixed-length, page-aligned (so 64-byte aligned), zero-initialised array.
pub(crate) struct AlignedVec<T: Zeroable> {
    /// The mapping owning the memory (`None` when empty).
    map: Option<MmapMut>,
    len: usize,
    _elem: std::marker::PhantomData<T>,
}

impl<T: Zeroable> AlignedVec<T> {
    /// Maps `len` zeroed elements; `None` if the size overflows or memory is exhausted.
    pub(crate) fn zeroed(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(size_of::<T>())?;
        let map = if bytes == 0 {
            None
        } else {
            let map = MmapMut::map_anon(bytes).ok()?;
            // (Miri has no madvise: it checks the kernels' memory accesses, not page advice.)
            #[cfg(all(target_os = "linux", not(miri)))]
            if bytes >= HUGE_PAGE {
                // Best effort: a kernel without transparent huge pages (or with them off)
                // refuses or ignores the advice, and the buffer works the same on 4 KiB pages.
                let _ = map.advise(memmap2::Advice::HugePage);
            }
            Some(map)
        };
        Some(Self {
            map,
            len,
            _elem: std::marker::PhantomData,
        })
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match &self.map {
            // SAFETY: the mapping is page aligned (so aligned for T), `len * size_of::<T>()`
            // bytes long, zero-initialised or written through `as_mut_slice`, and all-zero bytes
            // are a valid T (`Zeroable`); it lives as long as self.
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<T>(), self.len) },
            None => &[],
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.map {
            // SAFETY: as above, and &mut self guarantees exclusive access.
            Some(map) => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), self.len)
            },
            None => &mut [],
        }
    }

    /// Bytes held by the allocation.
    pub(crate) fn bytes(&self) -> usize {
        self.len * size_of::<T>()
    }
}

/// Buffers at least this large are advised onto huge pages.
#[cfg(all(target_os = "linux", not(miri)))]
const HUGE_PAGE: usize = 2 << 20;

impl<T: Zeroable> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedVec")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_cache_line_aligned_and_writable() {
        // (Miri checks every element access one by one: a smaller "large" buffer there.)
        let large = if cfg!(miri) {
            (64 << 10) + 3
        } else {
            (4 << 20) + 3
        };
        for len in [1usize, 17, 4096, large] {
            let mut v = AlignedVec::<f32>::zeroed(len).unwrap();
            assert_eq!(v.as_slice().len(), len);
            assert_eq!(v.as_slice().as_ptr() as usize % 64, 0, "{len}");
            assert!(v.as_slice().iter().all(|&x| x == 0.0), "{len}");
            v.as_mut_slice()[0] = -2.0;
            v.as_mut_slice()[len - 1] = 1.5;
            assert_eq!(v.as_slice()[len - 1], 1.5);
            assert_eq!(v.as_slice()[0], if len == 1 { 1.5 } else { -2.0 });
            assert_eq!(v.bytes(), len * 4);
        }
        let empty = AlignedVec::<u8>::zeroed(0).unwrap();
        assert!(empty.as_slice().is_empty());
        assert!(AlignedVec::<f32>::zeroed(usize::MAX).is_none());
    }
}
