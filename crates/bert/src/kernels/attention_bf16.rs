//! Attention in the fast precision on AVX-512 BF16 (`vdpbf16ps`): Q, K, V
//! and the probabilities rounded to bf16, products accumulated and the
//! softmax computed in f32.
//!
//! The f32 attention calls the `gemm` crate twice per (sequence, head) on
//! matrices of 128 × 32 × 128: small enough that its packing and edge
//! handling hold it near half of the FMA peak (57 GFLOP/s a core on Zen 4,
//! a quarter of an int8 rerank's time). Here each head's Q, K and V are
//! rounded once into the layouts `vdpbf16ps` reads (pairs of values in each
//! 32-bit lane), and each block of 8 query rows runs `S = Q Kᵀ`, the softmax
//! and `P V` while its scores are still in L1: 16 accumulators, two vector
//! loads and eight broadcasts per 16 dot products, twice f32 FMA's
//! multiply rate.

use std::arch::x86_64::*;
use std::ops::Range;

/// Query rows per block: 8 rows × 2 vectors = 16 accumulators.
const ROWS: usize = 8;
/// Keys per score tile, and columns per pass of `P V`: two 16-lane vectors.
const WIDTH: usize = 32;

/// Whether [`attention`] handles heads of `hidden / heads` columns.
pub fn fits(hidden: usize, heads: usize) -> bool {
    heads > 0 && hidden.is_multiple_of(heads) && (hidden / heads).is_multiple_of(WIDTH)
}

/// One head of one sequence in the layouts the products read, and the
/// scores of one block of query rows. Grown to the longest sequence seen;
/// one per worker thread.
#[derive(Default)]
struct Scratch {
    /// Q × 1/√d: row `i` is `d / 2` bf16 pairs at `i * d / 2`; rows past
    /// the sequence up to a whole block are zero.
    q: Vec<u32>,
    /// K: for key block `b` (16 keys) and dimension pair `t`, 16 lanes
    /// (one per key) at `(b * d / 2 + t) * 16`.
    k: Vec<u32>,
    /// V: for key pair `u` and column block `c` (16 columns), 16 lanes of
    /// `(V[2u][col], V[2u + 1][col])` at `(u * d / 16 + c) * 16`.
    v: Vec<u32>,
    /// Scores of one block, `[ROWS, keys]`.
    s: Vec<f32>,
    /// Their unnormalised probabilities as bf16 key pairs, `[ROWS, keys / 2]`.
    p: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

/// As [`super::attention`] (same arguments, and the batch's `hidden`
/// size), in bf16 products.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16; `qkv` is `[tokens, 3 *
/// hidden]` and `ctx` `[tokens, hidden]` for the last offset's `tokens`;
/// [`fits`]`(hidden, heads)`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn attention(
    qkv: &[f32],
    offsets: &[usize],
    hidden: usize,
    heads: usize,
    ctx: &mut [f32],
) {
    for w in offsets.windows(2) {
        let (start, end) = (w[0], w[1]);
        sequence(
            &qkv[start * 3 * hidden..end * 3 * hidden],
            hidden,
            heads,
            0..end - start,
            &mut ctx[start * hidden..end * hidden],
        );
    }
}

/// One sequence's attention for its query rows `queries` (keys and values:
/// all its rows): `qkv` is the sequence's `[len, 3 * hidden]` rows, `ctx`
/// receives `[queries.len(), hidden]`.
///
/// # Safety
/// As [`attention`]; `queries` lies within the sequence.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub unsafe fn sequence(
    qkv: &[f32],
    hidden: usize,
    heads: usize,
    queries: Range<usize>,
    ctx: &mut [f32],
) {
    assert!(fits(hidden, heads), "head size is not a multiple of 32");
    let len = qkv.len() / (3 * hidden);
    assert!(
        queries.end <= len && ctx.len() == queries.len() * hidden,
        "attention operand sizes"
    );
    if queries.is_empty() {
        return;
    }
    let head = Head {
        rows: qkv,
        len,
        queries,
        hidden,
        d: hidden / heads,
    };
    SCRATCH.with_borrow_mut(|scratch| {
        for h in 0..heads {
            head.pack(h, scratch);
            head.attend(h, scratch, ctx);
        }
    })
}

/// One sequence: `rows` is its `[len, 3 * hidden]` slice of qkv, and
/// `queries` the rows whose attention is wanted.
struct Head<'a> {
    rows: &'a [f32],
    len: usize,
    queries: Range<usize>,
    hidden: usize,
    d: usize,
}

impl Head<'_> {
    /// Keys rounded up to whole score tiles.
    fn keys(&self) -> usize {
        self.len.div_ceil(WIDTH) * WIDTH
    }

    /// 32 values of row `row` from column `col`, rounded to bf16 pairs
    /// (zero past the sequence).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn row32(&self, row: usize, col: usize, scale: __m512) -> __m512i {
        if row >= self.len {
            return _mm512_setzero_si512();
        }
        let p = self.rows.as_ptr().add(row * 3 * self.hidden + col);
        let lo = _mm512_mul_ps(_mm512_loadu_ps(p), scale);
        let hi = _mm512_mul_ps(_mm512_loadu_ps(p.add(16)), scale);
        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
    }

    /// Round head `h`'s Q (scaled by 1/√d), K and V into `scratch`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pack(&self, h: usize, scratch: &mut Scratch) {
        let (d, keys) = (self.d, self.keys());
        let (pairs, chunks) = (d / 2, d / WIDTH);
        let rows = self.queries.len().div_ceil(ROWS) * ROWS;
        scratch.q.resize(rows * pairs, 0);
        scratch.k.resize(keys * pairs, 0);
        scratch.v.resize(keys * pairs, 0);
        scratch.s.resize(ROWS * keys, 0.0);
        scratch.p.resize(ROWS * keys / 2, 0);
        let one = _mm512_set1_ps(1.0);
        let scale = _mm512_set1_ps(1.0 / (d as f32).sqrt());
        let (qc, kc, vc) = (h * d, self.hidden + h * d, 2 * self.hidden + h * d);
        for i in 0..rows {
            // Rows past the queries are zero (row32 of a row past the
            // sequence), or real rows whose results are never stored.
            let row = self.queries.start + i;
            for c in 0..chunks {
                let dst = scratch.q.as_mut_ptr().add(i * pairs + c * 16);
                _mm512_storeu_si512(dst as *mut __m512i, self.row32(row, qc + c * WIDTH, scale));
            }
        }
        // K transposed, 16 keys × 16 dimension pairs at a time: lane
        // `j % 16` of dimension pair t's vector is key j. (A scatter per
        // key row took a third of this kernel's time on Zen 4.)
        for block in 0..keys / 16 {
            for c in 0..chunks {
                let mut rows = [_mm512_setzero_si512(); 16];
                for (r, row) in rows.iter_mut().enumerate() {
                    *row = self.row32(16 * block + r, kc + c * WIDTH, one);
                }
                let dst = scratch.k.as_mut_ptr().add((block * pairs + c * 16) * 16);
                for (t, column) in transpose16(rows).into_iter().enumerate() {
                    _mm512_storeu_si512(dst.add(t * 16) as *mut __m512i, column);
                }
            }
        }
        // V: a lane holds one column of a key pair; u16 lane 2x takes
        // column x of the first key (`a`, lanes 0..32), 2x + 1 of the
        // second (`b`, lanes 32..64).
        let interleave_lo = _mm512_setr_epi32(
            0x0020_0000,
            0x0021_0001,
            0x0022_0002,
            0x0023_0003,
            0x0024_0004,
            0x0025_0005,
            0x0026_0006,
            0x0027_0007,
            0x0028_0008,
            0x0029_0009,
            0x002a_000a,
            0x002b_000b,
            0x002c_000c,
            0x002d_000d,
            0x002e_000e,
            0x002f_000f,
        );
        let interleave_hi = _mm512_add_epi16(interleave_lo, _mm512_set1_epi16(16));
        for u in 0..keys / 2 {
            for c in 0..chunks {
                let a = self.row32(2 * u, vc + c * WIDTH, one);
                let b = self.row32(2 * u + 1, vc + c * WIDTH, one);
                let dst = scratch.v.as_mut_ptr().add((u * d / 16 + 2 * c) * 16);
                _mm512_storeu_si512(
                    dst as *mut __m512i,
                    _mm512_permutex2var_epi16(a, interleave_lo, b),
                );
                _mm512_storeu_si512(
                    dst.add(16) as *mut __m512i,
                    _mm512_permutex2var_epi16(a, interleave_hi, b),
                );
            }
        }
    }

    /// This head's columns of `ctx` (the queries' `[queries.len(), hidden]` rows).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn attend(&self, h: usize, scratch: &mut Scratch, ctx: &mut [f32]) {
        let (d, keys, len) = (self.d, self.keys(), self.len);
        let pairs = d / 2;
        let key_pairs = len.div_ceil(2);
        let rows = self.queries.len();
        for i0 in (0..rows).step_by(ROWS) {
            // S = Q Kᵀ, 32 keys at a time.
            for tile in 0..len.div_ceil(WIDTH) {
                let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
                let k0 = scratch.k.as_ptr().add(2 * tile * pairs * 16);
                let k1 = k0.add(pairs * 16);
                let q = scratch.q.as_ptr().add(i0 * pairs);
                for t in 0..pairs {
                    let b0 = bf16(_mm512_loadu_si512(k0.add(t * 16) as *const __m512i));
                    let b1 = bf16(_mm512_loadu_si512(k1.add(t * 16) as *const __m512i));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let a = bf16(_mm512_set1_epi32(*q.add(r * pairs + t) as i32));
                        row[0] = _mm512_dpbf16_ps(row[0], a, b0);
                        row[1] = _mm512_dpbf16_ps(row[1], a, b1);
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    let s = scratch.s.as_mut_ptr().add(r * keys + tile * WIDTH);
                    _mm512_storeu_ps(s, row[0]);
                    _mm512_storeu_ps(s.add(16), row[1]);
                }
            }
            let real = (rows - i0).min(ROWS);
            let inverse_sums = self.softmax(scratch, real);
            // ctx = P V / Σ, 32 columns at a time.
            for c in 0..d / WIDTH {
                let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
                let p = scratch.p.as_ptr();
                for u in 0..key_pairs {
                    let v = scratch.v.as_ptr().add((u * d / 16 + 2 * c) * 16);
                    let b0 = bf16(_mm512_loadu_si512(v as *const __m512i));
                    let b1 = bf16(_mm512_loadu_si512(v.add(16) as *const __m512i));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let a = bf16(_mm512_set1_epi32(*p.add(r * keys / 2 + u) as i32));
                        row[0] = _mm512_dpbf16_ps(row[0], a, b0);
                        row[1] = _mm512_dpbf16_ps(row[1], a, b1);
                    }
                }
                for (r, row) in acc.iter().enumerate().take(real) {
                    let inv = _mm512_set1_ps(inverse_sums[r]);
                    let out = ctx
                        .as_mut_ptr()
                        .add((i0 + r) * self.hidden + h * d + c * WIDTH);
                    _mm512_storeu_ps(out, _mm512_mul_ps(row[0], inv));
                    _mm512_storeu_ps(out.add(16), _mm512_mul_ps(row[1], inv));
                }
            }
        }
    }

    /// Rows `0..real` of the block's scores into unnormalised bf16
    /// probabilities `e^{s − max}` (zero past the sequence's keys); returns
    /// each row's 1 / Σ. Rows past `real` are zeroed: their queries are
    /// padding.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn softmax(&self, scratch: &mut Scratch, real: usize) -> [f32; ROWS] {
        let (len, keys) = (self.len, self.keys());
        let used = len.div_ceil(WIDTH);
        // Lanes of 16-key vector `v` that hold keys of the sequence.
        let mask = |v: usize| -> __mmask16 {
            let n = len.saturating_sub(16 * v).min(16);
            ((1u32 << n) - 1) as __mmask16
        };
        let mut inverse_sums = [0f32; ROWS];
        for (r, inv) in inverse_sums.iter_mut().enumerate() {
            let p = scratch.p.as_mut_ptr().add(r * keys / 2);
            if r >= real {
                std::slice::from_raw_parts_mut(p, used * 16).fill(0);
                continue;
            }
            let s = scratch.s.as_ptr().add(r * keys);
            let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
            for v in 0..2 * used {
                m = _mm512_mask_max_ps(m, mask(v), m, _mm512_loadu_ps(s.add(16 * v)));
            }
            let m = _mm512_set1_ps(_mm512_reduce_max_ps(m));
            let mut sum = _mm512_setzero_ps();
            for tile in 0..used {
                let (v0, v1) = (2 * tile, 2 * tile + 1);
                let e0 = _mm512_maskz_mov_ps(
                    mask(v0),
                    super::ops::exp_x16(_mm512_sub_ps(_mm512_loadu_ps(s.add(16 * v0)), m)),
                );
                let e1 = _mm512_maskz_mov_ps(
                    mask(v1),
                    super::ops::exp_x16(_mm512_sub_ps(_mm512_loadu_ps(s.add(16 * v1)), m)),
                );
                sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
                let pair = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(e1, e0));
                _mm512_storeu_si512(p.add(16 * tile) as *mut __m512i, pair);
            }
            *inv = 1.0 / _mm512_reduce_add_ps(sum);
        }
        inverse_sums
    }
}

/// The 16 × 16 transpose of 32-bit lanes: column `j` of the rows is row
/// `j` of the result (unpack pairs, then quads, then 128-bit lanes twice).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        u[4 * i] = _mm512_unpacklo_epi64(a, c);
        u[4 * i + 1] = _mm512_unpackhi_epi64(a, c);
        u[4 * i + 2] = _mm512_unpacklo_epi64(b, d);
        u[4 * i + 3] = _mm512_unpackhi_epi64(b, d);
    }
    // u[4i + k] holds, in each 128-bit lane l, element k of rows 4i..4i+4
    // at column 4l + k.
    for i in 0..2 {
        for k in 0..4 {
            t[8 * i + k] = _mm512_shuffle_i32x4::<0x88>(u[8 * i + k], u[8 * i + 4 + k]);
            t[8 * i + 4 + k] = _mm512_shuffle_i32x4::<0xdd>(u[8 * i + k], u[8 * i + 4 + k]);
        }
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        out[k] = _mm512_shuffle_i32x4::<0x88>(t[k], t[8 + k]);
        out[8 + k] = _mm512_shuffle_i32x4::<0xdd>(t[k], t[8 + k]);
    }
    out
}

#[inline(always)]
fn bf16(v: __m512i) -> __m512bh {
    // SAFETY: both are 512 bits of plain data.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !crate::kernels::Isa::detect().avx512 {
            return;
        }
        let m: Vec<i32> = (0..256).collect();
        // SAFETY: AVX-512 F detected above.
        let got = unsafe {
            let rows: [__m512i; 16] =
                std::array::from_fn(|r| _mm512_loadu_si512(m[16 * r..].as_ptr() as *const __m512i));
            transpose16(rows).map(|v| {
                let mut lanes = [0i32; 16];
                _mm512_storeu_si512(lanes.as_mut_ptr() as *mut __m512i, v);
                lanes
            })
        };
        for (j, column) in got.iter().enumerate() {
            let want: Vec<i32> = (0..16).map(|r| m[16 * r + j]).collect();
            assert_eq!(column.to_vec(), want, "column {j}");
        }
    }
}
