//! Test fixtures: deterministic random catalogs and a naive reference search.
#![allow(dead_code)]

pub mod footer;

use lmi_similarity::{Catalog, Engine, EngineOptions, Hit, Storage};

/// splitmix64: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vector(&mut self, dim: usize) -> Vec<f32> {
        loop {
            let v: Vec<f32> = (0..dim).map(|_| self.uniform()).collect();
            if v.iter().any(|&x| x != 0.0) {
                return v;
            }
        }
    }
}

/// A catalog row as the tests build it.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub category: String,
    pub vector: Vec<f32>,
}

pub fn random_rows(seed: u64, n: usize, dim: usize, categories: usize) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| Row {
            id: format!("p{i}"),
            category: format!("c{}", rng.below(categories.max(1))),
            vector: rng.vector(dim),
        })
        .collect()
}

pub fn catalog(rows: &[Row], storage: Storage) -> Catalog {
    Catalog::from_rows(
        rows.iter()
            .map(|r| (r.id.as_str(), r.category.as_str(), r.vector.as_slice())),
        storage,
    )
    .expect("valid rows")
}

pub fn engine(rows: &[Row], storage: Storage, options: EngineOptions) -> Engine {
    Engine::new(catalog(rows, storage), options).expect("engine starts")
}

/// Options with a small pool, so tests exercise the parallel path on any machine.
pub fn options() -> EngineOptions {
    EngineOptions {
        threads: 3,
        ..EngineOptions::default()
    }
}

fn unit(v: &[f32]) -> Vec<f64> {
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    v.iter().map(|&x| f64::from(x) / n).collect()
}

/// Cosine similarity computed naively in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    unit(a).iter().zip(unit(b)).map(|(x, y)| x * y).sum()
}

/// What a correct answer must satisfy.
pub struct Expect<'a> {
    pub rows: &'a [Row],
    pub query: &'a [f32],
    pub k: usize,
    /// Categories allowed (empty = all).
    pub categories: &'a [&'a str],
    pub min_score: f64,
    pub excluded: &'a [&'a str],
}

pub const EPS: f64 = 1e-5;

/// Checks `hits` against the f64 reference: right scores, sorted, filters respected, and no
/// eligible row left out that scores better than the last hit (beyond rounding).
pub fn assert_exact(hits: &[Hit], e: &Expect<'_>) {
    let eligible: Vec<(usize, f64)> = e
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| e.categories.is_empty() || e.categories.contains(&r.category.as_str()))
        .filter(|(_, r)| !e.excluded.contains(&r.id.as_str()))
        .map(|(i, r)| (i, cosine(&r.vector, e.query)))
        .filter(|&(_, s)| s >= e.min_score - EPS)
        .collect();
    let surely: usize = eligible
        .iter()
        .filter(|&&(_, s)| s >= e.min_score + EPS)
        .count();
    assert!(hits.len() <= e.k, "more hits than k");
    assert!(
        hits.len() >= surely.min(e.k) && hits.len() <= eligible.len().min(e.k),
        "got {} hits, expected between {} and {}",
        hits.len(),
        surely.min(e.k),
        eligible.len().min(e.k)
    );
    for w in hits.windows(2) {
        assert!(w[0].score >= w[1].score, "hits not sorted: {w:?}");
    }
    let by_id = |id: &str| {
        e.rows
            .iter()
            .position(|r| r.id == id)
            .expect("hit id exists")
    };
    for h in hits {
        let row = &e.rows[by_id(&h.id)];
        assert_eq!(&*h.category, row.category);
        let want = cosine(&row.vector, e.query);
        assert!(
            (f64::from(h.score) - want).abs() < EPS,
            "score {} vs {want}",
            h.score
        );
        assert!(e.categories.is_empty() || e.categories.contains(&row.category.as_str()));
        assert!(
            !e.excluded.contains(&row.id.as_str()),
            "excluded id {} returned",
            row.id
        );
        assert!(f64::from(h.score) >= e.min_score - EPS);
    }
    if hits.len() == e.k {
        let last = f64::from(hits[e.k - 1].score);
        let returned: Vec<usize> = hits.iter().map(|h| by_id(&h.id)).collect();
        for &(i, s) in &eligible {
            if !returned.contains(&i) {
                assert!(
                    s <= last + EPS,
                    "row {} scores {s} > last hit {last}",
                    e.rows[i].id
                );
            }
        }
    }
}
