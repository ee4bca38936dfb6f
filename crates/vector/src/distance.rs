//! The distance the graph is built with.

use hnsw_rs::prelude::Distance;

/// `1 - a·b`, clamped to `[0, +∞)`: cosine distance for unit vectors.
///
/// Why not hnsw_rs's `DistDot`: for f32 it computes `1 - a·b` and
/// `assert!`s that the result is `>= 0`. The dot product of a unit vector with
/// itself (or with a near-duplicate) routinely rounds to `1.0000001`, so a
/// query equal to an indexed chunk — or inserting a duplicate text — would
/// panic inside the search. hnsw_rs's search also asserts on negative
/// distances and panics on NaN. Clamping at 0 keeps the order of everything
/// except ties within one ulp of a perfect match, and maps NaN to 0 (inputs
/// are validated anyway).
///
/// The type's full path (`sift_vector::distance::UnitDot`) is written into
/// saved graphs by hnsw_rs and checked on load: renaming it invalidates saved
/// graphs (they are then reported as corrupt and get rebuilt).
#[derive(Clone, Copy, Debug, Default)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    #[inline]
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// Similarity reported for a distance computed by [`UnitDot`].
#[inline]
pub(crate) fn similarity(distance: f32) -> f32 {
    1.0 - distance
}

/// Dot product with eight independent accumulators, so the compiler can use
/// SIMD lanes without reassociating a single running sum.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += x * y;
    }
    sum
}

/// Euclidean norm.
pub(crate) fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum() {
        for len in [0usize, 1, 7, 8, 9, 64, 383, 384] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn distance_is_clamped_and_never_nan() {
        // A unit vector whose self-dot rounds above 1.
        let v = vec![0.577_350_3f32; 3];
        assert!(dot(&v, &v) > 1.0);
        assert_eq!(UnitDot.eval(&v, &v), 0.0);
        let nan = vec![f32::NAN; 3];
        assert_eq!(UnitDot.eval(&v, &nan), 0.0);
        let opposite: Vec<f32> = v.iter().map(|x| -x).collect();
        assert!((UnitDot.eval(&v, &opposite) - 2.0).abs() < 1e-6);
    }
}
