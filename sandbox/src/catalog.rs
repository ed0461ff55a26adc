//! The sample catalog: products in a few categories whose embeddings cluster around their
//! category, so "similar to product X" visibly returns X's neighbours.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Categories of the sample catalog.
pub const CATEGORIES: [&str; 5] = ["shoes", "bags", "watches", "jackets", "lamps"];

/// The id of the sample product `index` (`sku-00042`).
pub fn product_id(index: usize) -> String {
    format!("sku-{index:05}")
}

/// A Parquet file (`id`, `category`, `embedding` as fixed-size float32 lists, and the payload
/// columns `name` and `price`) with `products` rows of `dimensions`, the same for a given size.
pub fn sample(products: usize, dimensions: usize) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(dimensions > 0, "a catalog needs at least one dimension");
    let mut rng = StdRng::seed_from_u64(0x1AB5_u64 ^ dimensions as u64);
    let centroids: Vec<Vec<f32>> = CATEGORIES
        .iter()
        .map(|_| (0..dimensions).map(|_| rng.random::<f32>() - 0.5).collect())
        .collect();
    let width = i32::try_from(dimensions)?;
    let mut ids = StringBuilder::new();
    let mut categories = StringBuilder::new();
    let mut names = StringBuilder::new();
    let mut prices = Vec::with_capacity(products);
    let mut embeddings = FixedSizeListBuilder::new(Float32Builder::new(), width);
    for index in 0..products {
        let category = index % CATEGORIES.len();
        ids.append_value(product_id(index));
        categories.append_value(CATEGORIES[category]);
        names.append_value(format!(
            "{} #{}",
            CATEGORIES[category],
            index / CATEGORIES.len()
        ));
        prices.push(f64::from(rng.random_range(500u32..50_000)) / 100.0);
        for x in &centroids[category] {
            embeddings
                .values()
                .append_value(x + 0.35 * (rng.random::<f32>() - 0.5));
        }
        embeddings.append(true);
    }
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids.finish()) as ArrayRef),
        ("category", Arc::new(categories.finish()) as ArrayRef),
        ("embedding", Arc::new(embeddings.finish()) as ArrayRef),
        ("name", Arc::new(names.finish()) as ArrayRef),
        ("price", Arc::new(Float64Array::from(prices)) as ArrayRef),
    ])?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmi_similarity::{Catalog, LoadOptions};

    #[test]
    fn the_sample_loads_in_the_handler_engine_grouped_by_category() {
        let bytes = sample(500, 16).expect("sample");
        let catalog = Catalog::from_parquet_bytes(
            bytes::Bytes::from(bytes),
            &LoadOptions {
                dimension: Some(16),
                ..LoadOptions::default()
            },
        )
        .expect("the engine loads the sample");
        assert_eq!(catalog.len(), 500);
        assert_eq!(catalog.dim(), 16);
        for category in CATEGORIES {
            let rows = catalog.category_rows(category).expect("category block");
            assert_eq!(rows.len(), 100, "{category}");
        }
        assert!(catalog.row_of(&product_id(499)).is_some());
    }

    #[test]
    fn the_sample_is_the_same_every_time() {
        assert_eq!(sample(50, 8).expect("a"), sample(50, 8).expect("b"));
    }
}
