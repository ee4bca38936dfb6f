//! Multi-head self-attention over a packed batch, without padding or masks.
//!
//! Each sequence attends only to itself, so the packed batch needs no
//! attention mask at all: for every (sequence, head) the kernel gathers Kᵀ
//! and V once, then for each query row computes the scores as 16-lane
//! multiply-adds over key positions, a fused softmax, and the weighted sum
//! of V rows. Scores never leave a row-sized buffer (no `[b, h, L, L]`
//! tensor as candle builds).

use super::ops::softmax_in_place;
use std::ops::Range;

/// `qkv`: `[tokens, 3 * hidden]` rows holding Q | K | V (heads side by
/// side inside each); `offsets`: sequence boundaries (`offsets[0] = 0`,
/// last = tokens); writes `ctx`: `[tokens, hidden]`.
///
/// Per (sequence, head): `S = Q Kᵀ / √d` and `ctx = softmax(S) V` as two
/// calls of the `gemm` crate reading Q, K and V in place through strides
/// (no gathers), with the fused row softmax in between. A first version
/// with hand-written dot-product loops ran at 3 G multiply–adds/s — slower
/// than all six projections together — because the `P V` accumulation was
/// a latency-bound chain.
pub fn attention(qkv: &[f32], offsets: &[usize], heads: usize, ctx: &mut [f32]) {
    let Some(hidden) = hidden_size(qkv, offsets, ctx) else {
        return;
    };
    let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let mut scores = vec![0f32; longest * longest];
    for w in offsets.windows(2) {
        let (start, end) = (w[0], w[1]);
        sequence_f32(
            &qkv[start * 3 * hidden..end * 3 * hidden],
            heads,
            0..end - start,
            &mut ctx[start * hidden..end * hidden],
            &mut scores,
        );
    }
}

/// One sequence's attention for its query rows `queries`: `qkv` is the
/// sequence's `[len, 3 * hidden]` rows (keys and values are all of them),
/// `ctx` receives `[queries.len(), hidden]`; `scores` holds at least
/// `queries.len() × len`.
fn sequence_f32(
    qkv: &[f32],
    heads: usize,
    queries: Range<usize>,
    ctx: &mut [f32],
    scores: &mut [f32],
) {
    let rows = queries.len();
    if rows == 0 {
        return;
    }
    let hidden = ctx.len() / rows;
    let len = qkv.len() / (3 * hidden);
    assert!(
        queries.end <= len && ctx.len() == rows * hidden,
        "attention operand sizes"
    );
    let d = hidden / heads;
    let stride = (3 * hidden) as isize;
    let scale = 1.0 / (d as f32).sqrt();
    let s = &mut scores[..rows * len];
    for h in 0..heads {
        let q = qkv[queries.start * 3 * hidden + h * d..].as_ptr();
        let k = qkv[hidden + h * d..].as_ptr();
        let v = qkv[2 * hidden + h * d..].as_ptr();
        // SAFETY: `qkv` holds `len` rows of 3 * hidden (asserted), each
        // read at most d columns past a head offset < hidden inside its
        // row; Q is read for rows `queries` < len; `s` is rows × len; `ctx`
        // is rows × hidden.
        unsafe {
            // S[rows, len] = Q[rows, d] · Kᵀ[d, len] · scale
            gemm::gemm(
                rows,
                len,
                d,
                s.as_mut_ptr(),
                1,
                len as isize,
                false,
                q,
                1,
                stride,
                k,
                stride,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for row in s.chunks_exact_mut(len) {
            softmax_in_place(row);
        }
        // SAFETY: as above.
        unsafe {
            // ctx[rows, d] = P[rows, len] · V[len, d]
            gemm::gemm(
                rows,
                d,
                len,
                ctx[h * d..].as_mut_ptr(),
                1,
                hidden as isize,
                false,
                s.as_ptr(),
                1,
                len as isize,
                v,
                1,
                stride,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// One sequence's attention for its query rows `queries` only (keys and
/// values: the whole sequence), so that threads can share a long
/// sequence: `qkv` is the sequence's `[len, 3 * hidden]`, `ctx` receives
/// `[queries.len(), hidden]`. Each row is computed exactly as
/// [`attention`] (or, with `bf16`, [`attention_bf16`]) computes it.
pub fn attention_query_rows(
    qkv: &[f32],
    heads: usize,
    queries: Range<usize>,
    ctx: &mut [f32],
    bf16: bool,
) {
    let rows = queries.len();
    if rows == 0 {
        return;
    }
    let hidden = ctx.len() / rows;
    let len = qkv.len() / (3 * hidden);
    #[cfg(target_arch = "x86_64")]
    if bf16 && bf16_kernel_runs(hidden, heads) {
        // SAFETY: AVX-512 BF16 (with F and BW) was detected and the head
        // size fits; `sequence` checks the shapes.
        unsafe { super::attention_bf16::sequence(qkv, hidden, heads, queries, ctx) };
        return;
    }
    let _ = bf16;
    let mut scores = vec![0f32; rows * len];
    sequence_f32(qkv, heads, queries, ctx, &mut scores);
}

/// [`attention`] with Q, K, V and the probabilities rounded to bf16
/// (accumulation and softmax in f32), on AVX-512 BF16 where the CPU has it
/// and the head size is a multiple of 32; [`attention`] itself elsewhere.
/// The fast and int8 precisions use it: their projections already round
/// their operands to 16 bits or fewer.
pub fn attention_bf16(qkv: &[f32], offsets: &[usize], heads: usize, ctx: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(hidden) = hidden_size(qkv, offsets, ctx) {
        if bf16_kernel_runs(hidden, heads) {
            // SAFETY: AVX-512 BF16 (with F and BW) was detected; the shapes
            // were checked and the head size fits.
            unsafe { super::attention_bf16::attention(qkv, offsets, hidden, heads, ctx) };
            return;
        }
    }
    attention(qkv, offsets, heads, ctx)
}

/// Whether the `vdpbf16ps` attention runs here: the CPU has AVX-512 BF16
/// and the head size fits it.
#[cfg(target_arch = "x86_64")]
fn bf16_kernel_runs(hidden: usize, heads: usize) -> bool {
    super::Isa::detect().avx512_bf16 && super::attention_bf16::fits(hidden, heads)
}

/// The hidden size of a packed batch whose `qkv` is `[tokens, 3 * hidden]`
/// and `ctx` `[tokens, hidden]`; `None` for an empty batch.
fn hidden_size(qkv: &[f32], offsets: &[usize], ctx: &[f32]) -> Option<usize> {
    let tokens = offsets.last().copied().unwrap_or(0);
    if tokens == 0 {
        return None;
    }
    let hidden = ctx.len() / tokens;
    assert_eq!(
        qkv.len(),
        tokens * 3 * hidden,
        "qkv is not [tokens, 3 * hidden]"
    );
    Some(hidden)
}

/// As [`attention`] for the first query row of each sequence only (keys
/// and values still span the whole sequence): writes `ctx` as `[seqs,
/// hidden]`, row `i` for sequence `i`. A classification head reads nothing
/// else of the last layer.
pub fn attention_first_rows(qkv: &[f32], offsets: &[usize], heads: usize, ctx: &mut [f32]) {
    let seqs = offsets.len().saturating_sub(1);
    if seqs == 0 {
        return;
    }
    let hidden = ctx.len() / seqs;
    let tokens = offsets[seqs];
    assert_eq!(
        qkv.len(),
        tokens * 3 * hidden,
        "qkv is not [tokens, 3 * hidden]"
    );
    let d = hidden / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let mut scores = vec![0f32; longest];
    for (i, w) in offsets.windows(2).enumerate() {
        let (start, len) = (w[0], w[1] - w[0]);
        let out = &mut ctx[i * hidden..][..hidden];
        if len == 0 {
            out.fill(0.0);
            continue;
        }
        let rows = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
        let s = &mut scores[..len];
        for h in 0..heads {
            let q = &rows[h * d..][..d];
            for (j, sj) in s.iter_mut().enumerate() {
                let k = &rows[j * 3 * hidden + hidden + h * d..][..d];
                *sj = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            softmax_in_place(s);
            let o = &mut out[h * d..][..d];
            o.fill(0.0);
            for (j, &p) in s.iter().enumerate() {
                let v = &rows[j * 3 * hidden + 2 * hidden + h * d..][..d];
                for (o, v) in o.iter_mut().zip(v) {
                    *o += p * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain attention in f64, one sequence and head at a time.
    fn reference(qkv: &[f32], offsets: &[usize], heads: usize, hidden: usize) -> Vec<f64> {
        let d = hidden / heads;
        let tokens = *offsets.last().unwrap();
        let mut ctx = vec![0f64; tokens * hidden];
        let at = |t: usize, c: usize| qkv[t * 3 * hidden + c] as f64;
        for w in offsets.windows(2) {
            for h in 0..heads {
                for i in w[0]..w[1] {
                    let s: Vec<f64> = (w[0]..w[1])
                        .map(|j| {
                            (0..d)
                                .map(|x| at(i, h * d + x) * at(j, hidden + h * d + x))
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for x in 0..d {
                        ctx[i * hidden + h * d + x] = (w[0]..w[1])
                            .zip(&s)
                            .map(|(j, sj)| (sj - m).exp() / z * at(j, 2 * hidden + h * d + x))
                            .sum();
                    }
                }
            }
        }
        ctx
    }

    #[test]
    fn bf16_matches_plain_attention_up_to_rounding() {
        // Head sizes 32 (MiniLM) and 64; lengths below, at and above the
        // 8-row blocks and 32-key tiles, odd (a key pair half padding), a
        // one-token and an empty sequence.
        for (heads, hidden) in [(12usize, 384usize), (2, 128)] {
            let offsets = [0usize, 1, 18, 18, 50, 83, 211, 243];
            let tokens = 243;
            let qkv: Vec<f32> = (0..tokens * 3 * hidden)
                .map(|i| ((i as f32) * 0.618).sin() * 2.0)
                .collect();
            let mut ctx = vec![f32::NAN; tokens * hidden];
            attention_bf16(&qkv, &offsets, heads, &mut ctx);
            let want = reference(&qkv, &offsets, heads, hidden);
            let worst = ctx
                .iter()
                .zip(&want)
                .map(|(g, w)| (*g as f64 - w).abs())
                .fold(0.0, f64::max);
            eprintln!("heads {heads} x {}: max difference {worst}", hidden / heads);
            // Q, K, V and P in bf16 (8 bits of mantissa), |scores| up to ~8;
            // a wrong key, mask or sum is off by ~1 (values are within ±2).
            assert!(worst < 0.03, "heads {heads}: max difference {worst}");
            if crate::kernels::Isa::detect().avx512_bf16 {
                assert!(worst > 1e-5, "bf16 ran, so its rounding shows");
            }
        }
    }

    /// Query rows in shares, as threads sharing a sequence compute them,
    /// give each row what the whole sequence gives it, up to the order of
    /// the sums: in f32 the `gemm` crate picks its path by the number of
    /// rows (1 and 3 rows take another than 83), and a CI machine with
    /// AVX-512 BF16 showed a bf16 share of one row 7e-7 off (one ulp of the
    /// values, which lie within ±2). A wrong key, mask or row is off by
    /// more than 0.01.
    #[test]
    fn query_rows_equal_the_whole_sequence() {
        let (heads, hidden, len) = (4usize, 128usize, 83usize);
        let qkv: Vec<f32> = (0..len * 3 * hidden)
            .map(|i| ((i as f32) * 0.377).cos() * 2.0)
            .collect();
        for bf16 in [false, true] {
            let mut whole = vec![f32::NAN; len * hidden];
            if bf16 {
                attention_bf16(&qkv, &[0, len], heads, &mut whole);
            } else {
                attention(&qkv, &[0, len], heads, &mut whole);
            }
            // Uneven shares, one inside a row block, one of a single row.
            for cuts in [vec![0, 32, 64, len], vec![0, 3, 4, len], vec![0, len]] {
                let mut shared = vec![f32::NAN; len * hidden];
                for w in cuts.windows(2) {
                    let ctx = &mut shared[w[0] * hidden..w[1] * hidden];
                    attention_query_rows(&qkv, heads, w[0]..w[1], ctx, bf16);
                }
                let worst = shared
                    .iter()
                    .zip(&whole)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-5,
                    "bf16 {bf16}, shares {cuts:?}: rows differ from the whole sequence's by {worst}"
                );
            }
        }
    }

    #[test]
    fn first_rows_match_plain_attention() {
        let (heads, hidden) = (4, 64);
        let offsets = [0usize, 1, 18, 21, 60];
        let qkv: Vec<f32> = (0..60 * 3 * hidden)
            .map(|i| ((i as f32) * 0.377).cos() * 2.0)
            .collect();
        let mut ctx = vec![f32::NAN; 4 * hidden];
        attention_first_rows(&qkv, &offsets, heads, &mut ctx);
        let want = reference(&qkv, &offsets, heads, hidden);
        for (s, &start) in offsets[..4].iter().enumerate() {
            for c in 0..hidden {
                let (g, w) = (ctx[s * hidden + c], want[start * hidden + c]);
                assert!((g as f64 - w).abs() < 1e-5, "seq {s} col {c}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn matches_plain_attention_on_ragged_sequences() {
        let (heads, hidden) = (4, 64);
        let offsets = [0usize, 1, 18, 21, 60];
        let tokens = 60;
        let qkv: Vec<f32> = (0..tokens * 3 * hidden)
            .map(|i| ((i as f32) * 0.618).sin() * 2.0)
            .collect();
        let mut ctx = vec![0f32; tokens * hidden];
        attention(&qkv, &offsets, heads, &mut ctx);
        let want = reference(&qkv, &offsets, heads, hidden);
        for (i, (g, w)) in ctx.iter().zip(&want).enumerate() {
            assert!((*g as f64 - w).abs() < 1e-5, "{i}: {g} vs {w}");
        }
    }
}
