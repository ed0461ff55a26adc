//! Loading a catalog from Parquet.
//!
//! Two passes over the file, each streaming record batches:
//! 1. the id, category and payload columns (small): check ids are unique, count each category,
//!    and so fix every row's place in the category-grouped matrix;
//! 2. the embedding column, row groups in parallel: each row is checked, normalised and written
//!    straight into its place.
//!
//! No full copy of the vectors exists besides the matrix: each thread of pass 2 holds one record
//! batch at a time, so resident memory stays close to the matrix size.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::{ChunkReader, Length};
use rayon::prelude::*;

use crate::catalog::{Catalog, CategoryInterner, Layout, Matrix, Storage, put_row};
use crate::error::LoadError;
use crate::payload::{self, Payload, PayloadValue};

/// Which columns besides id, category and embedding are kept and returned with results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PayloadColumns {
    /// Every other column (the default). A column of an unsupported type is an error; name the
    /// columns to keep with [`PayloadColumns::Only`] to leave it out.
    #[default]
    All,
    /// No payload.
    None,
    /// These columns, in this order.
    Only(Vec<String>),
}

/// How to read a catalog file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// The product id column: strings, or integers (returned as their decimal text).
    pub id_column: String,
    /// The category column: strings (plain or dictionary-encoded).
    pub category_column: String,
    /// The embedding column: a list, large list or fixed-size list of float32.
    pub embedding_column: String,
    /// Payload columns to keep.
    pub payload: PayloadColumns,
    /// Scan storage.
    pub storage: Storage,
    /// Expected embedding dimension; when unset, the first row's length is the dimension.
    pub dimension: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            id_column: "id".into(),
            category_column: "category".into(),
            embedding_column: "embedding".into(),
            payload: PayloadColumns::All,
            storage: Storage::F32,
            dimension: None,
        }
    }
}

/// Rows per record batch while streaming: small enough that one batch of 1024-d embeddings
/// (4 MiB) is a rounding error next to the matrix.
const BATCH_ROWS: usize = 1024;

/// A file opened once and shared by both passes and by the threads of pass 2. Every read is
/// positional (`pread`): parquet's own `ChunkReader` for `File` clones the descriptor and
/// seeks, and clones share one offset, so readers on several threads would read each other's
/// positions.
#[derive(Clone)]
struct SharedFile(Arc<File>);

impl SharedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(&*self.0, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(&*self.0, buf, offset)
        }
    }
}

impl Length for SharedFile {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

/// A reader from a position of a [`SharedFile`], by positional reads.
struct FileAt {
    file: SharedFile,
    offset: u64,
}

impl std::io::Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl ChunkReader for SharedFile {
    type T = std::io::BufReader<FileAt>;
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::new(FileAt {
            file: self.clone(),
            offset: start,
        }))
    }
    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut buf = vec![0u8; length];
        let mut reader = FileAt {
            file: self.clone(),
            offset: start,
        };
        std::io::Read::read_exact(&mut reader, &mut buf).map_err(|e| {
            parquet::errors::ParquetError::EOF(format!("{length} bytes at {start}: {e}"))
        })?;
        Ok(buf.into())
    }
}

impl Catalog {
    /// Loads a catalog from a Parquet file on disk.
    pub fn from_parquet_path(
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| LoadError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_parquet_reader(SharedFile(Arc::new(file)), options)
    }

    /// Loads a catalog from a Parquet file held in memory (for example an S3 object body).
    pub fn from_parquet_bytes(bytes: Bytes, options: &LoadOptions) -> Result<Self, LoadError> {
        Self::from_parquet_reader(bytes, options)
    }

    /// Loads a catalog from any Parquet source that can be read at random positions and cloned
    /// cheaply (it is read in two passes).
    pub fn from_parquet_reader<R: ChunkReader + Clone + 'static>(
        reader: R,
        options: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let meta = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::new())
            .map_err(LoadError::ReadParquet)?;
        check_footer(&meta, reader.len())?;
        let schema = Arc::clone(meta.schema());
        let columns = Columns::resolve(&schema, options)?;

        // Pass 1: ids, categories, payload.
        let mut pass1 = vec![columns.id, columns.category];
        pass1.extend(&columns.payload);
        let reader1 = batches(&reader, &meta, &pass1, None)?;
        let mut ids: Vec<Arc<str>> = Vec::with_capacity(row_count(&meta));
        let mut categories = CategoryInterner::default();
        let mut cats = Vec::with_capacity(row_count(&meta));
        let mut payload = (!columns.payload.is_empty()).then(|| {
            Payload::new(
                columns
                    .payload
                    .iter()
                    .map(|&i| Arc::from(schema.field(i).name().as_str()))
                    .collect(),
            )
        });
        for batch in reader1 {
            let batch = batch.map_err(|e| LoadError::ReadParquet(e.into()))?;
            let start = ids.len();
            let id = column(&batch, &options.id_column)?;
            let cat = column(&batch, &options.category_column)?;
            for i in 0..batch.num_rows() {
                ids.push(id_at(id.as_ref(), i, start + i, &options.id_column)?);
                let name = string_at(cat.as_ref(), i, start + i, &options.category_column)?;
                cats.push(categories.intern(name));
            }
            if let Some(p) = payload.as_mut()
                && batch.num_rows() > 0
            {
                let arrays = columns
                    .payload
                    .iter()
                    .map(|&c| column(&batch, schema.field(c).name()).cloned())
                    .collect::<Result<Vec<_>, _>>()?;
                p.push_chunk(start, arrays);
            }
        }
        let layout = Layout::new(ids, cats, categories.names)?;
        if let Some(p) = payload.as_mut() {
            p.set_order(layout.file_to_row());
        }

        // Pass 2: embeddings, straight into the matrix, row groups decoded in parallel.
        let dim = match (
            options.dimension,
            schema.field(columns.embedding).data_type(),
        ) {
            (Some(dim), _) => dim,
            (None, DataType::FixedSizeList(_, n)) => usize::try_from(*n).unwrap_or(0),
            (None, _) => first_dimension(&reader, &meta, columns.embedding, options)?,
        };
        if dim > MAX_DIMENSION {
            return Err(corrupt(format!(
                "embeddings of dimension {dim}: the loader supports up to {MAX_DIMENSION}"
            )));
        }
        let mut matrix = Matrix::new(layout.len(), dim)?;
        fill(
            &reader,
            &meta,
            columns.embedding,
            options,
            &layout,
            &mut matrix,
        )?;
        layout.finish(matrix, options.storage, payload)
    }
}

/// The length of the first embedding: the catalog's dimension when none is given and the
/// column's type does not fix it (variable-length lists).
fn first_dimension<R: ChunkReader + Clone + 'static>(
    reader: &R,
    meta: &ArrowReaderMetadata,
    embedding: usize,
    options: &LoadOptions,
) -> Result<usize, LoadError> {
    let first = batches(reader, meta, &[embedding], None)?
        .find(|b| !matches!(b, Ok(b) if b.num_rows() == 0))
        .ok_or(LoadError::Empty)?
        .map_err(|e| LoadError::ReadParquet(e.into()))?;
    let array = column(&first, &options.embedding_column)?;
    let rows = Embeddings::new(array.as_ref(), &options.embedding_column)?;
    Ok(rows.row(0, 0, &options.embedding_column)?.len())
}

/// Decodes the embedding column into the matrix, each row group on a thread of its own (the
/// global rayon pool: loading is start-up work, before the engine's pool scans). Every row is
/// validated and normalised as it is written; of several bad rows, the first in the file is
/// reported, whichever thread met it first.
fn fill<R: ChunkReader + Clone + 'static>(
    reader: &R,
    meta: &ArrowReaderMetadata,
    embedding: usize,
    options: &LoadOptions,
    layout: &Layout,
    matrix: &mut Matrix,
) -> Result<(), LoadError> {
    let dim = matrix.dim;
    // Each file row's place in the matrix: the rows are disjoint `&mut` slices, handed out in
    // file order and then split by row group, so the threads never share one.
    let mut by_row: Vec<Option<&mut [f32]>> = matrix.rows_mut().map(Some).collect();
    let mut targets: Vec<&mut [f32]> = Vec::with_capacity(by_row.len());
    for file_row in 0..by_row.len() {
        let slot = by_row[layout.row_of(file_row)].take();
        targets.push(slot.ok_or_else(|| corrupt(format!("file row {file_row} placed twice")))?);
    }
    drop(by_row);
    let mut groups = Vec::new();
    let mut rest = targets.as_mut_slice();
    let mut first_row = 0;
    for (g, rg) in meta.metadata().row_groups().iter().enumerate() {
        let n = usize::try_from(rg.num_rows()).unwrap_or(0).min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        groups.push((g, first_row, head));
        rest = tail;
        first_row += n;
    }
    if !rest.is_empty() {
        return Err(corrupt(format!(
            "the row groups hold {first_row} rows, the file {}",
            first_row + rest.len()
        )));
    }
    let results: Vec<Result<(), LoadError>> = groups
        .into_par_iter()
        .map(|(g, first_row, rows)| {
            let mut file_row = first_row;
            let mut rows = rows.iter_mut();
            for batch in batches(reader, meta, &[embedding], Some(g))? {
                let batch = batch.map_err(|e| LoadError::ReadParquet(e.into()))?;
                let array = column(&batch, &options.embedding_column)?;
                let values = Embeddings::new(array.as_ref(), &options.embedding_column)?;
                for i in 0..batch.num_rows() {
                    let v = values.row(i, file_row, &options.embedding_column)?;
                    let dst = rows.next().ok_or_else(|| {
                        corrupt(format!("row group {g} holds more rows than it declares"))
                    })?;
                    put_row(dst, dim, file_row, v)?;
                    file_row += 1;
                }
            }
            Ok(())
        })
        .collect();
    results.into_iter().collect()
}

/// The largest embedding dimension loaded (embedding models produce 256 to a few thousand;
/// a larger figure in a file's schema is refused before anything is sized by it).
pub const MAX_DIMENSION: usize = 65_536;

/// Refuses a footer whose figures the file cannot hold, before anything is sized by them: the
/// loader reserves memory by the footer's row counts, and a crafted footer claiming 2^40 rows
/// must be a clear error, not an allocation failure that aborts the process (which a Lambda
/// init would report as nothing but a crash).
///
/// Every row holds a distinct id, so it takes at least one byte of the file; column chunks lie
/// within the file; and the row groups add up to the file's row count.
fn check_footer(meta: &ArrowReaderMetadata, file_len: u64) -> Result<(), LoadError> {
    let file = meta.metadata().file_metadata();
    let claimed = file.num_rows();
    let fits = |n: i64| u64::try_from(n).is_ok_and(|n| n <= file_len);
    if !fits(claimed) {
        return Err(corrupt(format!(
            "the footer claims {claimed} rows in a file of {file_len} bytes"
        )));
    }
    let mut rows: i64 = 0;
    for (g, rg) in meta.metadata().row_groups().iter().enumerate() {
        if !fits(rg.num_rows()) {
            return Err(corrupt(format!(
                "row group {g} claims {} rows in a file of {file_len} bytes",
                rg.num_rows()
            )));
        }
        rows = rows.saturating_add(rg.num_rows());
        for c in rg.columns() {
            // (Not `byte_range()`: it panics on the negative figures a crafted footer holds.)
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            if !fits(start) || !fits(len) || !fits(start.saturating_add(len)) {
                return Err(corrupt(format!(
                    "row group {g} column {} claims {len} bytes at offset {start} in a file of \
                     {file_len} bytes",
                    c.column_path()
                )));
            }
        }
    }
    if rows != claimed {
        return Err(corrupt(format!(
            "the footer claims {claimed} rows, its row groups {rows}"
        )));
    }
    Ok(())
}

/// A file whose metadata and data disagree.
fn corrupt(message: String) -> LoadError {
    LoadError::ReadParquet(parquet::errors::ParquetError::General(message))
}

fn row_count(meta: &ArrowReaderMetadata) -> usize {
    usize::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0)
}

fn batches<R: ChunkReader + Clone + 'static>(
    reader: &R,
    meta: &ArrowReaderMetadata,
    roots: &[usize],
    row_group: Option<usize>,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, LoadError> {
    let mask = ProjectionMask::roots(
        meta.metadata().file_metadata().schema_descr(),
        roots.iter().copied(),
    );
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader.clone(), meta.clone())
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS);
    match row_group {
        Some(g) => builder.with_row_groups(vec![g]),
        None => builder,
    }
    .build()
    .map_err(LoadError::ReadParquet)
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, LoadError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| LoadError::MissingColumn {
            column: name.to_string(),
            present: field_names(&batch.schema()),
        })
}

fn field_names(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Top-level column indices, checked for presence and type before any data is read.
struct Columns {
    id: usize,
    category: usize,
    embedding: usize,
    payload: Vec<usize>,
}

impl Columns {
    fn resolve(schema: &SchemaRef, o: &LoadOptions) -> Result<Self, LoadError> {
        let find = |name: &str| {
            schema.index_of(name).map_err(|_| LoadError::MissingColumn {
                column: name.to_string(),
                present: field_names(schema),
            })
        };
        let wrong = |i: usize, expected| LoadError::WrongType {
            column: schema.field(i).name().clone(),
            expected,
            found: schema.field(i).data_type().to_string(),
        };
        let id = find(&o.id_column)?;
        let id_type = schema.field(id).data_type();
        if !(payload::is_string(id_type) || id_type.is_integer()) {
            return Err(wrong(id, "string or integer"));
        }
        let category = find(&o.category_column)?;
        if !payload::is_string(schema.field(category).data_type()) {
            return Err(wrong(category, "string"));
        }
        let embedding = find(&o.embedding_column)?;
        let element = match schema.field(embedding).data_type() {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                Some(f.data_type().clone())
            }
            _ => None,
        };
        if element != Some(DataType::Float32) {
            return Err(wrong(embedding, "list of float32"));
        }
        let named = [id, category, embedding];
        let payload = match &o.payload {
            PayloadColumns::None => Vec::new(),
            PayloadColumns::All => (0..schema.fields().len())
                .filter(|i| !named.contains(i))
                .collect(),
            PayloadColumns::Only(names) => {
                names.iter().map(|n| find(n)).collect::<Result<_, _>>()?
            }
        };
        for &p in &payload {
            if !payload::supported(schema.field(p).data_type()) {
                return Err(wrong(p, "a boolean, number or string payload column"));
            }
        }
        Ok(Self {
            id,
            category,
            embedding,
            payload,
        })
    }
}

fn string_at<'a>(
    array: &'a dyn Array,
    i: usize,
    row: usize,
    column: &str,
) -> Result<&'a str, LoadError> {
    match payload::value_at(array, i) {
        PayloadValue::Str(s) => Ok(s),
        _ => Err(LoadError::Null {
            column: column.to_string(),
            row,
        }),
    }
}

fn id_at(array: &dyn Array, i: usize, row: usize, column: &str) -> Result<Arc<str>, LoadError> {
    match payload::value_at(array, i) {
        PayloadValue::Str(s) => Ok(Arc::from(s)),
        PayloadValue::Int(v) => Ok(Arc::from(v.to_string())),
        PayloadValue::UInt(v) => Ok(Arc::from(v.to_string())),
        _ => Err(LoadError::Null {
            column: column.to_string(),
            row,
        }),
    }
}

/// One batch of the embedding column, with its rows addressable as slices.
struct Embeddings<'a> {
    array: &'a dyn Array,
    values: &'a Float32Array,
    /// Start and end of each row in `values`.
    bounds: Bounds<'a>,
}

enum Bounds<'a> {
    Fixed(&'a arrow_array::FixedSizeListArray),
    Offsets32(&'a [i32]),
    Offsets64(&'a [i64]),
}

impl<'a> Embeddings<'a> {
    fn new(array: &'a dyn Array, column: &str) -> Result<Self, LoadError> {
        let wrong = || LoadError::WrongType {
            column: column.to_string(),
            expected: "list of float32",
            found: array.data_type().to_string(),
        };
        let (values, bounds) = match array.data_type() {
            DataType::FixedSizeList(_, _) => {
                let a = array.as_fixed_size_list();
                (a.values(), Bounds::Fixed(a))
            }
            DataType::List(_) => {
                let a = array.as_list::<i32>();
                (a.values(), Bounds::Offsets32(a.value_offsets()))
            }
            DataType::LargeList(_) => {
                let a = array.as_list::<i64>();
                (a.values(), Bounds::Offsets64(a.value_offsets()))
            }
            _ => return Err(wrong()),
        };
        let values = values.as_primitive_opt::<Float32Type>().ok_or_else(wrong)?;
        Ok(Self {
            array,
            values,
            bounds,
        })
    }

    fn row(&self, i: usize, file_row: usize, column: &str) -> Result<&'a [f32], LoadError> {
        if self.array.is_null(i) {
            return Err(LoadError::Null {
                column: column.to_string(),
                row: file_row,
            });
        }
        let range = match self.bounds {
            Bounds::Fixed(a) => {
                let start = a.value_offset_at(i);
                start..start + a.value_length() as usize
            }
            Bounds::Offsets32(o) => o[i] as usize..o[i + 1] as usize,
            Bounds::Offsets64(o) => o[i] as usize..o[i + 1] as usize,
        };
        if self.values.null_count() > 0 && range.clone().any(|j| self.values.is_null(j)) {
            return Err(LoadError::Null {
                column: column.to_string(),
                row: file_row,
            });
        }
        Ok(&self.values.values()[range])
    }
}
