//! Errors for the two things that can go wrong: loading a catalog and answering a query.
//!
//! Each error has a bounded [`reason`](LoadError::reason) for metric labels and log fields;
//! messages are lowercase, name the column or row at fault, and keep the source error.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use parquet::errors::ParquetError;

/// Why a catalog could not be loaded. Row numbers count from 0 in file order.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The catalog file could not be opened.
    #[error("open catalog {path}: {source}")]
    Open {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Parquet reader failed (corrupt file, unsupported codec or encoding, I/O).
    #[error("read parquet: {0}")]
    ReadParquet(#[source] ParquetError),
    /// A required column is absent.
    #[error("missing column '{column}' (columns present: {present})")]
    MissingColumn {
        /// The column looked for.
        column: String,
        /// The columns the file has, comma separated.
        present: String,
    },
    /// A column has a type the loader cannot use.
    #[error("column '{column}' has type {found}, expected {expected}")]
    WrongType {
        /// The column.
        column: String,
        /// What the loader accepts.
        expected: &'static str,
        /// The Arrow type found.
        found: String,
    },
    /// A required value is null.
    #[error("column '{column}' is null at row {row}")]
    Null {
        /// The column.
        column: String,
        /// The row (0-based, file order).
        row: usize,
    },
    /// An embedding's length differs from the catalog's dimension.
    #[error("embedding at row {row} has {found} values, expected {expected}")]
    Dimension {
        /// The row (0-based, file order).
        row: usize,
        /// The catalog's dimension (the first row's, or the one configured).
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// An embedding contains NaN or an infinity.
    #[error("embedding at row {row} has a non-finite value at index {index}")]
    NonFinite {
        /// The row (0-based, file order).
        row: usize,
        /// The position within the vector.
        index: usize,
    },
    /// An embedding is all zeros, so it has no direction to compare.
    #[error("embedding at row {row} is a zero vector")]
    ZeroVector {
        /// The row (0-based, file order).
        row: usize,
    },
    /// Two rows share an id.
    #[error("duplicate id '{id}' at rows {first} and {row}")]
    DuplicateId {
        /// The id.
        id: String,
        /// Where it first appeared.
        first: usize,
        /// Where it appeared again.
        row: usize,
    },
    /// The file has no rows.
    #[error("catalog has no rows")]
    Empty,
    /// The embedding dimension is zero.
    #[error("embeddings have dimension 0")]
    ZeroDimension,
    /// More rows than the engine indexes (2^32 - 1).
    #[error("catalog has {0} rows, more than the supported 4294967295")]
    TooManyRows(usize),
    /// The matrix could not be allocated.
    #[error("cannot allocate {bytes} bytes for the catalog matrix")]
    Allocate {
        /// Bytes requested.
        bytes: usize,
    },
}

impl LoadError {
    /// A short, bounded name for the failure, for metric labels and event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Open { .. } => "Open",
            Self::ReadParquet(_) => "ReadParquet",
            Self::MissingColumn { .. } => "MissingColumn",
            Self::WrongType { .. } => "WrongType",
            Self::Null { .. } => "NullValue",
            Self::Dimension { .. } => "Dimension",
            Self::NonFinite { .. } => "NonFinite",
            Self::ZeroVector { .. } => "ZeroVector",
            Self::DuplicateId { .. } => "DuplicateId",
            Self::Empty => "Empty",
            Self::ZeroDimension => "ZeroDimension",
            Self::TooManyRows(_) => "TooManyRows",
            Self::Allocate { .. } => "Allocate",
        }
    }
}

/// Why a query was refused. Every variant is the caller's input except
/// [`QueryError::EngineStopped`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query vector's length differs from the catalog's dimension.
    #[error("query vector has {found} values, the catalog has dimension {expected}")]
    Dimension {
        /// The catalog's dimension.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// The query vector contains NaN or an infinity.
    #[error("query vector has a non-finite value at index {index}")]
    NonFinite {
        /// The position within the vector.
        index: usize,
    },
    /// The query vector is all zeros.
    #[error("query vector is a zero vector")]
    ZeroVector,
    /// A query by product id named a product the catalog does not have.
    #[error("unknown product id '{0}'")]
    UnknownId(String),
    /// `top_k` is 0 or above the engine's limit.
    #[error("top_k {top_k} out of range 1..={max}")]
    TopK {
        /// The value given.
        top_k: usize,
        /// The engine's limit.
        max: usize,
    },
    /// `min_score` is NaN.
    #[error("min_score is not a number")]
    MinScore,
    /// The engine's background worker is gone (the engine is shutting down, or stopped after
    /// a failed pass).
    #[error("search engine stopped")]
    EngineStopped,
    /// The pass answering this query failed (a panic in the scan); the engine has stopped.
    #[error("the search pass failed; the engine has stopped")]
    SearchFailed,
    /// The caller's deadline passed while the query waited for a pass.
    #[error("the query's deadline passed before a pass could take it")]
    DeadlineExceeded,
}

impl QueryError {
    /// A short, bounded name for the failure, for metric labels and error responses.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Dimension { .. } => "Dimension",
            Self::NonFinite { .. } => "NonFinite",
            Self::ZeroVector => "ZeroVector",
            Self::UnknownId(_) => "UnknownId",
            Self::TopK { .. } => "TopK",
            Self::MinScore => "MinScore",
            Self::EngineStopped => "EngineStopped",
            Self::SearchFailed => "SearchFailed",
            Self::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    /// Whether the caller's input is at fault (a 4xx rather than a 5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::EngineStopped | Self::SearchFailed | Self::DeadlineExceeded
        )
    }
}
