//! Where the forward pass spends its time: per-operation wall time, summed
//! over the threads that run batches side by side.
//!
//! Off by default (one relaxed atomic load per operation); `sift-speed`
//! switches it on for one extra, untimed round and prints the table. The
//! figures are thread-seconds: with two batch workers the total is about
//! twice the wall time of the request, and each row's share of the total is
//! its share of the work.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The operations of one encoder layer, plus what surrounds the layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Word-piece tokenisation of the inputs (before any batch runs).
    Tokenize,
    /// Word + position + token type lookups and their layer norm.
    Embeddings,
    /// The fused Q | K | V projection.
    Qkv,
    /// `softmax(Q Kᵀ / √d) V` per sequence and head.
    Attention,
    /// The attention output projection.
    AttnOut,
    /// Both residual layer norms of a layer.
    LayerNorm,
    /// The first feed-forward projection (with its GELU when fused).
    FfnIn,
    /// GELU when it runs as a pass of its own.
    Gelu,
    /// The second feed-forward projection.
    FfnOut,
    /// Rounding activations to bf16 for the next product.
    ToBf16,
    /// Pooling and heads (mean pooling, pooler + classifier).
    Head,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Tokenize,
        Op::Embeddings,
        Op::Qkv,
        Op::Attention,
        Op::AttnOut,
        Op::LayerNorm,
        Op::FfnIn,
        Op::Gelu,
        Op::FfnOut,
        Op::ToBf16,
        Op::Head,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Tokenize => "tokenize",
            Op::Embeddings => "embeddings",
            Op::Qkv => "qkv projection",
            Op::Attention => "attention",
            Op::AttnOut => "attention output",
            Op::LayerNorm => "residual + layer norm",
            Op::FfnIn => "ffn in",
            Op::Gelu => "gelu",
            Op::FfnOut => "ffn out",
            Op::ToBf16 => "round to bf16",
            Op::Head => "pooling / head",
        }
    }
}

const OPS: usize = Op::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; OPS] = [const { AtomicU64::new(0) }; OPS];
static CALLS: [AtomicU64; OPS] = [const { AtomicU64::new(0) }; OPS];
static FLOPS: [AtomicU64; OPS] = [const { AtomicU64::new(0) }; OPS];

/// Start recording (and clear what was recorded).
pub fn enable() {
    reset();
    ENABLED.store(true, Ordering::Relaxed);
}

/// Stop recording; what was recorded stays until [`take`] or [`enable`].
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

fn reset() {
    for i in 0..OPS {
        NANOS[i].store(0, Ordering::Relaxed);
        CALLS[i].store(0, Ordering::Relaxed);
        FLOPS[i].store(0, Ordering::Relaxed);
    }
}

/// One operation's totals.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    pub op: Op,
    pub calls: u64,
    /// Thread-seconds.
    pub seconds: f64,
    /// Useful floating-point operations (2 per multiply–add) of the matrix
    /// products; 0 for the element-wise operations.
    pub flops: f64,
}

/// What was recorded since [`enable`], and clear it.
pub fn take() -> Vec<OpTime> {
    let out = Op::ALL
        .iter()
        .enumerate()
        .map(|(i, &op)| OpTime {
            op,
            calls: CALLS[i].load(Ordering::Relaxed),
            seconds: NANOS[i].load(Ordering::Relaxed) as f64 * 1e-9,
            flops: FLOPS[i].load(Ordering::Relaxed) as f64,
        })
        .collect();
    reset();
    out
}

/// Times `f` as `op` when recording is on.
#[inline]
pub(crate) fn time<T>(op: Op, flops: usize, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let i = op as usize;
    NANOS[i].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    CALLS[i].fetch_add(1, Ordering::Relaxed);
    FLOPS[i].fetch_add(flops as u64, Ordering::Relaxed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_enabled() {
        time(Op::Gelu, 0, || ());
        enable();
        time(Op::Qkv, 10, || {
            std::thread::sleep(std::time::Duration::from_millis(2))
        });
        time(Op::Qkv, 10, || ());
        disable();
        time(Op::Qkv, 10, || ());
        let t = take();
        let qkv = t.iter().find(|t| t.op == Op::Qkv).unwrap();
        assert_eq!(qkv.calls, 2);
        assert_eq!(qkv.flops, 20.0);
        assert!(qkv.seconds >= 0.002, "{}", qkv.seconds);
        assert_eq!(t.iter().find(|t| t.op == Op::Gelu).unwrap().calls, 0);
        assert!(take().iter().all(|t| t.calls == 0), "take clears");
    }
}
