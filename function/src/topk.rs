//! A bounded collection of the best `k` (score, row) pairs.
//!
//! Order: higher score first; equal scores go to the lower row. That total order makes the
//! result independent of how the scan was split across threads or batched.

#![forbid(unsafe_code)] // only `kernels` may opt in to unsafe (see Cargo.toml)

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scored {
    pub score: f32,
    pub row: u32,
}

impl Scored {
    /// `Less` means `self` ranks better (comes first in results).
    fn rank(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.row.cmp(&other.row))
    }
}

/// Heap entry ordered so that the worst kept candidate is at the top.
#[derive(Clone, Copy, Debug)]
struct Worst(Scored);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank(&other.0)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
    /// Score of the worst kept candidate once full; -inf before.
    floor: f32,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    /// Cheap pre-check: could a candidate with this score enter?
    #[inline]
    pub(crate) fn admits(&self, score: f32) -> bool {
        score >= self.floor
    }

    #[inline]
    pub(crate) fn push(&mut self, score: f32, row: u32) {
        if self.k == 0 {
            return;
        }
        let candidate = Scored { score, row };
        if self.heap.len() < self.k {
            self.heap.push(Worst(candidate));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if candidate.rank(&worst.0) == Ordering::Less {
                *worst = Worst(candidate);
            } else {
                return;
            }
        }
        if self.heap.len() == self.k
            && let Some(worst) = self.heap.peek()
        {
            self.floor = worst.0.score;
        }
    }

    pub(crate) fn merge(&mut self, other: TopK) {
        for Worst(s) in other.heap {
            if self.admits(s.score) {
                self.push(s.score, s.row);
            }
        }
    }

    /// Best first.
    pub(crate) fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(Scored::rank);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k_with_ties_to_the_lower_row() {
        let mut t = TopK::new(3);
        for (score, row) in [(0.5, 7), (0.9, 3), (0.5, 2), (0.1, 0), (0.5, 5), (0.9, 1)] {
            if t.admits(score) {
                t.push(score, row);
            }
        }
        let rows: Vec<u32> = t.into_sorted().iter().map(|s| s.row).collect();
        assert_eq!(rows, vec![1, 3, 2]);
    }

    #[test]
    fn merging_split_scans_equals_one_scan() {
        let scores: Vec<f32> = (0..100u32).map(|i| ((i * 37) % 11) as f32).collect();
        let mut whole = TopK::new(7);
        let (mut a, mut b) = (TopK::new(7), TopK::new(7));
        for (i, &s) in scores.iter().enumerate() {
            whole.push(s, i as u32);
            if i % 3 == 0 {
                a.push(s, i as u32)
            } else {
                b.push(s, i as u32)
            }
        }
        a.merge(b);
        assert_eq!(a.into_sorted(), whole.into_sorted());
    }
}
