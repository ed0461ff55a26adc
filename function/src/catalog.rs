//! The in-memory catalog: one contiguous, normalised, row-major matrix grouped by category,
//! plus ids, categories and payload columns for the results.
//!
//! Rows are ordered by category name, and by file order within a category, so a category filter
//! scans one contiguous block. Rows are padded to a multiple of 16 floats (64 bytes) so every
//! row starts on a cache line; the padding is zero.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::LoadError;
use crate::kernels::{AlignedVec, F32_ALIGN, I8_ALIGN};
use crate::payload::{Payload, PayloadValue};

/// How the catalog keeps its vectors for scanning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Storage {
    /// Exact float32 scan (the default).
    #[default]
    F32,
    /// Scan an int8 copy (a quarter of the bytes), then re-score the best candidates exactly
    /// with the float32 vectors, which are kept too: memory is 1.25× the float32 matrix.
    /// Results are exact whenever the true top k are among the candidates.
    Int8,
}

/// One category's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryBlock {
    /// The category name.
    pub name: Arc<str>,
    /// Its rows, a contiguous range.
    pub rows: Range<usize>,
}

/// Bytes held by a catalog's parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryUsage {
    /// The float32 matrix (rows × padded dimension × 4).
    pub f32_matrix: usize,
    /// The int8 matrix and its per-row scales (0 unless [`Storage::Int8`]).
    pub int8_matrix: usize,
    /// Ids, categories and the id index (an estimate).
    pub ids: usize,
    /// Payload columns as Arrow holds them.
    pub payload: usize,
}

impl MemoryUsage {
    /// Sum of the parts.
    pub fn total(&self) -> usize {
        self.f32_matrix + self.int8_matrix + self.ids + self.payload
    }
}

pub(crate) struct Int8Matrix {
    pub stride: usize,
    /// `round(v / scale) + 128` per value; padding is 128 (zero).
    pub data: AlignedVec<u8>,
    /// Per-row scale: value ≈ (stored - 128) × scale.
    pub scales: Vec<f32>,
}

/// A loaded catalog. Build one with [`Catalog::from_parquet_path`] and friends (see the `load`
/// module) or, for data already in memory, [`Catalog::from_rows`].
pub struct Catalog {
    pub(crate) dim: usize,
    pub(crate) stride: usize,
    pub(crate) vectors: AlignedVec<f32>,
    pub(crate) int8: Option<Int8Matrix>,
    ids: Vec<Arc<str>>,
    by_id: HashMap<Arc<str>, u32>,
    pub(crate) blocks: Vec<CategoryBlock>,
    by_category: HashMap<Arc<str>, usize>,
    payload: Option<Payload>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("rows", &self.len())
            .field("dim", &self.dim)
            .field("categories", &self.blocks.len())
            .field("storage", &self.storage())
            .finish()
    }
}

impl Catalog {
    /// Builds a catalog from rows already in memory: `(id, category, vector)`.
    ///
    /// The same checks as the Parquet loader apply (dimension, finite, non-zero, unique ids);
    /// row numbers in errors count from 0 in iteration order.
    pub fn from_rows<I, Id, Cat, V>(rows: I, storage: Storage) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = (Id, Cat, V)>,
        Id: AsRef<str>,
        Cat: AsRef<str>,
        V: AsRef<[f32]>,
    {
        let mut ids = Vec::new();
        let mut categories = CategoryInterner::default();
        let mut cats = Vec::new();
        let mut vectors = Vec::new();
        for (id, cat, v) in rows {
            ids.push(Arc::<str>::from(id.as_ref()));
            cats.push(categories.intern(cat.as_ref()));
            vectors.push(v);
        }
        let layout = Layout::new(ids, cats, categories.names)?;
        let dim = vectors
            .first()
            .map(|v| v.as_ref().len())
            .ok_or(LoadError::Empty)?;
        let mut matrix = Matrix::new(layout.len(), dim)?;
        for (file_row, v) in vectors.iter().enumerate() {
            matrix.put(layout.row_of(file_row), file_row, v.as_ref())?;
        }
        layout.finish(matrix, storage, None)
    }

    /// Number of products.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the catalog has no products (never true for a loaded catalog).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How vectors are stored for scanning.
    pub fn storage(&self) -> Storage {
        if self.int8.is_some() {
            Storage::Int8
        } else {
            Storage::F32
        }
    }

    /// Categories in row order (sorted by name), each with its contiguous rows.
    pub fn categories(&self) -> &[CategoryBlock] {
        &self.blocks
    }

    /// The rows of one category, if the catalog has it.
    pub fn category_rows(&self, name: &str) -> Option<Range<usize>> {
        self.by_category
            .get(name)
            .map(|&i| self.blocks[i].rows.clone())
    }

    /// The row holding product `id`.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).map(|&r| r as usize)
    }

    /// The id at `row`.
    ///
    /// # Panics
    /// If `row >= len()`.
    pub fn id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    pub(crate) fn id_arc(&self, row: usize) -> Arc<str> {
        Arc::clone(&self.ids[row])
    }

    /// The category of `row`.
    ///
    /// # Panics
    /// If `row >= len()`.
    pub fn category(&self, row: usize) -> &str {
        &self.blocks[self.block_of(row)].name
    }

    pub(crate) fn category_arc(&self, row: usize) -> Arc<str> {
        Arc::clone(&self.blocks[self.block_of(row)].name)
    }

    fn block_of(&self, row: usize) -> usize {
        assert!(row < self.len(), "row {row} out of range");
        self.blocks.partition_point(|b| b.rows.end <= row)
    }

    /// The normalised vector at `row` (unit length, `dim()` values).
    ///
    /// # Panics
    /// If `row >= len()`.
    pub fn vector(&self, row: usize) -> &[f32] {
        &self.padded(row)[..self.dim]
    }

    pub(crate) fn padded(&self, row: usize) -> &[f32] {
        &self.vectors.as_slice()[row * self.stride..(row + 1) * self.stride]
    }

    pub(crate) fn category_index(&self, name: &str) -> Option<usize> {
        self.by_category.get(name).copied()
    }

    /// Names of the payload columns kept with each product, in file order.
    pub fn payload_columns(&self) -> Vec<&str> {
        self.payload
            .as_ref()
            .map(Payload::names)
            .unwrap_or_default()
    }

    /// The payload of `row`: `(column, value)` for each payload column.
    ///
    /// # Panics
    /// If `row >= len()`.
    pub fn payload(&self, row: usize) -> Vec<(&str, PayloadValue<'_>)> {
        assert!(row < self.len(), "row {row} out of range");
        self.payload
            .as_ref()
            .map(|p| p.row(row))
            .unwrap_or_default()
    }

    /// Bytes held, by part. Compare `f32_matrix` with rows × dim × 4 for the padding overhead.
    pub fn memory(&self) -> MemoryUsage {
        let ids = self
            .ids
            .iter()
            .map(|id| id.len() + 16 + 8 + 24)
            .sum::<usize>()
            + self.blocks.len() * 64;
        MemoryUsage {
            f32_matrix: self.vectors.bytes(),
            int8_matrix: self
                .int8
                .as_ref()
                .map_or(0, |m| m.data.bytes() + m.scales.len() * 4),
            ids,
            payload: self.payload.as_ref().map_or(0, Payload::bytes),
        }
    }
}

/// Category names → dense indices, in first-seen order.
#[derive(Default)]
pub(crate) struct CategoryInterner {
    pub names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl CategoryInterner {
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.index.insert(name, i);
        i
    }
}

/// Where each file row goes: the category grouping, decided before any vector is read.
pub(crate) struct Layout {
    /// Catalog row of each file row.
    file_to_row: Vec<u32>,
    ids: Vec<Arc<str>>,
    by_id: HashMap<Arc<str>, u32>,
    blocks: Vec<CategoryBlock>,
}

impl Layout {
    /// `ids` and `cats` (indices into `names`) in file order.
    pub(crate) fn new(
        ids: Vec<Arc<str>>,
        cats: Vec<u32>,
        names: Vec<Arc<str>>,
    ) -> Result<Self, LoadError> {
        let n = ids.len();
        if n == 0 {
            return Err(LoadError::Empty);
        }
        if u32::try_from(n).is_err() || n == u32::MAX as usize {
            return Err(LoadError::TooManyRows(n));
        }
        let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (row, id) in ids.iter().enumerate() {
            if let Some(&first) = first_seen.get(&**id) {
                return Err(LoadError::DuplicateId {
                    id: id.to_string(),
                    first,
                    row,
                });
            }
            first_seen.insert(id, row);
        }
        drop(first_seen);

        // Blocks in name order; rows within a block in file order.
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| names[a].cmp(&names[b]));
        let mut counts = vec![0usize; names.len()];
        for &c in &cats {
            counts[c as usize] += 1;
        }
        let mut next = vec![0usize; names.len()];
        let mut blocks = Vec::with_capacity(names.len());
        let mut start = 0;
        for &c in &order {
            next[c] = start;
            blocks.push(CategoryBlock {
                name: Arc::clone(&names[c]),
                rows: start..start + counts[c],
            });
            start += counts[c];
        }
        let mut file_to_row = Vec::with_capacity(n);
        let mut row_ids: Vec<Option<Arc<str>>> = vec![None; n];
        for (id, &c) in ids.into_iter().zip(&cats) {
            let row = next[c as usize];
            next[c as usize] += 1;
            file_to_row.push(row as u32);
            row_ids[row] = Some(id);
        }
        let ids: Vec<Arc<str>> = row_ids.into_iter().flatten().collect();
        debug_assert_eq!(ids.len(), n);
        let by_id = ids
            .iter()
            .enumerate()
            .map(|(row, id)| (Arc::clone(id), row as u32))
            .collect();
        Ok(Self {
            file_to_row,
            ids,
            by_id,
            blocks,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn row_of(&self, file_row: usize) -> usize {
        self.file_to_row[file_row] as usize
    }

    pub(crate) fn file_to_row(&self) -> &[u32] {
        &self.file_to_row
    }

    pub(crate) fn finish(
        self,
        matrix: Matrix,
        storage: Storage,
        payload: Option<Payload>,
    ) -> Result<Catalog, LoadError> {
        let by_category = self
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (Arc::clone(&b.name), i))
            .collect();
        let int8 = match storage {
            Storage::F32 => None,
            Storage::Int8 => Some(quantize(&matrix)?),
        };
        Ok(Catalog {
            dim: matrix.dim,
            stride: matrix.stride,
            vectors: matrix.data,
            int8,
            ids: self.ids,
            by_id: self.by_id,
            blocks: self.blocks,
            by_category,
            payload,
        })
    }
}

/// The float32 matrix being filled, row by row, in catalog order.
pub(crate) struct Matrix {
    pub dim: usize,
    pub stride: usize,
    pub data: AlignedVec<f32>,
}

impl Matrix {
    pub(crate) fn new(rows: usize, dim: usize) -> Result<Self, LoadError> {
        if dim == 0 {
            return Err(LoadError::ZeroDimension);
        }
        let stride = dim.div_ceil(F32_ALIGN) * F32_ALIGN;
        let len = rows
            .checked_mul(stride)
            .ok_or(LoadError::Allocate { bytes: usize::MAX })?;
        let data = AlignedVec::zeroed(len).ok_or(LoadError::Allocate {
            bytes: len.saturating_mul(4),
        })?;
        Ok(Self { dim, stride, data })
    }

    /// Validates `values` (file row `file_row`) and writes it, normalised, to catalog `row`.
    pub(crate) fn put(
        &mut self,
        row: usize,
        file_row: usize,
        values: &[f32],
    ) -> Result<(), LoadError> {
        let dst = &mut self.data.as_mut_slice()[row * self.stride..(row + 1) * self.stride];
        put_row(dst, self.dim, file_row, values)
    }

    /// Every row of the matrix (padding included), mutable and in catalog order, so that
    /// loaders can fill disjoint rows from several threads.
    pub(crate) fn rows_mut(&mut self) -> std::slice::ChunksExactMut<'_, f32> {
        let stride = self.stride;
        self.data.as_mut_slice().chunks_exact_mut(stride)
    }
}

/// Validates `values` (file row `file_row`) and writes it, normalised, into the first `dim`
/// values of `dst` (one padded row of the matrix).
pub(crate) fn put_row(
    dst: &mut [f32],
    dim: usize,
    file_row: usize,
    values: &[f32],
) -> Result<(), LoadError> {
    if values.len() != dim {
        return Err(LoadError::Dimension {
            row: file_row,
            expected: dim,
            found: values.len(),
        });
    }
    let norm = norm(values).map_err(|index| LoadError::NonFinite {
        row: file_row,
        index,
    })?;
    if norm == 0.0 {
        return Err(LoadError::ZeroVector { row: file_row });
    }
    let scale = (1.0 / norm) as f32;
    for (d, &v) in dst[..dim].iter_mut().zip(values) {
        *d = v * scale;
    }
    Ok(())
}

/// Euclidean norm in f64, or the index of the first non-finite value.
pub(crate) fn norm(values: &[f32]) -> Result<f64, usize> {
    let mut sum = 0.0f64;
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(i);
        }
        sum += f64::from(v) * f64::from(v);
    }
    Ok(sum.sqrt())
}

/// Per-row symmetric quantisation: the largest magnitude maps to ±127.
fn quantize(m: &Matrix) -> Result<Int8Matrix, LoadError> {
    let stride = m.dim.div_ceil(I8_ALIGN) * I8_ALIGN;
    let rows = m.data.as_slice().len() / m.stride;
    let mut data = AlignedVec::<u8>::zeroed(rows * stride).ok_or(LoadError::Allocate {
        bytes: rows * stride,
    })?;
    let mut scales = vec![0f32; rows];
    data.as_mut_slice()
        .par_chunks_mut(stride)
        .zip(m.data.as_slice().par_chunks(m.stride))
        .zip(scales.par_iter_mut())
        .for_each(|((dst, src), scale)| {
            let src = &src[..m.dim];
            let max = src.iter().fold(0f32, |a, &v| a.max(v.abs()));
            *scale = max / 127.0;
            let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = ((v * inv).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
            }
            for d in &mut dst[m.dim..] {
                *d = 128;
            }
        });
    Ok(Int8Matrix {
        stride,
        data,
        scales,
    })
}
