//! Exact search against a naive reference, filters, ties, by-id queries and edge cases.

mod common;

use common::{Expect, Rng, assert_exact, engine, options, random_rows};
use lmi_similarity::{
    Catalog, Engine, EngineOptions, F32Level, I8Level, Query, QueryError, Storage,
};

#[test]
fn unfiltered_results_match_the_reference_for_several_sizes_and_k() {
    for (seed, n, dim) in [
        (1, 1, 3),
        (2, 7, 16),
        (3, 300, 64),
        (4, 6000, 100),
        (5, 5000, 33),
    ] {
        let rows = random_rows(seed, n, dim, 4);
        let e = engine(&rows, Storage::F32, options());
        let mut rng = Rng::new(seed + 100);
        for k in [1, 5, 10, 64] {
            let q = rng.vector(dim);
            let hits = e
                .search_blocking(&Query::by_vector(q.clone()).with_top_k(k))
                .unwrap();
            assert_eq!(hits.len(), k.min(n));
            assert_exact(
                &hits,
                &Expect {
                    rows: &rows,
                    query: &q,
                    k,
                    categories: &[],
                    min_score: -2.0,
                    excluded: &[],
                },
            );
        }
    }
}

#[test]
fn every_available_instruction_set_gives_exact_results() {
    let rows = random_rows(11, 1500, 200, 5);
    let mut rng = Rng::new(12);
    let queries: Vec<Vec<f32>> = (0..5).map(|_| rng.vector(200)).collect();
    for level in F32Level::available() {
        let e = engine(
            &rows,
            Storage::F32,
            EngineOptions {
                f32_level: Some(level),
                ..options()
            },
        );
        assert_eq!(e.levels().0, level);
        for q in &queries {
            let hits = e
                .search_blocking(&Query::by_vector(q.clone()).with_top_k(20))
                .unwrap();
            assert_exact(
                &hits,
                &Expect {
                    rows: &rows,
                    query: q,
                    k: 20,
                    categories: &[],
                    min_score: -2.0,
                    excluded: &[],
                },
            );
        }
    }
}

#[test]
fn category_filter_scans_only_those_categories() {
    let rows = random_rows(21, 3000, 48, 6);
    let e = engine(&rows, Storage::F32, options());
    let mut rng = Rng::new(22);
    for cats in [vec!["c0"], vec!["c2", "c5"], vec!["c1", "c3", "c4"]] {
        let q = rng.vector(48);
        let hits = e
            .search_blocking(
                &Query::by_vector(q.clone())
                    .with_top_k(15)
                    .with_categories(cats.clone()),
            )
            .unwrap();
        assert_eq!(hits.len(), 15);
        assert_exact(
            &hits,
            &Expect {
                rows: &rows,
                query: &q,
                k: 15,
                categories: &cats,
                min_score: -2.0,
                excluded: &[],
            },
        );
    }
}

#[test]
fn category_blocks_are_contiguous_and_sorted_by_name() {
    let rows = random_rows(23, 500, 8, 7);
    let c = common::catalog(&rows, Storage::F32);
    let blocks = c.categories();
    assert_eq!(blocks.len(), 7);
    assert_eq!(blocks[0].rows.start, 0);
    assert_eq!(blocks.last().unwrap().rows.end, 500);
    for w in blocks.windows(2) {
        assert!(w[0].name < w[1].name);
        assert_eq!(w[0].rows.end, w[1].rows.start);
    }
    for b in blocks {
        for row in b.rows.clone() {
            assert_eq!(c.category(row), &*b.name);
        }
    }
}

#[test]
fn min_score_drops_weaker_hits() {
    let rows = random_rows(31, 1000, 12, 3);
    let e = engine(&rows, Storage::F32, options());
    let q = Rng::new(32).vector(12);
    let hits = e
        .search_blocking(
            &Query::by_vector(q.clone())
                .with_top_k(1000)
                .with_min_score(0.5),
        )
        .unwrap();
    assert!(!hits.is_empty() && hits.len() < 1000);
    assert_exact(
        &hits,
        &Expect {
            rows: &rows,
            query: &q,
            k: 1000,
            categories: &[],
            min_score: 0.5,
            excluded: &[],
        },
    );
}

#[test]
fn excluded_ids_are_never_returned() {
    let rows = random_rows(41, 800, 20, 2);
    let e = engine(&rows, Storage::F32, options());
    let q = Rng::new(42).vector(20);
    let first = e
        .search_blocking(&Query::by_vector(q.clone()).with_top_k(5))
        .unwrap();
    let excluded: Vec<&str> = first.iter().take(3).map(|h| &*h.id).collect();
    let hits = e
        .search_blocking(
            &Query::by_vector(q.clone())
                .with_top_k(5)
                .excluding(excluded.clone())
                .excluding_more(),
        )
        .unwrap();
    assert_exact(
        &hits,
        &Expect {
            rows: &rows,
            query: &q,
            k: 5,
            categories: &[],
            min_score: -2.0,
            excluded: &excluded,
        },
    );
    assert_eq!(hits[0].id, first[3].id);
}

trait ExcludingMore {
    fn excluding_more(self) -> Self;
}
impl ExcludingMore for Query {
    /// Unknown ids in the exclusion list are ignored.
    fn excluding_more(mut self) -> Self {
        self.exclude_ids.push("no-such-product".into());
        self
    }
}

#[test]
fn query_by_id_uses_the_product_vector_and_leaves_it_out() {
    let rows = random_rows(51, 600, 24, 3);
    let e = engine(&rows, Storage::F32, options());
    let target = &rows[123];
    let hits = e
        .search_blocking(&Query::by_id(&target.id).with_top_k(8))
        .unwrap();
    assert!(hits.iter().all(|h| *h.id != *target.id));
    assert_exact(
        &hits,
        &Expect {
            rows: &rows,
            query: &target.vector,
            k: 8,
            categories: &[],
            min_score: -2.0,
            excluded: &[target.id.as_str()],
        },
    );
    let with_self = e
        .search_blocking(&Query::by_id(&target.id).with_top_k(8).including_self())
        .unwrap();
    assert_eq!(*with_self[0].id, *target.id);
    assert!((with_self[0].score - 1.0).abs() < 1e-5);
    assert_eq!(with_self[1..], hits[..7]);
}

#[test]
fn unknown_product_id_is_a_clear_error() {
    let rows = random_rows(52, 10, 4, 1);
    let e = engine(&rows, Storage::F32, options());
    let err = e.search_blocking(&Query::by_id("nope")).unwrap_err();
    assert_eq!(err, QueryError::UnknownId("nope".into()));
    assert_eq!(err.to_string(), "unknown product id 'nope'");
}

#[test]
fn ties_go_to_the_earlier_row_in_file_order() {
    // Five identical vectors in one category: their scores are bitwise equal.
    let mut rows = random_rows(61, 200, 16, 2);
    let dup = rows[0].vector.clone();
    for (i, at) in [150, 30, 90, 10, 170].into_iter().enumerate() {
        rows[at].vector = dup.clone();
        rows[at].category = "tie".into();
        rows[at].id = format!("dup{i}");
    }
    rows[0].vector = Rng::new(62).vector(16);
    let e = engine(&rows, Storage::F32, options());
    let hits = e
        .search_blocking(&Query::by_vector(dup.clone()).with_top_k(3))
        .unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| &*h.id).collect();
    // File order of the duplicates: rows 10, 30, 90 → dup3, dup1, dup2.
    assert_eq!(ids, ["dup3", "dup1", "dup2"]);
    assert_eq!(hits[0].score, hits[2].score);
}

#[test]
fn unknown_category_matches_nothing() {
    let rows = random_rows(71, 100, 8, 3);
    let e = engine(&rows, Storage::F32, options());
    let q = Query::by_vector(Rng::new(72).vector(8)).with_categories(["no-such-category"]);
    assert!(e.search_blocking(&q).unwrap().is_empty());
    let mixed =
        Query::by_vector(Rng::new(72).vector(8)).with_categories(["no-such-category", "c1"]);
    let hits = e.search_blocking(&mixed).unwrap();
    assert!(!hits.is_empty() && hits.iter().all(|h| &*h.category == "c1"));
}

#[test]
fn top_k_larger_than_the_catalog_returns_every_row() {
    let rows = random_rows(81, 37, 10, 2);
    let e = engine(&rows, Storage::F32, options());
    let q = Rng::new(82).vector(10);
    let hits = e
        .search_blocking(&Query::by_vector(q.clone()).with_top_k(500))
        .unwrap();
    assert_eq!(hits.len(), 37);
    assert_exact(
        &hits,
        &Expect {
            rows: &rows,
            query: &q,
            k: 500,
            categories: &[],
            min_score: -2.0,
            excluded: &[],
        },
    );
}

#[test]
fn bad_queries_are_refused_with_clear_errors() {
    let rows = random_rows(91, 20, 6, 1);
    let e = engine(
        &rows,
        Storage::F32,
        EngineOptions {
            max_top_k: 100,
            ..options()
        },
    );
    let v = |x: Vec<f32>| e.search_blocking(&Query::by_vector(x)).unwrap_err();
    assert_eq!(
        v(vec![1.0; 5]),
        QueryError::Dimension {
            expected: 6,
            found: 5
        }
    );
    assert_eq!(v(vec![0.0; 6]), QueryError::ZeroVector);
    assert_eq!(
        v(vec![1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]),
        QueryError::NonFinite { index: 1 }
    );
    let q = Query::by_vector(vec![1.0; 6]);
    assert_eq!(
        e.search_blocking(&q.clone().with_top_k(0)).unwrap_err(),
        QueryError::TopK { top_k: 0, max: 100 }
    );
    assert_eq!(
        e.search_blocking(&q.clone().with_top_k(101))
            .unwrap_err()
            .to_string(),
        "top_k 101 out of range 1..=100"
    );
    assert_eq!(
        e.search_blocking(&q.with_min_score(f32::NAN)).unwrap_err(),
        QueryError::MinScore
    );
}

#[test]
fn batch_results_equal_one_by_one_results_bit_for_bit() {
    let rows = random_rows(101, 2500, 96, 5);
    let e = engine(&rows, Storage::F32, options());
    let mut rng = Rng::new(102);
    let queries: Vec<Query> = (0..23)
        .map(|i| {
            let q = match i % 4 {
                0 => Query::by_vector(rng.vector(96)),
                1 => Query::by_vector(rng.vector(96)).with_categories(["c1", "c3"]),
                2 => Query::by_id(format!("p{}", rng.below(2500))),
                _ => Query::by_vector(rng.vector(96))
                    .with_min_score(0.1)
                    .with_categories(["c4"]),
            };
            q.with_top_k(1 + i * 3)
        })
        .collect();
    let batch = e.search_batch(&queries);
    for (q, b) in queries.iter().zip(batch) {
        assert_eq!(b.unwrap(), e.search_blocking(q).unwrap());
    }
}

#[test]
fn batch_reports_bad_queries_individually() {
    let rows = random_rows(103, 50, 4, 1);
    let e = engine(&rows, Storage::F32, options());
    let out = e.search_batch(&[
        Query::by_vector(vec![1.0, 0.0, 0.0, 0.0]),
        Query::by_id("missing"),
        Query::by_vector(vec![0.0, 1.0, 0.0, 0.0]),
    ]);
    assert!(out[0].is_ok() && out[2].is_ok());
    assert_eq!(out[1], Err(QueryError::UnknownId("missing".into())));
}

/// Recall@10 of int8 search with exact re-scoring on a fixed dataset, and exact scores.
#[test]
fn int8_search_with_rescoring_keeps_recall_and_exact_scores() {
    let rows = random_rows(111, 4000, 128, 3);
    let exact = engine(&rows, Storage::F32, options());
    for level in I8Level::available() {
        let e = engine(
            &rows,
            Storage::Int8,
            EngineOptions {
                i8_level: Some(level),
                ..options()
            },
        );
        assert_eq!(e.catalog().storage(), Storage::Int8);
        let mut rng = Rng::new(112);
        let (mut found, mut total) = (0, 0);
        for _ in 0..40 {
            let q = Query::by_vector(rng.vector(128)).with_top_k(10);
            let want = exact.search_blocking(&q).unwrap();
            let got = e.search_blocking(&q).unwrap();
            for h in &got {
                // Scores of int8 hits are the exact f32 scores.
                if let Some(x) = want.iter().find(|x| x.id == h.id) {
                    assert_eq!(x.score, h.score);
                    found += 1;
                }
            }
            total += want.len();
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.99, "{level:?}: recall@10 {recall}");
    }
}

#[test]
fn int8_filters_and_batches_match_one_by_one() {
    let rows = random_rows(121, 3000, 64, 4);
    let e = engine(&rows, Storage::Int8, options());
    let mut rng = Rng::new(122);
    let queries: Vec<Query> = (0..12)
        .map(|i| {
            let q = Query::by_vector(rng.vector(64)).with_top_k(5 + i);
            if i % 2 == 0 {
                q.with_categories(["c0", "c2"]).with_min_score(0.05)
            } else {
                q
            }
        })
        .collect();
    for (q, b) in queries.iter().zip(e.search_batch(&queries)) {
        let b = b.unwrap();
        assert_eq!(b, e.search_blocking(q).unwrap());
        if !q.categories.is_empty() {
            assert!(
                b.iter()
                    .all(|h| &*h.category == "c0" || &*h.category == "c2")
            );
            assert!(b.iter().all(|h| h.score >= 0.05));
        }
    }
}

#[test]
fn catalog_accessors_describe_the_rows() {
    let c = Catalog::from_rows(
        [
            ("x", "b", vec![3.0f32, 4.0]),
            ("y", "a", vec![0.0, 2.0]),
            ("z", "b", vec![1.0, 0.0]),
        ],
        Storage::F32,
    )
    .unwrap();
    assert_eq!((c.len(), c.dim()), (3, 2));
    assert_eq!(c.category_rows("a"), Some(0..1));
    assert_eq!(c.category_rows("b"), Some(1..3));
    let x = c.row_of("x").unwrap();
    assert_eq!(c.id(x), "x");
    assert_eq!(c.vector(x), &[0.6, 0.8]);
    assert_eq!(c.row_of("y"), Some(0));
    assert!(c.payload(x).is_empty());
    assert!(c.memory().f32_matrix >= 3 * 2 * 4);
}

#[test]
fn engine_refuses_an_unsupported_forced_level() {
    let rows = random_rows(131, 10, 4, 1);
    let unsupported = [
        F32Level::Scalar,
        F32Level::Avx2Fma,
        F32Level::Avx512,
        F32Level::Neon,
    ]
    .into_iter()
    .find(|l| !F32Level::available().contains(l))
    .unwrap();
    let r = Engine::new(
        common::catalog(&rows, Storage::F32),
        EngineOptions {
            f32_level: Some(unsupported),
            ..options()
        },
    );
    assert!(r.is_err());
}
