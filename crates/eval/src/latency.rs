//! Latency summaries.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Mean and percentiles of per-query latencies, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// Number of measurements.
    pub n: usize,
}

impl Latency {
    /// Summarise per-query durations. Percentiles use the nearest-rank
    /// rule: the p-th percentile is the smallest measurement that is at
    /// least p % of all measurements (no interpolation, so every figure
    /// reported is a latency some query actually had).
    pub fn of(samples: &[Duration]) -> Latency {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        if ms.is_empty() {
            return Latency::default();
        }
        ms.sort_by(f64::total_cmp);
        Latency {
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
            p50_ms: percentile(&ms, 50.0),
            p95_ms: percentile(&ms, 95.0),
            max_ms: *ms.last().expect("not empty"),
            n: ms.len(),
        }
    }
}

/// Nearest-rank percentile of sorted values: the value at rank
/// ⌈p/100 · n⌉ (ranks from 1). `sorted` must not be empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no values");
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&v, 100.0), 20.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
        // 101 values: p95 is the 96th.
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 95.0), 95.0);
    }

    #[test]
    fn summary_of_durations() {
        let samples: Vec<Duration> = [30, 10, 20, 40, 1000]
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        let l = Latency::of(&samples);
        assert_eq!(l.n, 5);
        assert!((l.mean_ms - 220.0).abs() < 1e-9);
        assert!((l.p50_ms - 30.0).abs() < 1e-9);
        // ⌈0.95 · 5⌉ = 5: the slowest query.
        assert!((l.p95_ms - 1000.0).abs() < 1e-9);
        assert!((l.max_ms - 1000.0).abs() < 1e-9);
        assert_eq!(Latency::of(&[]), Latency::default());
    }
}
