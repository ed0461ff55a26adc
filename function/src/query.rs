//! Queries and hits: what callers send and get back.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use std::sync::Arc;

/// What to compare the catalog against.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A raw embedding with the catalog's dimension (normalised by the engine).
    Vector(Vec<f32>),
    /// The embedding of a catalog product.
    Id(String),
}

/// One similarity query. Build with [`Query::by_vector`] or [`Query::by_id`] and the `with_*`
/// methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// What to compare against.
    pub target: Target,
    /// How many hits to return at most (1..=the engine's `max_top_k`; default 10).
    pub top_k: usize,
    /// Only these categories; empty means all. Categories the catalog does not have match
    /// nothing (a filter naming only unknown categories returns no hits).
    pub categories: Vec<String>,
    /// Only hits scoring at least this (cosine, -1..=1).
    pub min_score: Option<f32>,
    /// Products never returned (unknown ids are ignored).
    pub exclude_ids: Vec<String>,
    /// For [`Target::Id`]: also return the product itself (normally left out, as "similar to
    /// X" rarely wants X).
    pub include_self: bool,
}

impl Query {
    /// The default number of hits.
    pub const DEFAULT_TOP_K: usize = 10;

    /// Products most similar to `vector`.
    pub fn by_vector(vector: Vec<f32>) -> Self {
        Self::new(Target::Vector(vector))
    }

    /// Products most similar to the catalog product `id` (excluding it).
    pub fn by_id(id: impl Into<String>) -> Self {
        Self::new(Target::Id(id.into()))
    }

    fn new(target: Target) -> Self {
        Self {
            target,
            top_k: Self::DEFAULT_TOP_K,
            categories: Vec::new(),
            min_score: None,
            exclude_ids: Vec::new(),
            include_self: false,
        }
    }

    /// Sets how many hits to return.
    pub fn with_top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    /// Restricts hits to these categories.
    pub fn with_categories<I: IntoIterator<Item = S>, S: Into<String>>(mut self, c: I) -> Self {
        self.categories = c.into_iter().map(Into::into).collect();
        self
    }

    /// Drops hits scoring below `min_score`.
    pub fn with_min_score(mut self, min_score: f32) -> Self {
        self.min_score = Some(min_score);
        self
    }

    /// Never returns these products.
    pub fn excluding<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.exclude_ids = ids.into_iter().map(Into::into).collect();
        self
    }

    /// For a query by id, keeps the product itself among the hits.
    pub fn including_self(mut self) -> Self {
        self.include_self = true;
        self
    }
}

/// One result, best first in a result list.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    /// Product id.
    pub id: Arc<str>,
    /// Product category.
    pub category: Arc<str>,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The product's row in the catalog, for [`crate::Catalog::payload`] and
    /// [`crate::Catalog::vector`].
    pub row: usize,
}
