//! Multi-head self-attention over a packed batch, without padding or masks.
//!
//! Each sequence attends only to itself, so the packed batch needs no
//! attention mask at all: for every (sequence, head) the kernel gathers Kᵀ
//! and V once, then for each query row computes the scores as 16-lane
//! multiply-adds over key positions, a fused softmax, and the weighted sum
//! of V rows. Scores never leave a row-sized buffer (no `[b, h, L, L]`
//! tensor as candle builds).

use super::ops::softmax_in_place;

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
    let d = hidden / heads;
    let stride = (3 * hidden) as isize;
    let scale = 1.0 / (d as f32).sqrt();
    let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let mut scores = vec![0f32; longest * longest];
    for w in offsets.windows(2) {
        let (start, len) = (w[0], w[1] - w[0]);
        if len == 0 {
            continue;
        }
        let s = &mut scores[..len * len];
        for h in 0..heads {
            let q = qkv[start * 3 * hidden + h * d..].as_ptr();
            let k = qkv[start * 3 * hidden + hidden + h * d..].as_ptr();
            let v = qkv[start * 3 * hidden + 2 * hidden + h * d..].as_ptr();
            // SAFETY: rows start..start+len of qkv exist (asserted length,
            // offsets within tokens), each read at most d columns past a
            // head offset < hidden inside a 3*hidden-wide row; `s` is
            // len × len; ctx rows start..start+len have `hidden` columns.
            unsafe {
                // S[len, len] = Q[len, d] · Kᵀ[d, len] · scale
                gemm::gemm(
                    len,
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
            // SAFETY: as above; ctx is [tokens, hidden].
            unsafe {
                // ctx[len, d] = P[len, len] · V[len, d]
                gemm::gemm(
                    len,
                    d,
                    len,
                    ctx[start * hidden + h * d..].as_mut_ptr(),
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
}

/// [`attention`] with Q, K, V and the probabilities rounded to bf16
/// (accumulation and softmax in f32), on AVX-512 BF16 where the CPU has it
/// and the head size is a multiple of 32; [`attention`] itself elsewhere.
/// The fast and int8 precisions use it: their projections already round
/// their operands to 16 bits or fewer.
pub fn attention_bf16(qkv: &[f32], offsets: &[usize], heads: usize, ctx: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(hidden) = hidden_size(qkv, offsets, ctx) {
        if super::Isa::detect().avx512_bf16 && super::attention_bf16::fits(hidden, heads) {
            // SAFETY: AVX-512 BF16 (with F and BW) was detected; the shapes
            // were checked and the head size fits.
            unsafe { super::attention_bf16::attention(qkv, offsets, hidden, heads, ctx) };
            return;
        }
    }
    attention(qkv, offsets, heads, ctx)
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
