//! The product-similarity handler: an in-memory catalog of embeddings and exact top-k search.
