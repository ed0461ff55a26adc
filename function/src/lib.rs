//! Exact top-k product similarity over an in-memory catalog of embeddings.
//!
//! This is the engine behind the similarity Lambda handler (DESIGN §6):
//!
//! 1. **Load** a [`Catalog`] once per execution environment from Parquet
//!    ([`Catalog::from_parquet_path`], [`Catalog::from_parquet_bytes`]): `id`, `category`, an
//!    embedding column of float32 lists, and optional payload columns. Vectors are normalised
//!    and stored in one contiguous matrix grouped by category.
//! 2. **Start** an [`Engine`] over it ([`Engine::new`]): a scan thread pool and a coalescing
//!    worker.
//! 3. **Search** with a [`Query`] (by vector or by product id; `top_k`, categories, minimum
//!    score, excluded ids): [`Engine::search`] from async code (concurrent queries share one
//!    pass over the matrix), or [`Engine::search_blocking`] / [`Engine::search_batch`].
//!    Results are [`Hit`]s, best first; [`Catalog::payload`] gives a hit's payload.
//!
//! Scores are exact cosine similarities (inner products of unit vectors) computed with SIMD
//! kernels chosen at run time (AVX-512, AVX2+FMA, NEON). With [`Storage::Int8`] the scan reads
//! an int8 copy and re-scores the best candidates exactly.
//!
//! ```
//! use lmi_similarity::{Catalog, Engine, EngineOptions, Query, Storage};
//!
//! let catalog = Catalog::from_rows(
//!     [("a", "shoes", [1.0, 0.0]), ("b", "shoes", [0.8, 0.6]), ("c", "hats", [0.0, 1.0])],
//!     Storage::F32,
//! )?;
//! let engine = Engine::new(catalog, EngineOptions::default())?;
//! let hits = engine.search_blocking(&Query::by_id("a").with_top_k(1))?;
//! assert_eq!(&*hits[0].id, "b");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
mod engine;
mod error;
mod kernels;
mod load;
mod payload;
mod query;
mod search;
mod topk;

pub use catalog::{Catalog, CategoryBlock, MemoryUsage, Storage};
pub use engine::{Engine, EngineError, EngineOptions, EngineStats};
pub use error::{LoadError, QueryError};
pub use kernels::{F32Level, I8Level};
pub use load::{LoadOptions, PayloadColumns};
pub use payload::PayloadValue;
pub use query::{Hit, Query, Target};
pub use search::Rescore;
