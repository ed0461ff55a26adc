//! Payload columns: whatever else the catalog file carries per product (title, price, url),
//! kept as Arrow arrays and returned with results.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use std::sync::Arc;

/// One payload value. Serialises as the plain JSON value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PayloadValue<'a> {
    /// Null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(&'a str),
}

impl serde::Serialize for PayloadValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Null => s.serialize_none(),
            Self::Bool(v) => s.serialize_bool(v),
            Self::Int(v) => s.serialize_i64(v),
            Self::UInt(v) => s.serialize_u64(v),
            Self::Float(v) => s.serialize_f64(v),
            Self::Str(v) => s.serialize_str(v),
        }
    }
}

/// Whether a payload column of this type can be kept.
pub(crate) fn supported(dt: &DataType) -> bool {
    match dt {
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Null => true,
        other => is_string(other),
    }
}

/// Utf8, LargeUtf8, Utf8View, or a dictionary of those (pyarrow's categoricals).
pub(crate) fn is_string(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(key, value) => {
            key.is_dictionary_key_type()
                && matches!(
                    **value,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
        }
        _ => false,
    }
}

macro_rules! dict_value {
    ($array:expr, $i:expr, $($key:ty),*) => {{
        let dt = $array.data_type();
        $(
            if let DataType::Dictionary(k, _) = dt {
                if **k == <$key as ArrowPrimitiveType>::DATA_TYPE {
                    let d = $array.as_dictionary::<$key>();
                    let key = usize::try_from(d.keys().value($i)).unwrap_or(usize::MAX);
                    if key >= d.values().len() {
                        return PayloadValue::Null;
                    }
                    return value_at(d.values(), key);
                }
            }
        )*
        PayloadValue::Null
    }};
}

/// The value at `i` of an array of a [`supported`] type (`Null` for anything else).
pub(crate) fn value_at(array: &dyn Array, i: usize) -> PayloadValue<'_> {
    if array.is_null(i) {
        return PayloadValue::Null;
    }
    match array.data_type() {
        DataType::Boolean => PayloadValue::Bool(array.as_boolean().value(i)),
        DataType::Int8 => PayloadValue::Int(array.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => PayloadValue::Int(array.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => PayloadValue::Int(array.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => PayloadValue::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => PayloadValue::UInt(array.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => PayloadValue::UInt(array.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => PayloadValue::UInt(array.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => PayloadValue::UInt(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => {
            PayloadValue::Float(array.as_primitive::<Float32Type>().value(i).into())
        }
        DataType::Float64 => PayloadValue::Float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => PayloadValue::Str(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => PayloadValue::Str(array.as_string::<i64>().value(i)),
        DataType::Utf8View => PayloadValue::Str(array.as_string_view().value(i)),
        DataType::Dictionary(_, _) => dict_value!(
            array, i, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
            UInt64Type
        ),
        _ => PayloadValue::Null,
    }
}

/// Payload arrays as read, one chunk per record batch, addressed by catalog row.
pub(crate) struct Payload {
    names: Vec<Arc<str>>,
    /// `columns[c][chunk]`.
    columns: Vec<Vec<ArrayRef>>,
    /// First file row of each chunk.
    chunk_starts: Vec<usize>,
    /// File row of each catalog row.
    row_to_file: Vec<u32>,
}

impl Payload {
    pub(crate) fn new(names: Vec<Arc<str>>) -> Self {
        Self {
            columns: vec![Vec::new(); names.len()],
            names,
            chunk_starts: Vec::new(),
            row_to_file: Vec::new(),
        }
    }

    /// Appends one record batch's payload arrays (in `names` order), starting at `file_row`.
    pub(crate) fn push_chunk(&mut self, file_row: usize, arrays: Vec<ArrayRef>) {
        self.chunk_starts.push(file_row);
        for (col, a) in self.columns.iter_mut().zip(arrays) {
            col.push(a);
        }
    }

    /// Sets the catalog-row → file-row map from the loader's file-row → catalog-row map.
    pub(crate) fn set_order(&mut self, file_to_row: &[u32]) {
        let mut row_to_file = vec![0u32; file_to_row.len()];
        for (file, &row) in file_to_row.iter().enumerate() {
            row_to_file[row as usize] = file as u32;
        }
        self.row_to_file = row_to_file;
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.names.iter().map(|n| &**n).collect()
    }

    pub(crate) fn row(&self, row: usize) -> Vec<(&str, PayloadValue<'_>)> {
        let file = self.row_to_file[row] as usize;
        let chunk = self.chunk_starts.partition_point(|&s| s <= file) - 1;
        let offset = file - self.chunk_starts[chunk];
        self.names
            .iter()
            .zip(&self.columns)
            .map(|(name, col)| (&**name, value_at(col[chunk].as_ref(), offset)))
            .collect()
    }

    pub(crate) fn bytes(&self) -> usize {
        let arrays: usize = self
            .columns
            .iter()
            .flatten()
            .map(|a| a.get_array_memory_size())
            .sum();
        arrays + self.row_to_file.len() * 4 + self.chunk_starts.len() * 8
    }
}
