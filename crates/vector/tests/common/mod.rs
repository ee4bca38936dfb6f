//! Deterministic test data: random unit vectors from a seeded generator.
#![allow(dead_code)]

use sift_core::ChunkId;

/// SplitMix64: tiny, seeded, good enough for test vectors.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit_interval(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit_interval(), self.unit_interval());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Uniformly distributed on the unit sphere.
    pub fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f64> = (0..dim).map(|_| self.normal()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| (x / norm) as f32).collect()
    }
}

/// `n` points with ids `0..n` (as ChunkIds spread over the u64 range).
pub fn points(seed: u64, n: usize, dim: usize) -> Vec<(ChunkId, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    (0..n).map(|i| (id(i), rng.unit_vector(dim))).collect()
}

/// The i-th test id: distinct hash-like values over the full u64 range
/// (multiplying by an odd constant is a bijection modulo 2^64).
pub fn id(i: usize) -> ChunkId {
    ChunkId((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_0000_0000_0000)
}

pub fn queries(seed: u64, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.unit_vector(dim)).collect()
}
