//! Loading a catalog from Parquet.
//!
//! Two passes over the file, each streaming record batches:
//! 1. the id, category and payload columns (small): check ids are unique, count each category,
//!    and so fix every row's place in the category-grouped matrix;
//! 2. the embedding column: each row is checked, normalised and written straight into its place.
//!
//! No full copy of the vectors exists besides the matrix: pass 2 holds one record batch at a
//! time, so resident memory stays close to the matrix size.

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

use crate::catalog::{Catalog, CategoryInterner, Layout, Matrix, Storage};
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

/// A file opened once and shared by both passes (positional reads, so clones don't interfere).
#[derive(Clone)]
struct SharedFile(Arc<File>);

impl Length for SharedFile {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl ChunkReader for SharedFile {
    type T = <File as ChunkReader>::T;
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.0.get_read(start)
    }
    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0.get_bytes(start, length)
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
        let schema = Arc::clone(meta.schema());
        let columns = Columns::resolve(&schema, options)?;

        // Pass 1: ids, categories, payload.
        let mut pass1 = vec![columns.id, columns.category];
        pass1.extend(&columns.payload);
        let reader1 = batches(&reader, &meta, &pass1)?;
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

        // Pass 2: embeddings, straight into the matrix.
        let mut matrix: Option<Matrix> = None;
        let mut file_row = 0;
        for batch in batches(&reader, &meta, &[columns.embedding])? {
            let batch = batch.map_err(|e| LoadError::ReadParquet(e.into()))?;
            let array = column(&batch, &options.embedding_column)?;
            let rows = Embeddings::new(array.as_ref(), &options.embedding_column)?;
            for i in 0..batch.num_rows() {
                let values = rows.row(i, file_row, &options.embedding_column)?;
                let m = match matrix.as_mut() {
                    Some(m) => m,
                    None => matrix.insert(Matrix::new(
                        layout.len(),
                        options.dimension.unwrap_or(values.len()),
                    )?),
                };
                m.put(layout.row_of(file_row), file_row, values)?;
                file_row += 1;
            }
        }
        let matrix = matrix.ok_or(LoadError::Empty)?;
        layout.finish(matrix, options.storage, payload)
    }
}

fn row_count(meta: &ArrowReaderMetadata) -> usize {
    usize::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0)
}

fn batches<R: ChunkReader + Clone + 'static>(
    reader: &R,
    meta: &ArrowReaderMetadata,
    roots: &[usize],
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, LoadError> {
    let mask = ProjectionMask::roots(
        meta.metadata().file_metadata().schema_descr(),
        roots.iter().copied(),
    );
    ParquetRecordBatchReaderBuilder::new_with_metadata(reader.clone(), meta.clone())
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
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
