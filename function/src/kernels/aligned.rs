//! A zero-initialised, cache-line aligned buffer for the catalog matrices.
//!
//! `Vec<f32>` only promises 4-byte alignment; rows padded to 64 bytes only start on cache lines
//! if the buffer does. The allocation is made zeroed, so the pages of a large matrix are mapped
//! lazily and first touched by the loader that fills them.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// Element types for which all-zero bytes are a valid value.
pub(crate) trait Zeroable: Copy + Send + Sync + 'static {}
impl Zeroable for f32 {}
impl Zeroable for u8 {}

const ALIGN: usize = 64;

/// A fixed-length, 64-byte aligned, zero-initialised array.
pub(crate) struct AlignedVec<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: AlignedVec owns its allocation exclusively, like Vec<T>; T is Send + Sync.
unsafe impl<T: Zeroable> Send for AlignedVec<T> {}
// SAFETY: shared access only hands out &[T].
unsafe impl<T: Zeroable> Sync for AlignedVec<T> {}

impl<T: Zeroable> AlignedVec<T> {
    /// Allocates `len` zeroed elements; `None` if the size overflows or memory is exhausted.
    pub(crate) fn zeroed(len: usize) -> Option<Self> {
        if len == 0 {
            return Some(Self {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        let layout = Self::layout(len)?;
        // SAFETY: the layout has a non-zero size (len > 0, T is not zero-sized: f32 or u8).
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw.cast::<T>())?;
        Some(Self { ptr, len })
    }

    fn layout(len: usize) -> Option<Layout> {
        let size = len.checked_mul(size_of::<T>())?;
        Layout::from_size_align(size, ALIGN).ok()
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: ptr is valid for len initialised (zeroed or written) elements, aligned, and
        // owned by self; dangling-but-aligned for len == 0, which is allowed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Bytes held by the allocation.
    pub(crate) fn bytes(&self) -> usize {
        self.len * size_of::<T>()
    }
}

impl<T: Zeroable> Drop for AlignedVec<T> {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `zeroed` with this very layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl<T: Zeroable> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedVec")
            .field("len", &self.len)
            .finish()
    }
}
