//! The coalescing front: concurrent queries share passes and get the same answers as alone.

mod common;

use std::time::Duration;

use common::{Rng, engine, options, random_rows};
use lmi_similarity::{EngineOptions, Query, QueryError, Storage};

fn mixed_queries(seed: u64, n: usize, dim: usize, catalog_len: usize) -> Vec<Query> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let q = match i % 5 {
                0 | 1 => Query::by_vector(rng.vector(dim)),
                2 => Query::by_vector(rng.vector(dim)).with_categories(["c0", "c3"]),
                3 => Query::by_id(format!("p{}", rng.below(catalog_len))),
                _ => Query::by_vector(rng.vector(dim))
                    .with_min_score(0.05)
                    .excluding(["p1", "p2"]),
            };
            q.with_top_k(1 + i % 17)
        })
        .collect()
}

async fn concurrent_equals_individual(storage: Storage, opts: EngineOptions) {
    let rows = random_rows(7, 3000, 80, 4);
    let e = engine(&rows, storage, opts);
    let queries = mixed_queries(8, 96, 80, rows.len());
    let tasks: Vec<_> = queries
        .iter()
        .cloned()
        .map(|q| {
            let e = e.clone();
            tokio::spawn(async move { e.search(q).await })
        })
        .collect();
    for (q, t) in queries.iter().zip(tasks) {
        let coalesced = t.await.expect("task ran").expect("query answered");
        assert_eq!(
            coalesced,
            e.search_blocking(q).expect("query answered"),
            "query {q:?}"
        );
    }
    let stats = e.stats();
    assert_eq!(stats.coalesced_queries, 96);
    assert!(stats.coalesced_batches >= 1 && stats.coalesced_batches <= 96);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_queries_get_the_same_results_as_one_by_one() {
    concurrent_equals_individual(Storage::F32, options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_int8_queries_get_the_same_results_as_one_by_one() {
    concurrent_equals_individual(Storage::Int8, options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_arriving_together_share_passes() {
    // A wait far longer than any test takes: only a full batch (max_batch) starts a pass, so the
    // passes are counted exactly however slowly the queries arrive on a loaded machine.
    let opts = EngineOptions {
        max_wait: Duration::from_secs(600),
        max_batch: 16,
        ..options()
    };
    concurrent_equals_individual(Storage::F32, opts.clone()).await;
    let rows = random_rows(9, 500, 16, 2);
    let e = engine(&rows, Storage::F32, opts);
    let queries = mixed_queries(10, 48, 16, rows.len());
    let tasks: Vec<_> = queries
        .into_iter()
        .map(|q| {
            let e = e.clone();
            tokio::spawn(async move { e.search_with_pass(q).await })
        })
        .collect();
    for t in tasks {
        let (_, pass) = t.await.unwrap().unwrap();
        assert_eq!(pass.batch_size, 16, "{pass:?}");
    }
    let stats = e.stats();
    assert_eq!(stats.coalesced_queries, 48);
    assert_eq!(stats.coalesced_batches, 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_queries_fail_at_once_without_blocking_others() {
    let rows = random_rows(11, 100, 8, 2);
    let e = engine(&rows, Storage::F32, options());
    let bad = e.search(Query::by_vector(vec![1.0; 3])).await;
    assert_eq!(
        bad,
        Err(QueryError::Dimension {
            expected: 8,
            found: 3
        })
    );
    let good = e.search(Query::by_id("p5").with_top_k(3)).await.unwrap();
    assert_eq!(good.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_callers_do_not_stop_the_engine() {
    let rows = random_rows(12, 2000, 64, 2);
    let e = engine(&rows, Storage::F32, options());
    for i in 0..20 {
        let fut = e.search(Query::by_id(format!("p{i}")));
        // Give up immediately on some queries.
        let _ = tokio::time::timeout(Duration::from_micros(1), fut).await;
    }
    let hits = e.search(Query::by_id("p1").with_top_k(4)).await.unwrap();
    assert_eq!(
        hits,
        e.search_blocking(&Query::by_id("p1").with_top_k(4))
            .unwrap()
    );
}

#[test]
fn dropping_the_last_handle_stops_the_worker() {
    let rows = random_rows(13, 10, 4, 1);
    let e = engine(&rows, Storage::F32, options());
    let e2 = e.clone();
    drop(e);
    assert_eq!(e2.search_blocking(&Query::by_id("p1")).unwrap().len(), 9);
    drop(e2); // joins the worker; the test would hang if it did not stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pass_info_reports_the_batch_each_query_shared() {
    let rows = random_rows(11, 2000, 64, 4);
    let e = engine(&rows, Storage::F32, options());
    let queries = mixed_queries(12, 64, 64, rows.len());
    let tasks: Vec<_> = queries
        .iter()
        .cloned()
        .map(|q| {
            let e = e.clone();
            tokio::spawn(async move { e.search_with_pass(q).await })
        })
        .collect();
    let mut sizes = Vec::new();
    for (q, t) in queries.iter().zip(tasks) {
        let (hits, pass) = t.await.expect("task ran").expect("query answered");
        assert_eq!(hits, e.search_blocking(q).expect("query answered"));
        assert!(pass.batch_size >= 1 && pass.batch_size <= 64, "{pass:?}");
        sizes.push(pass.batch_size);
    }
    // Each pass of n queries is reported by exactly n of them.
    let stats = e.stats();
    let passes: usize = sizes.iter().map(|&n| 1.0 / n as f64).sum::<f64>().round() as usize;
    assert_eq!(passes as u64, stats.coalesced_batches, "sizes {sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_whose_deadline_passed_while_queued_are_dropped_unscanned() {
    let rows = random_rows(14, 500, 16, 2);
    // The worker holds a batch open for 2 s waiting for more queries: a deadline 20 ms away
    // passes while the query is queued (even if the three arrive slowly on a loaded machine).
    let e = engine(
        &rows,
        Storage::F32,
        EngineOptions {
            max_wait: Duration::from_secs(2),
            max_batch: 64,
            ..options()
        },
    );
    let soon = std::time::Instant::now() + Duration::from_millis(20);
    let late = std::time::Instant::now() + Duration::from_secs(60);
    let (expired, patient, unbounded) = tokio::join!(
        e.search_before(Query::by_id("p1"), Some(soon)),
        e.search_before(Query::by_id("p2").with_top_k(3), Some(late)),
        e.search_before(Query::by_id("p3").with_top_k(2), None),
    );
    assert_eq!(expired.map(|_| ()), Err(QueryError::DeadlineExceeded));
    let (hits, pass) = patient.expect("answered before its deadline");
    assert_eq!(
        hits,
        e.search_blocking(&Query::by_id("p2").with_top_k(3))
            .unwrap()
    );
    // The expired query did not take a place in the pass.
    assert_eq!(pass.batch_size, 2);
    assert_eq!(unbounded.expect("answered").0.len(), 2);
    assert_eq!(e.stats().coalesced_queries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_a_pass_fails_its_batch_and_stops_the_engine_without_hanging() {
    let rows = random_rows(15, 500, 16, 2);
    let e = engine(
        &rows,
        Storage::F32,
        EngineOptions {
            max_wait: Duration::from_millis(50),
            ..options()
        },
    );
    assert_eq!(e.search(Query::by_id("p1")).await.map(|h| h.len()), Ok(10));
    e.panic_in_next_pass();
    let batch: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move { e.search(Query::by_id(format!("p{i}"))).await })
        })
        .collect();
    for task in batch {
        let answer = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("a query of the failed pass is answered, not left waiting")
            .expect("task ran");
        assert_eq!(answer, Err(QueryError::SearchFailed));
    }
    // Every later query fails at once instead of waiting on a worker that is gone.
    let later = tokio::time::timeout(Duration::from_secs(10), e.search(Query::by_id("p9")))
        .await
        .expect("later queries do not hang");
    assert_eq!(later, Err(QueryError::EngineStopped));
    assert!(QueryError::SearchFailed.to_string().contains("failed"));
    // The blocking path does not use the worker and still answers.
    assert_eq!(e.search_blocking(&Query::by_id("p2")).unwrap().len(), 10);
    drop(e); // joins the stopped worker
}
