//! int8 matrix products on AVX-512 VNNI (`vpdpbusd`).
//!
//! One `vpdpbusd` multiplies 64 unsigned bytes by 64 signed bytes and adds
//! each group of four products into one of 16 i32 lanes: 64 multiply–adds
//! per instruction, twice `vdpbf16ps`'s 32 and four times f32 FMA's 16, at
//! the same one instruction per cycle on the CPUs measured (Zen 4; the
//! peaks `sift-speed` prints are measured, see [`super::peak`]).
//!
//! The quantisation is dynamic, as ONNX Runtime's and PyTorch's
//! `quantize_dynamic` for linear layers, but with activation scales per row
//! rather than per tensor:
//! * weights symmetric per output column, `q = round(w / s_w)` in
//!   `[-127, 127]` with `s_w = max|w_col| / 127`, done once at load time;
//! * activations asymmetric per row, the unsigned operand `vpdpbusd`
//!   wants: `u = round(x / s_x) + z` in `[0, 255]` with
//!   `s_x = (max(x, 0) − min(x, 0)) / 255` and the zero point
//!   `z = round(−min(x, 0) / s_x)`, done per call. A row that is mostly
//!   one-signed (GELU's output: nothing below −0.17) gets all 256 levels
//!   instead of the 128 a symmetric scale leaves it; symmetric rows cost
//!   nothing. (Symmetric per-row activations lost 0.017 nDCG@10 against
//!   f32 on the 20 quality queries of `sift-speed`; see eval/README.md.)
//! * the zero point is taken back exactly in i32 (`acc − z · Σ q_w`, the
//!   column sums kept from load time), then `y = s_x · s_w · acc + b` in
//!   f32.
//!
//! Four products of at most 255 × 127 never overflow an i32 lane, and k up
//! to 2^14 never overflows the sum, so the integer part is exact: all the
//! error is the rounding of the two operands to 8 bits.

use super::gemm::{MC, MR, NR};

/// k elements per `vpdpbusd` lane: four bytes.
pub(super) const KQ: usize = 4;

/// A `[n, k]` weight quantised per output column into 64-column panels:
/// panel `p`, k-quad `t` holds 64 columns × 4 bytes at `(p * kq + t) * 256`,
/// column `c`'s bytes `(q[c][4t], …, q[c][4t + 3])` at `4c` (k padded to a
/// multiple of 4 with zeros).
pub(super) struct Int8Weight {
    panels: Vec<i8>,
    /// `s_w` per column.
    scales: Vec<f32>,
    /// `Σ_k q[c][k]` per column, times a row's zero point is what the
    /// unsigned operand's offset added.
    sums: Vec<i32>,
    /// k rounded up to a multiple of [`KQ`].
    k_padded: usize,
}

/// Symmetric 8-bit quantisation of `values` with their own scale: the
/// scale and the rounded values (zero scale for an all-zero input, whose
/// values are then all zero).
pub fn quantize(values: &[f32]) -> (f32, impl Iterator<Item = i8> + '_) {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        0.0
    };
    let inv = inverse(scale);
    (
        scale,
        values
            .iter()
            .map(move |v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8),
    )
}

impl Int8Weight {
    /// `weight`: `[n, k]` row-major (PyTorch layout), `n` a multiple of 64.
    pub fn new(weight: &[f32], n: usize, k: usize) -> Int8Weight {
        assert!(n.is_multiple_of(NR), "int8 panels need n % 64 == 0");
        let k_padded = k.div_ceil(KQ) * KQ;
        let kq = k_padded / KQ;
        let mut panels = vec![0i8; n * k_padded];
        let mut scales = Vec::with_capacity(n);
        let mut sums = Vec::with_capacity(n);
        for c in 0..n {
            let (scale, q) = quantize(&weight[c * k..][..k]);
            scales.push(scale);
            let (p, within) = (c / NR, c % NR);
            let mut sum = 0i32;
            for (i, q) in q.enumerate() {
                let (t, byte) = (i / KQ, i % KQ);
                panels[(p * kq + t) * NR * KQ + within * KQ + byte] = q;
                sum += q as i32;
            }
            sums.push(sum);
        }
        Int8Weight {
            panels,
            scales,
            sums,
            k_padded,
        }
    }

    /// The weight as the kernel sees it, `[n, k]` (tests).
    #[cfg(test)]
    pub fn dequantized(&self, n: usize, k: usize) -> Vec<f32> {
        let kq = self.k_padded / KQ;
        let mut w = vec![0f32; n * k];
        for c in 0..n {
            for i in 0..k {
                let q = self.panels[((c / NR) * kq + i / KQ) * NR * KQ + (c % NR) * KQ + i % KQ];
                w[c * k + i] = q as f32 * self.scales[c];
            }
        }
        w
    }
}

/// A product's input quantised per row, reused by each worker thread.
#[derive(Default)]
pub(super) struct QuantizedRows {
    /// `[rows, k_padded]`, each value offset by its row's zero point.
    data: Vec<u8>,
    /// `s_x` per row.
    scales: Vec<f32>,
    /// `z` per row.
    zeros: Vec<i32>,
}

/// Asymmetric 8-bit quantisation of one row: `(s_x, z)` such that
/// `x ≈ s_x · (u − z)` for `u` in `[0, 255]`; zero is exact. `(0, 0)` for
/// a row of zeros (or one with a non-finite value, which then reads as
/// zeros rather than poisoning every output).
pub fn row_scale(min: f32, max: f32) -> (f32, i32) {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    let scale = (hi - lo) / 255.0;
    if !(scale > 0.0 && scale.is_finite()) {
        return (0.0, 0);
    }
    (
        scale,
        (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32,
    )
}

/// `x`'s level for a row of `1 / s_x = inv` and zero point `zero`: round
/// to nearest even (as the vector code's conversion), shift, clamp.
#[cfg_attr(not(any(test, target_arch = "x86_64")), allow(dead_code))]
fn level(x: f32, inv: f32, zero: i32) -> u8 {
    ((x * inv).round_ties_even() + zero as f32).clamp(0.0, 255.0) as u8
}

/// `1 / s_x`, zero for a zero scale (every level is then the zero point).
fn inverse(scale: f32) -> f32 {
    if scale > 0.0 {
        1.0 / scale
    } else {
        0.0
    }
}

/// `row` quantised as the kernel quantises it, back in f32 (tests).
#[cfg(test)]
pub fn quantize_row(row: &[f32]) -> Vec<f32> {
    let min = row.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let (scale, zero) = row_scale(min, max);
    row.iter()
        .map(|&v| (level(v, inverse(scale), zero) as f32 - zero as f32) * scale)
        .collect()
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    static QUANTIZED_INPUT: std::cell::RefCell<QuantizedRows> = Default::default();
}

/// `out[m, n] = a[m, k] · Wᵀ + bias` in int8 (see the module docs), and
/// with `gelu` the GELU of that, applied to the accumulators before they
/// are stored: the feed-forward block's f32 intermediate is then written
/// once instead of written, read and written again by a separate pass.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `weight` built for `[n, k]`,
/// `a` at least `[m, k]`, `out` at least `[m, n]`, `bias` `[n]`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn forward(
    weight: &Int8Weight,
    a: &[f32],
    m: usize,
    k: usize,
    n: usize,
    bias: &[f32],
    out: &mut [f32],
    gelu: bool,
) {
    QUANTIZED_INPUT.with_borrow_mut(|q| {
        vnni::quantize_rows(&a[..m * k], m, k, weight.k_padded, q);
        if gelu {
            vnni::gemm::<true>(q, m, weight, n, bias, out);
        } else {
            vnni::gemm::<false>(q, m, weight, n, bias, out);
        }
    })
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{Int8Weight, QuantizedRows, KQ, MC, MR, NR};
    use std::arch::x86_64::*;

    /// Quantise each row of `a` (`[m, k]`) into `q` (`[m, k_padded]`, u8
    /// offset by the row's zero point; the padding is the zero point).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_rows(
        a: &[f32],
        m: usize,
        k: usize,
        k_padded: usize,
        q: &mut QuantizedRows,
    ) {
        q.data.resize(m * k_padded, 0);
        q.scales.resize(m, 0.0);
        q.zeros.resize(m, 0);
        let whole = k - k % 16;
        for r in 0..m {
            let row = a.as_ptr().add(r * k);
            let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for i in (0..whole).step_by(16) {
                let x = _mm512_loadu_ps(row.add(i));
                lo = _mm512_min_ps(lo, x);
                hi = _mm512_max_ps(hi, x);
            }
            let (mut min, mut max) = (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
            for i in whole..k {
                min = min.min(*row.add(i));
                max = max.max(*row.add(i));
            }
            let (scale, zero) = super::row_scale(min, max);
            let inv = super::inverse(scale);
            q.scales[r] = scale;
            q.zeros[r] = zero;
            let dst = q.data.as_mut_ptr().add(r * k_padded);
            let vinv = _mm512_set1_ps(inv);
            let (vzero, top) = (_mm512_set1_epi32(zero), _mm512_set1_epi32(255));
            for i in (0..whole).step_by(16) {
                // Round to nearest even (the MXCSR default), shift by the
                // zero point, clamp to a byte, narrow 16 i32 to 16 bytes.
                let x = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row.add(i)), vinv));
                let u = _mm512_min_epi32(
                    _mm512_max_epi32(_mm512_add_epi32(x, vzero), _mm512_setzero_si512()),
                    top,
                );
                _mm_storeu_si128(dst.add(i) as *mut __m128i, _mm512_cvtepi32_epi8(u));
            }
            for i in whole..k {
                *dst.add(i) = super::level(*row.add(i), inv, zero);
            }
            for i in k..k_padded {
                *dst.add(i) = zero as u8;
            }
        }
    }

    /// `out = dequantised(q · W) + bias` (its GELU with `GELU`), `R × 64`
    /// tiles as the bf16 panels.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm<const GELU: bool>(
        q: &QuantizedRows,
        m: usize,
        w: &Int8Weight,
        n: usize,
        bias: &[f32],
        out: &mut [f32],
    ) {
        let kp = w.k_padded;
        for mc in (0..m).step_by(MC) {
            let mc_end = (mc + MC).min(m);
            for p in 0..n / NR {
                let panel = w.panels.as_ptr().add(p * NR * kp);
                let cols = Columns {
                    scale: w.scales.as_ptr().add(p * NR),
                    sum: w.sums.as_ptr().add(p * NR),
                    bias: bias.as_ptr().add(p * NR),
                };
                let mut r = mc;
                while r < mc_end {
                    let rows = Rows {
                        data: q.data.as_ptr().add(r * kp),
                        scale: q.scales.as_ptr().add(r),
                        zero: q.zeros.as_ptr().add(r),
                    };
                    let c = out.as_mut_ptr().add(r * n + p * NR);
                    match (mc_end - r).min(MR) {
                        4 => tile::<4, GELU>(&rows, kp, panel, &cols, c, n),
                        3 => tile::<3, GELU>(&rows, kp, panel, &cols, c, n),
                        2 => tile::<2, GELU>(&rows, kp, panel, &cols, c, n),
                        _ => tile::<1, GELU>(&rows, kp, panel, &cols, c, n),
                    }
                    r += MR;
                }
            }
        }
    }

    /// One panel's per-column values, 64 of each.
    struct Columns {
        scale: *const f32,
        sum: *const i32,
        bias: *const f32,
    }

    /// A tile's rows: their bytes (a row stride of `k_padded`), scales and
    /// zero points.
    struct Rows {
        data: *const u8,
        scale: *const f32,
        zero: *const i32,
    }

    /// One `R × 64` tile of the output over the whole of k.
    #[inline(always)]
    unsafe fn tile<const R: usize, const GELU: bool>(
        rows: &Rows,
        kp: usize,
        panel: *const i8,
        cols: &Columns,
        c: *mut f32,
        ldc: usize,
    ) {
        let a = rows.data;
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        for t in 0..kp / KQ {
            let bp = panel.add(t * NR * KQ) as *const __m512i;
            let b = [
                _mm512_loadu_si512(bp),
                _mm512_loadu_si512(bp.add(1)),
                _mm512_loadu_si512(bp.add(2)),
                _mm512_loadu_si512(bp.add(3)),
            ];
            for (r, row) in acc.iter_mut().enumerate() {
                let quad = (a.add(r * kp + t * KQ) as *const i32).read_unaligned();
                let av = _mm512_set1_epi32(quad);
                for (x, bx) in row.iter_mut().zip(b) {
                    *x = _mm512_dpbusd_epi32(*x, av, bx);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let s_x = _mm512_set1_ps(*rows.scale.add(r));
            let z = _mm512_set1_epi32(*rows.zero.add(r));
            let cr = c.add(r * ldc);
            for (i, x) in row.iter().enumerate() {
                let sums = _mm512_loadu_si512(cols.sum.add(16 * i) as *const __m512i);
                let exact = _mm512_sub_epi32(*x, _mm512_mullo_epi32(z, sums));
                let scale = _mm512_mul_ps(s_x, _mm512_loadu_ps(cols.scale.add(16 * i)));
                let y = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(exact),
                    scale,
                    _mm512_loadu_ps(cols.bias.add(16 * i)),
                );
                let y = if GELU {
                    super::super::ops::gelu_x16(y)
                } else {
                    y
                };
                _mm512_storeu_ps(cr.add(16 * i), y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_is_symmetric_and_uses_the_full_range() {
        let (scale, q) = quantize(&[0.5, -1.27, 0.0, 1.0]);
        assert!((scale - 0.01).abs() < 1e-7);
        assert_eq!(q.collect::<Vec<_>>(), vec![50, -127, 0, 100]);
        let (scale, mut q) = quantize(&[0.0; 5]);
        assert_eq!(scale, 0.0);
        assert!(q.all(|v| v == 0));
    }

    #[test]
    fn rows_keep_zero_exact_and_use_every_level() {
        // One-signed (GELU-like): the scale spans min(x, 0)..max, 255 steps.
        let (scale, zero) = row_scale(-0.17, 8.0);
        assert!((scale - 8.17 / 255.0).abs() < 1e-7);
        assert_eq!(zero, 5);
        let (scale, zero) = row_scale(0.5, 2.0);
        assert_eq!((scale, zero), (2.0 / 255.0, 0));
        assert_eq!(row_scale(0.0, 0.0), (0.0, 0));
        assert_eq!(row_scale(f32::NEG_INFINITY, 1.0), (0.0, 0));
        let row = [-1.0, 0.0, 0.25, 3.0];
        let back = quantize_row(&row);
        assert_eq!(back[1], 0.0);
        for (b, r) in back.iter().zip(row) {
            assert!((b - r).abs() <= 4.0 / 255.0 / 2.0 + 1e-6, "{b} vs {r}");
        }
    }

    #[test]
    fn weight_panels_hold_each_column_rounded_to_its_scale() {
        let (n, k) = (128, 70); // k not a multiple of 4: padded
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i as f32) * 0.37).sin() * (1 + i % 7) as f32)
            .collect();
        let q = Int8Weight::new(&w, n, k);
        let back = q.dequantized(n, k);
        for c in 0..n {
            let col = &w[c * k..][..k];
            let max = col.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (got, want) in back[c * k..][..k].iter().zip(col) {
                assert!(
                    (got - want).abs() <= max / 127.0 / 2.0 + 1e-6,
                    "column {c}: {got} vs {want}"
                );
            }
        }
    }
}
