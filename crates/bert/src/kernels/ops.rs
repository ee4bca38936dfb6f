//! Element-wise and row-wise kernels: GELU (erf form), softmax, layer norm.
//!
//! Written as plain loops over 16-lane chunks so that the compiler turns
//! them into AVX-512 code inside [`multiversion`] (and into SSE/NEON code
//! elsewhere). `exp` and `erf` are polynomial approximations accurate to a
//! few ulp (exp) and 1.5e-7 absolute (erf, Abramowitz & Stegun 7.1.26, the
//! same formula PyTorch's vectorised CPU `erf` uses), far inside the 1e-4
//! logit tolerance of the parity tests.

use super::multiversion;

const LANES: usize = 16;

/// `e^x` for f32, vectorisable: range reduction `x = n ln2 + r`, a degree-6
/// polynomial for `e^r` on |r| ≤ ln2/2, and `2^n` built in the exponent bits.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to nearest with the 1.5 * 2^23 trick (adds only: no libm call).
    const SHIFT: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // The low bits of t's mantissa hold n; adding the bias and shifting
    // builds 2^n (the constant's own bits shift out). Integer lane
    // arithmetic, unlike a float→int cast, vectorises.
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    p * scale
}

/// erf(x), |error| ≤ 1.5e-7 (Abramowitz & Stegun 7.1.26).
#[inline(always)]
pub fn erf_approx(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let y = 1.0 - poly * exp_approx(-ax * ax);
    y.copysign(x)
}

/// GELU, erf form (BERT's `hidden_act = "gelu"`).
#[inline(always)]
pub(crate) fn gelu_one(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x = gelu(x)` in place.
pub fn gelu_erf(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect().avx512 {
        // SAFETY: AVX-512 F was detected at run time.
        return unsafe { gelu_erf_avx512(x) };
    }
    for v in x.iter_mut() {
        *v = gelu_one(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_erf_avx512(x: &mut [f32]) {
    use std::arch::x86_64::*;
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let v = _mm512_loadu_ps(c.as_ptr());
        _mm512_storeu_ps(c.as_mut_ptr(), gelu_x16(v));
    }
    for v in chunks.into_remainder() {
        *v = gelu_one(*v);
    }
}

/// [`gelu_one`] of 16 lanes in AVX-512 instructions. The compiler's
/// vectorisation of `gelu_one` ran at 40 cycles per 16 values (a `vdivps`,
/// `copysign` and the clamps of `exp_approx`), and in the fast precision
/// that GELU was most of the feed-forward block's first product. Here:
/// `1 / (1 + p·z)` is `vrcp14ps` with one Newton step (relative error
/// ~1e-8 against the division's 6e-8), `2^n` is one `vscalefps`, and the
/// erf's sign is a blend: `Φ(x) = 1 − h` for x ≥ 0 and `h` below, with
/// `h = ½ · poly(t) · e^{−z²}` and `z = |x| / √2` (A&S 7.1.26, as
/// [`erf_approx`]). Same formula, same accuracy, about 4× the speed.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gelu_x16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    let one = c(1.0);
    let z = _mm512_mul_ps(_mm512_abs_ps(x), c(std::f32::consts::FRAC_1_SQRT_2));
    // t = 1 / (1 + p z)
    let d = _mm512_fmadd_ps(z, c(0.327_591_1), one);
    let r = _mm512_rcp14_ps(d);
    let t = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, c(2.0)));
    let mut poly = c(1.061_405_4);
    for a in [-1.453_152_1, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        poly = _mm512_fmadd_ps(poly, t, c(a));
    }
    poly = _mm512_mul_ps(poly, t);
    // e^{-z²} = 2^y, y = n + f with n an integer and |f| ≤ ½. y is held
    // above -100 so that 2^y stays a normal float (no denormal assists);
    // there h is 1e-30 of Φ's 1, far below f32's resolution.
    let y = _mm512_max_ps(
        _mm512_mul_ps(_mm512_mul_ps(z, z), c(-std::f32::consts::LOG2_E)),
        c(-100.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
    let f = _mm512_sub_ps(y, n);
    // 2^f = e^{f ln 2}: Taylor to degree 6 (relative error 1.3e-7 on |f| ≤ ½).
    let ln2 = std::f32::consts::LN_2;
    let mut p = c(ln2.powi(6) / 720.0);
    for (degree, factorial) in [(5, 120.0), (4, 24.0), (3, 6.0), (2, 2.0), (1, 1.0)] {
        p = _mm512_fmadd_ps(p, f, c(ln2.powi(degree) / factorial));
    }
    p = _mm512_fmadd_ps(p, f, one);
    let e = _mm512_scalef_ps(p, n);
    let h = _mm512_mul_ps(_mm512_mul_ps(poly, e), c(0.5));
    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
    let phi = _mm512_mask_blend_ps(negative, _mm512_sub_ps(one, h), h);
    _mm512_mul_ps(x, phi)
}

multiversion! {
    /// `x[r] = gelu(x[r] + bias)` for each row of width `bias.len()`.
    pub fn add_bias_gelu(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = gelu_one(*v + *b);
            }
        }
    }
}

#[inline(always)]
fn sum_lanes(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mut s: f32 = chunks.remainder().iter().sum();
    for a in acc {
        s += a;
    }
    s
}

#[inline(always)]
fn max_lanes(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in chunks.remainder().iter().chain(acc.iter()) {
        m = if v > m { v } else { m };
    }
    m
}

/// Softmax of one row in place; returns nothing, the row sums to 1.
pub fn softmax_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::Isa::detect().avx512 {
        // SAFETY: AVX-512 F was detected at run time.
        return unsafe { softmax_avx512(x) };
    }
    let m = max_lanes(x);
    for v in x.iter_mut() {
        *v = exp_approx(*v - m);
    }
    let inv = 1.0 / sum_lanes(x);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// [`softmax_in_place`] in AVX-512 instructions, the tail under a lane
/// mask: the compiler's vectorisation of the scalar code spent ~24 cycles
/// per 16 values, a third of the f32 attention's time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(x: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = x.len();
    let p = x.as_mut_ptr();
    let tail = (n % LANES) as u32;
    let tail_mask: __mmask16 = ((1u32 << tail) - 1) as u16;
    let whole = n - n % LANES;
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    for i in (0..whole).step_by(LANES) {
        m = _mm512_max_ps(m, _mm512_loadu_ps(p.add(i)));
    }
    if tail > 0 {
        m = _mm512_mask_max_ps(
            m,
            tail_mask,
            m,
            _mm512_maskz_loadu_ps(tail_mask, p.add(whole)),
        );
    }
    let m = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    let mut sum = _mm512_setzero_ps();
    for i in (0..whole).step_by(LANES) {
        let e = exp_x16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), m));
        _mm512_storeu_ps(p.add(i), e);
        sum = _mm512_add_ps(sum, e);
    }
    if tail > 0 {
        let v = _mm512_maskz_loadu_ps(tail_mask, p.add(whole));
        let e = _mm512_maskz_mov_ps(tail_mask, exp_x16(_mm512_sub_ps(v, m)));
        _mm512_mask_storeu_ps(p.add(whole), tail_mask, e);
        sum = _mm512_add_ps(sum, e);
    }
    let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
    for i in (0..whole).step_by(LANES) {
        _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), inv));
    }
    if tail > 0 {
        let v = _mm512_maskz_loadu_ps(tail_mask, p.add(whole));
        _mm512_mask_storeu_ps(p.add(whole), tail_mask, _mm512_mul_ps(v, inv));
    }
}

/// [`exp_approx`] of 16 lanes: the same range reduction and polynomial,
/// with `2^n` applied by one `vscalefps`.
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp_x16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    // Held where e^x is a normal float, as exp_approx does (no denormal
    // assists; -inf, a masked-out key, becomes ~1e-38).
    let x = _mm512_min_ps(_mm512_max_ps(x, c(-87.3)), c(88.7));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, c(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, c(0.693_145_75), x);
    let r = _mm512_fnmadd_ps(n, c(1.428_606_8e-6), r);
    let mut p = c(1.0 / 720.0);
    for a in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, c(a));
    }
    _mm512_scalef_ps(p, n)
}

multiversion! {
    /// Post-norm residual block: `x = LayerNorm(x + residual)` per row of
    /// width `gamma.len()`, in one pass (candle: add, mean, sub, sqr, mean,
    /// sqrt, div, mul, add — nine passes and eight temporaries).
    pub fn residual_layer_norm(
        x: &mut [f32],
        residual: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        let h = gamma.len();
        for (row, res) in x.chunks_exact_mut(h).zip(residual.chunks_exact(h)) {
            for (v, r) in row.iter_mut().zip(res) {
                *v += *r;
            }
            let mean = sum_lanes(row) / h as f32;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let mut sq = [0f32; LANES];
            for c in row.chunks_exact(LANES) {
                for i in 0..LANES {
                    sq[i] += c[i] * c[i];
                }
            }
            let rem: f32 = row.chunks_exact(LANES).remainder().iter().map(|v| v * v).sum();
            let var = (sq.iter().sum::<f32>() + rem) / h as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *v = *v * inv * *g + *b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_ref(x: f64) -> f64 {
        // Series / continued fraction free reference: integrate exp(-t²)
        // with Simpson's rule on a fine grid (exact to ~1e-12 here).
        let n = 20_000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_matches_std() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.04;
            let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!(exp_approx(-1000.0) < 1e-37);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp_in_avx512_matches_std() {
        if !crate::kernels::Isa::detect().avx512 {
            return;
        }
        use std::arch::x86_64::*;
        let x: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.04 + 0.013).collect();
        for chunk in x.chunks_exact(16) {
            let mut got = [0f32; 16];
            // SAFETY: AVX-512 F detected above.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), exp_x16(_mm512_loadu_ps(chunk.as_ptr()))) };
            for (g, &v) in got.iter().zip(chunk) {
                let want = (v as f64).exp();
                assert!(
                    ((*g as f64 - want) / want).abs() < 3e-7,
                    "exp({v}) = {g}, want {want}"
                );
            }
        }
    }

    #[test]
    fn erf_matches_reference() {
        for i in -60..=60 {
            let x = i as f64 * 0.1;
            let got = erf_approx(x as f32) as f64;
            assert!(
                (got - erf_ref(x)).abs() < 5e-7,
                "erf({x}) = {got} want {}",
                erf_ref(x)
            );
        }
    }

    #[test]
    fn gelu_and_bias_match_plain_code() {
        let bias: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..40 * 3).map(|i| (i as f32 * 0.11).cos() * 4.0).collect();
        let mut got = x.clone();
        add_bias_gelu(&mut got, &bias);
        for (i, g) in got.iter().enumerate() {
            let v = (x[i] + bias[i % 40]) as f64;
            let want = 0.5 * v * (1.0 + erf_ref(v / 2f64.sqrt()));
            assert!((*g as f64 - want).abs() < 1e-6, "{i}: {g} vs {want}");
        }
        let mut plain = x.clone();
        gelu_erf(&mut plain);
        assert!((plain[5] - gelu_one(x[5])).abs() < 1e-7);
    }

    #[test]
    fn gelu_matches_the_reference_on_every_path() {
        // GELU's values shrink fast below zero, so the error is held to an
        // absolute bound that scales with |x| above 1.
        // 2,401 points plus a length that leaves a scalar tail.
        let x: Vec<f32> = (-1_200..=1_200).map(|i| i as f32 * 1e-2 + 3e-3).collect();
        let mut got = x.clone();
        gelu_erf(&mut got); // AVX-512 where the CPU has it, with a scalar tail
        for (g, &v) in got.iter().zip(&x) {
            let v64 = v as f64;
            let want = 0.5 * v64 * (1.0 + erf_ref(v64 / 2f64.sqrt()));
            let bound = 4e-7 * v64.abs().max(1.0);
            assert!(
                (*g as f64 - want).abs() < bound,
                "gelu({v}) = {g}, want {want}"
            );
            assert!(
                (g - gelu_one(v)).abs() <= 2e-7 * v.abs().max(1.0),
                "paths differ at {v}"
            );
        }
        // Far tails: no NaN, no overflow, the limits x·0 and x·1.
        let mut far = [
            -1e4f32, -60.0, -20.0, 0.0, 20.0, 60.0, 1e4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
            0.5,
        ];
        gelu_erf(&mut far);
        for (g, want) in far.iter().zip([0.0f32, 0.0, 0.0, 0.0, 20.0, 60.0, 1e4]) {
            assert!((g - want).abs() <= 1e-30 + want * 1e-7, "{g} vs {want}");
        }
    }

    #[test]
    fn softmax_matches_plain_code() {
        for len in [1usize, 7, 16, 33, 128, 190] {
            let mut x: Vec<f32> = (0..len).map(|i| (i as f32 * 1.3).sin() * 9.0).collect();
            if len > 2 {
                x[len - 2] = -1e30; // a key far below the rest: probability ~0
            }
            let mut got = x.clone();
            softmax_in_place(&mut got);
            let m = x.iter().cloned().fold(f64::NEG_INFINITY as f32, f32::max) as f64;
            let z: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
            for (g, v) in got.iter().zip(&x) {
                let want = (*v as f64 - m).exp() / z;
                assert!((*g as f64 - want).abs() < 1e-6, "len {len}: {g} vs {want}");
            }
        }
    }

    #[test]
    fn layer_norm_matches_plain_code() {
        let h = 384;
        let rows = 3;
        let x: Vec<f32> = (0..h * rows)
            .map(|i| (i as f32 * 0.7).sin() * 3.0 + 1.0)
            .collect();
        let res: Vec<f32> = (0..h * rows).map(|i| (i as f32 * 0.3).cos()).collect();
        let gamma: Vec<f32> = (0..h).map(|i| 1.0 + (i as f32).sin() * 0.1).collect();
        let beta: Vec<f32> = (0..h).map(|i| (i as f32).cos() * 0.1).collect();
        let mut got = x.clone();
        residual_layer_norm(&mut got, &res, &gamma, &beta, 1e-12);
        for r in 0..rows {
            let v: Vec<f64> = (0..h)
                .map(|i| (x[r * h + i] + res[r * h + i]) as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / h as f64;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / h as f64;
            for i in 0..h {
                let want = (v[i] - mean) / (var + 1e-12).sqrt() * gamma[i] as f64 + beta[i] as f64;
                assert!(
                    (got[r * h + i] as f64 - want).abs() < 2e-5,
                    "row {r} col {i}"
                );
            }
        }
    }
}
