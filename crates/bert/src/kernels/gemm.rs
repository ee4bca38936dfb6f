//! Linear layers `y = x Wᵀ + b` with the weight laid out once at load time.
//!
//! * [`Matmul::F32`]: on AVX-512, W laid out in 64-column panels of `Wᵀ`
//!   and multiplied with FMA in tiles of 6 rows (`f32_avx512`); elsewhere
//!   (or for widths not in whole panels) Wᵀ stored `[k, n]` row-major and
//!   multiplied by the `gemm` crate, the kernels candle itself uses. Exact:
//!   the parity tests hold.
//! * [`Matmul::Bf16`]: W rounded to bf16 and stored in 64-column panels of
//!   k-pairs, the operand layout of AVX-512 BF16's `vdpbf16ps` (two bf16
//!   products summed into an f32 lane). Activations are rounded to bf16 per
//!   call; accumulation stays f32. Twice the multiply throughput of f32 FMA
//!   and half the weight bytes; falls back to F32 without `avx512_bf16`.
//!   Where the CPU has AMX (and the shape fits its tiles), the bf16 weight
//!   is packed into AMX tiles instead and multiplied by `tdpbf16ps`
//!   ([`super::amx`]): same rounding, same f32 accumulation, many times
//!   the throughput.
//! * [`Matmul::Int8`]: W quantised to int8 per output column and the
//!   activations per row at each call, multiplied by AVX-512 VNNI's
//!   `vpdpbusd` with exact i32 accumulation ([`super::int8`]): twice the
//!   multiply throughput of bf16 on the same registers. Falls back to F32
//!   without `avx512_vnni`.

#[cfg(target_arch = "x86_64")]
use super::amx;
use super::Isa;

/// Arithmetic of a [`PackedLinear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matmul {
    F32,
    Bf16,
    Int8,
}

impl From<sift_core::Precision> for Matmul {
    /// The products a model loaded in `precision` runs its linear layers as.
    fn from(precision: sift_core::Precision) -> Matmul {
        match precision {
            sift_core::Precision::F32 => Matmul::F32,
            sift_core::Precision::Fast => Matmul::Bf16,
            sift_core::Precision::Int8 => Matmul::Int8,
        }
    }
}

/// Columns per bf16 panel: four 16-lane f32 accumulators per row.
pub(super) const NR: usize = 64;
/// Rows per bf16 micro-tile: 4 rows × 4 accumulators = 16 of 32 zmm registers.
pub(super) const MR: usize = 4;
/// Rows per cache block, so a block of bf16 activations stays in L2 while
/// every weight panel passes over it.
pub(super) const MC: usize = 96;
const _: () = assert!(MR == 4 && MC.is_multiple_of(MR));

enum Repr {
    /// Wᵀ, `[k, n]` row-major, for the `gemm` crate (no AVX-512, or
    /// columns not in whole panels).
    F32 { wt: Vec<f32> },
    /// Panel `p` holds columns `64p..64p+64` as `[k, 64]` row-major (see
    /// [`f32_avx512`]).
    #[cfg(target_arch = "x86_64")]
    F32Panels { panels: Vec<f32> },
    /// Panel `p` holds columns `64p..64p+64`; inside it, k-pair `t` is 64
    /// u32 values (column-major pairs `(W[c][2t], W[c][2t+1])` as bf16).
    Bf16 { panels: Vec<u16> },
    /// AMX B tiles (see [`super::amx::pack`]).
    #[cfg(target_arch = "x86_64")]
    Amx { tiles: super::amx::AlignedBf16 },
    /// int8 panels for `vpdpbusd` (see [`super::int8`]).
    Int8 { weight: super::int8::Int8Weight },
}

/// A linear layer's weight `[n, k]` (PyTorch layout) and bias `[n]`,
/// prepared for one [`Matmul`] kind.
pub struct PackedLinear {
    n: usize,
    k: usize,
    bias: Vec<f32>,
    repr: Repr,
}

/// f32 → bf16, round to nearest even (NaN kept quiet).
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

#[inline(always)]
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

impl PackedLinear {
    /// `weight`: `[n, k]` row-major; `bias`: `[n]`.
    pub fn new(weight: &[f32], bias: &[f32], n: usize, k: usize, kind: Matmul) -> PackedLinear {
        Self::for_isa(weight, bias, n, k, kind, Isa::detect())
    }

    /// As [`PackedLinear::new`], for the given instruction sets (a subset of
    /// the detected ones: tests and benchmarks compare the paths).
    pub fn for_isa(
        weight: &[f32],
        bias: &[f32],
        n: usize,
        k: usize,
        kind: Matmul,
        isa: Isa,
    ) -> PackedLinear {
        assert_eq!(weight.len(), n * k, "weight is not [n, k]");
        assert_eq!(bias.len(), n, "bias is not [n]");
        let bf16 =
            kind == Matmul::Bf16 && isa.avx512_bf16 && n.is_multiple_of(NR) && k.is_multiple_of(2);
        #[cfg(target_arch = "x86_64")]
        let amx = kind == Matmul::Bf16 && isa.amx_bf16 && super::amx::fits(n, k);
        #[cfg(not(target_arch = "x86_64"))]
        let amx = false;
        let int8 = kind == Matmul::Int8 && isa.avx512_vnni && n.is_multiple_of(NR);
        // f32, and what bf16 and int8 fall back to.
        let f32_panels = cfg!(target_arch = "x86_64") && isa.avx512 && n.is_multiple_of(NR);
        let repr = if int8 {
            Repr::Int8 {
                weight: super::int8::Int8Weight::new(weight, n, k),
            }
        } else if amx {
            #[cfg(target_arch = "x86_64")]
            {
                Repr::Amx {
                    tiles: super::amx::pack(weight, n, k),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("AMX is x86-64 only")
        } else if bf16 {
            let mut panels = vec![0u16; n * k];
            for p in 0..n / NR {
                let panel = &mut panels[p * NR * k..][..NR * k];
                for t in 0..k / 2 {
                    for c in 0..NR {
                        let w = &weight[(p * NR + c) * k..][..k];
                        panel[t * 2 * NR + 2 * c] = bf16_bits(w[2 * t]);
                        panel[t * 2 * NR + 2 * c + 1] = bf16_bits(w[2 * t + 1]);
                    }
                }
            }
            Repr::Bf16 { panels }
        } else if f32_panels {
            #[cfg(target_arch = "x86_64")]
            {
                Repr::F32Panels {
                    panels: f32_avx512::pack(weight, n, k),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("f32 panels are only built on x86-64")
        } else {
            let mut wt = vec![0f32; n * k];
            for j in 0..n {
                for kk in 0..k {
                    wt[kk * n + j] = weight[j * k + kk];
                }
            }
            Repr::F32 { wt }
        };
        PackedLinear {
            n,
            k,
            bias: bias.to_vec(),
            repr,
        }
    }

    pub fn out_features(&self) -> usize {
        self.n
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    /// The kind actually used (bf16 falls back to f32 where unsupported).
    pub fn kind(&self) -> Matmul {
        match self.repr {
            Repr::F32 { .. } => Matmul::F32,
            #[cfg(target_arch = "x86_64")]
            Repr::F32Panels { .. } => Matmul::F32,
            Repr::Bf16 { .. } => Matmul::Bf16,
            #[cfg(target_arch = "x86_64")]
            Repr::Amx { .. } => Matmul::Bf16,
            Repr::Int8 { .. } => Matmul::Int8,
        }
    }

    /// Whether the product runs on AMX tiles.
    pub fn uses_amx(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let Repr::Amx { .. } = self.repr {
            return true;
        }
        false
    }

    /// `out[m, n] = a[m, k] · Wᵀ + b`, single-threaded (callers run batches
    /// side by side, one per core).
    pub fn forward(&self, a: &[f32], m: usize, out: &mut [f32]) {
        let (n, k) = (self.n, self.k);
        assert!(a.len() >= m * k && out.len() >= m * n, "operand sizes");
        if m == 0 {
            return;
        }
        match &self.repr {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: F32 panels are only built when AVX-512 F was
            // detected, for this [n, k] with n a multiple of 64; `a` and
            // `out` are asserted above.
            Repr::F32Panels { panels } => unsafe {
                f32_avx512::gemm(&a[..m * k], m, k, panels, n, &self.bias, &mut out[..m * n])
            },
            Repr::F32 { wt } => {
                for row in out[..m * n].chunks_exact_mut(n) {
                    row.copy_from_slice(&self.bias);
                }
                // SAFETY: the strides describe `a` as [m, k], `wt` as [k, n]
                // and `out` as [m, n], all row-major, and the asserts above
                // check the slices are at least that long.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        true,
                        a.as_ptr(),
                        1,
                        k as isize,
                        wt.as_ptr(),
                        1,
                        n as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            }
            Repr::Bf16 { panels } => {
                let mut a16 = vec![0u16; m * k];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a Bf16 representation is only built when
                // avx512_bf16 (and avx512f) were detected; the buffers have
                // the sizes the kernel indexes (asserted above, `panels` is
                // n * k by construction, `a16` is m * k).
                unsafe {
                    bf16_avx512::round_to_bf16(&a[..m * k], &mut a16);
                    bf16_avx512::gemm(&a16, m, k, panels, n, &self.bias, out)
                };
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("bf16 panels are only built on x86-64");
            }
            Repr::Int8 { weight } => {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an Int8 representation is only built when
                // avx512_vnni (with avx512f and bw) was detected, for this
                // [n, k]; `a` and `out` are asserted above.
                unsafe {
                    super::int8::forward(weight, a, m, k, n, &self.bias, out, false)
                };
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("int8 panels are only built on x86-64");
            }
            #[cfg(target_arch = "x86_64")]
            Repr::Amx { tiles } => TILED_INPUT.with_borrow_mut(|a16| {
                // SAFETY: an Amx representation is only built when AMX-BF16
                // (so AVX-512 BF16) was detected and the OS granted the tile
                // state, for a shape that `fits`; `tiles` is n * k by
                // construction, `a` and `out` are asserted above.
                unsafe {
                    a16.fill(&a[..m * k], m, k);
                    amx::gemm(a16, tiles, n, &self.bias, amx::Output::F32(out))
                }
            }),
        }
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The bf16 copy of a product's input, reused by each worker thread.
    static TILED_INPUT: std::cell::RefCell<amx::TiledRows> = Default::default();
    /// The feed-forward block's bf16 intermediate (see [`feed_forward`]).
    static TILED_INTERMEDIATE: std::cell::RefCell<amx::TiledRows> = Default::default();
}

/// Rows per block of the fused feed-forward block: a block's input, its
/// bf16 intermediate (256 × 1536 × 2 bytes for MiniLM) and its output stay
/// in L2 between the two products.
#[cfg(target_arch = "x86_64")]
const FFN_ROWS: usize = 256;

/// The feed-forward block, `out = gelu(a · W_inᵀ + b_in) · W_outᵀ + b_out`
/// over `m` rows of `a`, timed as [`Op::FfnIn`], [`Op::Gelu`] and
/// [`Op::FfnOut`].
///
/// On AMX the GELU runs on the first product's accumulators and rounds
/// straight into the second product's tiled bf16 input, block by block of
/// rows: the `[m, intermediate]` f32 matrix (5.5 MB for a batch of 7
/// pairs of 128 tokens) is never written, read back for GELU, written
/// again and read once more for rounding. The values are the same as the
/// unfused path's: the same products, GELU and rounding, in the same order.
/// In int8 the GELU runs on the first product's accumulators too, before
/// they are stored to `inter` (the profile then counts it in `FfnIn`).
/// Elsewhere the three steps run one after another through `inter`.
pub fn feed_forward(
    ffn_in: &PackedLinear,
    ffn_out: &PackedLinear,
    a: &[f32],
    m: usize,
    inter: &mut [f32],
    out: &mut [f32],
) {
    use crate::profile::{self, Op};
    let (h, i) = (ffn_in.in_features(), ffn_in.out_features());
    assert_eq!(
        ffn_out.in_features(),
        i,
        "ffn_out does not read ffn_in's output"
    );
    assert!(
        a.len() >= m * h && out.len() >= m * ffn_out.out_features(),
        "operand sizes"
    );
    #[cfg(target_arch = "x86_64")]
    if let (Repr::Amx { tiles: w_in }, Repr::Amx { tiles: w_out }) = (&ffn_in.repr, &ffn_out.repr) {
        let n = ffn_out.out_features();
        TILED_INPUT.with_borrow_mut(|a16| {
            TILED_INTERMEDIATE.with_borrow_mut(|inter16| {
                for start in (0..m).step_by(FFN_ROWS) {
                    let rows = FFN_ROWS.min(m - start);
                    // SAFETY: both weights are AMX-packed, so the CPU has
                    // AMX-BF16 and AVX-512 BF16 and the tile state was
                    // granted; the block's rows are inside `a` and `out`
                    // (asserted above), `ffn_out` reads `i` columns.
                    unsafe {
                        profile::time(Op::FfnIn, 2 * rows * h * i, || {
                            a16.fill(&a[start * h..(start + rows) * h], rows, h);
                            amx::gemm(a16, w_in, i, &ffn_in.bias, amx::Output::GeluBf16(inter16))
                        });
                        profile::time(Op::FfnOut, 2 * rows * i * n, || {
                            amx::gemm(
                                inter16,
                                w_out,
                                n,
                                &ffn_out.bias,
                                amx::Output::F32(&mut out[start * n..(start + rows) * n]),
                            )
                        });
                    }
                }
            })
        });
        return;
    }
    let inter = &mut inter[..m * i];
    #[cfg(target_arch = "x86_64")]
    if let Repr::Int8 { weight } = &ffn_in.repr {
        // GELU on the accumulators, in the first product's epilogue.
        profile::time(Op::FfnIn, 2 * m * h * i, || {
            // SAFETY: an Int8 representation is only built when AVX-512
            // VNNI (with F and BW) was detected, for [i, h]; `a` is checked
            // above and `inter` is [m, i].
            unsafe { super::int8::forward(weight, a, m, h, i, &ffn_in.bias, inter, true) }
        });
        let n = ffn_out.out_features();
        profile::time(Op::FfnOut, 2 * m * i * n, || ffn_out.forward(inter, m, out));
        return;
    }
    profile::time(Op::FfnIn, 2 * m * h * i, || ffn_in.forward(a, m, inter));
    profile::time(Op::Gelu, 0, || super::gelu_erf(inter));
    let n = ffn_out.out_features();
    profile::time(Op::FfnOut, 2 * m * i * n, || ffn_out.forward(inter, m, out));
}

/// f32 products on AVX-512 FMA over weight panels laid out at load.
///
/// This replaced the `gemm` crate for the linear layers: that crate packs
/// the weight into its panels at every call, and reading `Wᵀ` `[k, n]` in
/// 64-column strips in place touches a new page every row (6 KB apart in
/// the feed-forward block). One 12-token query ran its linear layers at
/// 31 GFLOP/s a core that way, 8.0 ms in all; from panels laid out once it
/// takes 3.5 ms, and a 50-pair rerank runs them at 92–98 % of the FMA
/// peak against the crate's 85–88 % (0.65 against 0.70 s). Each panel's
/// `[k, 64]` block stays in L2 while the row tiles of a 96-row block pass
/// over it; the sum over k runs in order, one FMA per term.
#[cfg(target_arch = "x86_64")]
mod f32_avx512 {
    use std::arch::x86_64::*;

    /// Columns per panel: four 16-lane accumulators per row.
    const NR: usize = super::NR;
    /// Rows per tile: 6 rows × 4 accumulators = 24 of 32 zmm registers.
    const MR: usize = 6;
    /// Rows per cache block (96: also a whole number of 6-row tiles).
    const MC: usize = super::MC;
    const _: () = assert!(MC.is_multiple_of(MR));

    /// `weight` `[n, k]` (n a multiple of 64) as panels: panel `p` is
    /// columns `64p..64p+64` of `Wᵀ`, `[k, 64]` row-major.
    pub fn pack(weight: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut panels = vec![0f32; n * k];
        for (p, panel) in panels.chunks_exact_mut(NR * k).enumerate() {
            for (c, column) in weight[p * NR * k..][..NR * k].chunks_exact(k).enumerate() {
                for (t, &w) in column.iter().enumerate() {
                    panel[t * NR + c] = w;
                }
            }
        }
        panels
    }

    /// `out[m, n] = a[m, k] · Wᵀ + bias` from [`pack`]'s panels.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F; `panels` is [`pack`] of an `[n, k]`
    /// weight; `a` is `[m, k]`, `bias` `[n]` and `out` `[m, n]`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm(
        a: &[f32],
        m: usize,
        k: usize,
        panels: &[f32],
        n: usize,
        bias: &[f32],
        out: &mut [f32],
    ) {
        assert!(
            a.len() == m * k && panels.len() == k * n && bias.len() == n && out.len() == m * n,
            "operand sizes"
        );
        for mc in (0..m).step_by(MC) {
            let mc_end = (mc + MC).min(m);
            for c in (0..n).step_by(NR) {
                let (w, b) = (panels.as_ptr().add(c * k), bias.as_ptr().add(c));
                let mut r = mc;
                while r + MR <= mc_end {
                    tile::<MR>(
                        a.as_ptr().add(r * k),
                        k,
                        w,
                        b,
                        out.as_mut_ptr().add(r * n + c),
                        n,
                    );
                    r += MR;
                }
                let (ap, cp) = (a.as_ptr().add(r * k), out.as_mut_ptr().add(r * n + c));
                match mc_end - r {
                    0 => {}
                    1 => tile::<1>(ap, k, w, b, cp, n),
                    2 => tile::<2>(ap, k, w, b, cp, n),
                    3 => tile::<3>(ap, k, w, b, cp, n),
                    4 => tile::<4>(ap, k, w, b, cp, n),
                    5 => tile::<5>(ap, k, w, b, cp, n),
                    _ => unreachable!("fewer than MR rows remain"),
                }
            }
        }
    }

    /// One `R × 64` tile over the whole of k: `a` at `R` rows of `k`, `w`
    /// at a panel, `bias` at its 64 floats, `c` at `R` rows of stride `ldc`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize>(
        a: *const f32,
        k: usize,
        w: *const f32,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let b0 = [
            _mm512_loadu_ps(bias),
            _mm512_loadu_ps(bias.add(16)),
            _mm512_loadu_ps(bias.add(32)),
            _mm512_loadu_ps(bias.add(48)),
        ];
        let mut acc = [b0; R];
        for t in 0..k {
            let wp = w.add(t * NR);
            let b = [
                _mm512_loadu_ps(wp),
                _mm512_loadu_ps(wp.add(16)),
                _mm512_loadu_ps(wp.add(32)),
                _mm512_loadu_ps(wp.add(48)),
            ];
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(r * k + t));
                for (y, bx) in row.iter_mut().zip(b) {
                    *y = _mm512_fmadd_ps(x, bx, *y);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (i, y) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + 16 * i), *y);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod bf16_avx512 {
    use super::{MC, MR, NR};
    use std::arch::x86_64::*;

    /// Round `src` to bf16 into `dst` (nearest even), 16 lanes at a time with
    /// `vcvtneps2bf16`; the scalar tail uses the same rounding.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BF16 (every AMX-BF16 CPU has).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn round_to_bf16(src: &[f32], dst: &mut [u16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_loadu_ps(src.as_ptr().add(i));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, h);
            i += 16;
        }
        for j in i..n {
            dst[j] = super::bf16_bits(src[j]);
        }
    }

    /// `out = a · W + bias` over bf16 panels.
    ///
    /// # Safety
    /// The CPU must support avx512f and avx512bf16; `a` is `[m, k]` bf16,
    /// `panels` `n * k` bf16 in the layout of `PackedLinear`, `out` at least
    /// `[m, n]`, `k` even and `n` a multiple of 64.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn gemm(
        a: &[u16],
        m: usize,
        k: usize,
        panels: &[u16],
        n: usize,
        bias: &[f32],
        out: &mut [f32],
    ) {
        for mc in (0..m).step_by(MC) {
            let mc_end = (mc + MC).min(m);
            for p in 0..n / NR {
                let panel = panels.as_ptr().add(p * NR * k);
                let bias = bias.as_ptr().add(p * NR);
                let mut r = mc;
                while r + MR <= mc_end {
                    tile::<MR>(
                        a.as_ptr().add(r * k),
                        k,
                        panel,
                        bias,
                        out.as_mut_ptr().add(r * n + p * NR),
                        n,
                    );
                    r += MR;
                }
                let rest = mc_end - r;
                let (ap, cp) = (a.as_ptr().add(r * k), out.as_mut_ptr().add(r * n + p * NR));
                match rest {
                    0 => {}
                    1 => tile::<1>(ap, k, panel, bias, cp, n),
                    2 => tile::<2>(ap, k, panel, bias, cp, n),
                    3 => tile::<3>(ap, k, panel, bias, cp, n),
                    4 => tile::<4>(ap, k, panel, bias, cp, n),
                    _ => unreachable!("fewer than MR rows remain"),
                }
            }
        }
    }

    /// One `R × 64` tile of the output over the whole of k.
    ///
    /// # Safety
    /// As [`gemm`]; `a` points at `R` rows of `k` bf16, `panel` at one
    /// panel, `bias` at 64 floats and `c` at `R` rows of stride `ldc` with
    /// 64 writable floats each.
    #[inline(always)]
    unsafe fn tile<const R: usize>(
        a: *const u16,
        k: usize,
        panel: *const u16,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        let b0 = [
            _mm512_loadu_ps(bias),
            _mm512_loadu_ps(bias.add(16)),
            _mm512_loadu_ps(bias.add(32)),
            _mm512_loadu_ps(bias.add(48)),
        ];
        for row in acc.iter_mut() {
            *row = b0;
        }
        let a32 = a as *const u32;
        let lda = k / 2;
        for t in 0..k / 2 {
            let bp = panel.add(t * 2 * NR);
            let b: [__m512bh; 4] = [
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp as *const __m512i)),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    bp.add(32) as *const __m512i
                )),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    bp.add(64) as *const __m512i
                )),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    bp.add(96) as *const __m512i
                )),
            ];
            for (r, row) in acc.iter_mut().enumerate() {
                let pair = a32.add(r * lda + t).read_unaligned() as i32;
                let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair));
                for (x, bx) in row.iter_mut().zip(b) {
                    *x = _mm512_dpbf16_ps(*x, av, bx);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let cr = c.add(r * ldc);
            for (i, x) in row.iter().enumerate() {
                _mm512_storeu_ps(cr.add(16 * i), *x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|i| (i as f32 * 0.731 + seed).sin() * 1.7)
            .collect()
    }

    /// Plain triple loop in f64 on the given (possibly rounded) operands.
    fn reference(a: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = b[j] as f64
                    + (0..k)
                        .map(|x| a[i * k + x] as f64 * w[j * k + x] as f64)
                        .sum::<f64>();
            }
        }
        out
    }

    #[test]
    fn f32_matches_plain_matmul() {
        // Rows below, at and past the 6-row tile and the 96-row block (13 =
        // two tiles and a row, 100 = a block and a 4-row tail); 96 columns
        // are not whole panels, so the gemm crate runs them everywhere.
        for (m, n, k) in [
            (1, 64, 8),
            (5, 64, 3),
            (6, 128, 384),
            (13, 128, 384),
            (16, 192, 1536),
            (7, 96, 30),
            (17, 128, 384),
            (100, 64, 40),
        ] {
            let (a, w, b) = (data(m * k, 0.1), data(n * k, 0.2), data(n, 0.3));
            let want = reference(&a, &w, &b, m, n, k);
            // The AVX-512 panels where the CPU has them, and the gemm crate.
            for isa in [Isa::detect(), Isa::portable()] {
                let lin = PackedLinear::for_isa(&w, &b, n, k, Matmul::F32, isa);
                let mut out = vec![f32::NAN; m * n];
                lin.forward(&a, m, &mut out);
                for (g, r) in out.iter().zip(&want) {
                    // f32 sums of up to 1536 terms reach ~2000 here.
                    let allowed = 1e-3 + 1e-5 * r.abs();
                    assert!(
                        (*g as f64 - r).abs() < allowed,
                        "{m}×{n}×{k} {isa:?}: {g} vs {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn bf16_matches_plain_matmul_on_rounded_operands() {
        if !Isa::detect().avx512_bf16 {
            eprintln!("no avx512_bf16 here: the bf16 path falls back to f32, tested above");
            return;
        }
        // Rows not a multiple of the 6-row tile nor of the 96-row block.
        for (m, n, k) in [(1, 64, 2), (5, 64, 384), (103, 192, 384), (200, 128, 1536)] {
            let (a, w, b) = (data(m * k, 0.4), data(n * k, 0.5), data(n, 0.6));
            let without_amx = Isa {
                amx_bf16: false,
                ..Isa::detect()
            };
            let lin = PackedLinear::for_isa(&w, &b, n, k, Matmul::Bf16, without_amx);
            assert_eq!(lin.kind(), Matmul::Bf16);
            assert!(!lin.uses_amx());
            check_bf16(&lin, &a, &w, &b, m);
        }
    }

    /// `lin` (bf16) against the plain product of the bf16-rounded operands;
    /// the output starts as NaN, so every element must be written.
    fn check_bf16(lin: &PackedLinear, a: &[f32], w: &[f32], b: &[f32], m: usize) {
        let (n, k) = (lin.out_features(), lin.in_features());
        let mut out = vec![f32::NAN; m * n];
        lin.forward(a, m, &mut out);
        let round =
            |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| bf16_to_f32(bf16_bits(x))).collect() };
        let want = reference(&round(a), &round(w), b, m, n, k);
        for (i, (g, r)) in out.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - r).abs() < 1e-3 * (1.0 + r.abs()),
                "({m},{n},{k}) {i}: {g} vs {r}"
            );
        }
    }

    #[test]
    fn int8_matches_plain_matmul_on_quantized_operands() {
        if !Isa::detect().avx512_vnni {
            eprintln!("no avx512_vnni here: the int8 path falls back to f32, tested above");
            return;
        }
        // Rows not a multiple of the 4-row tile nor of the 96-row block; k
        // not a multiple of 4 (padded); a zero row (scale 0) and a
        // one-signed row (zero point 0) first.
        for (m, n, k) in [(2, 64, 3), (5, 64, 384), (103, 192, 384), (200, 128, 1536)] {
            let (mut a, w, b) = (data(m * k, 0.4), data(n * k, 0.5), data(n, 0.6));
            a[..k].fill(0.0);
            for v in &mut a[k..2 * k] {
                *v = v.abs() + 0.1;
            }
            let lin = PackedLinear::new(&w, &b, n, k, Matmul::Int8);
            assert_eq!(lin.kind(), Matmul::Int8);
            let Repr::Int8 { weight } = &lin.repr else {
                unreachable!("int8 repr")
            };
            let w_q = weight.dequantized(n, k);
            assert!(w_q != w, "the weight was quantised");
            let a_q: Vec<f32> = a
                .chunks_exact(k)
                .flat_map(super::super::int8::quantize_row)
                .collect();
            let want = reference(&a_q, &w_q, &b, m, n, k);
            let mut out = vec![f32::NAN; m * n];
            lin.forward(&a, m, &mut out);
            for (i, (g, r)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - r).abs() < 1e-3 * (1.0 + r.abs()),
                    "({m},{n},{k}) {i}: {g} vs {r}"
                );
            }
            // And close to the exact product: 8 bits on both sides.
            let exact = reference(&a, &w, &b, m, n, k);
            let scale = exact.iter().fold(0f64, |s, v| s.max(v.abs()));
            let worst = out
                .iter()
                .zip(&exact)
                .fold(0f64, |e, (g, r)| e.max((*g as f64 - r).abs()));
            assert!(worst < 0.03 * scale, "({m},{n},{k}): {worst} of {scale}");
        }
    }

    #[test]
    fn amx_matches_plain_matmul_on_rounded_operands() {
        if !Isa::detect().amx_bf16 {
            eprintln!("no AMX here: the bf16 path uses AVX-512 BF16, tested above");
            return;
        }
        // Rows: fewer than one tile, a 16-row tail after 32-row blocks, more
        // than one 256-row cache block with a ragged end; k over several tiles.
        for (m, n, k) in [
            (1, 32, 32),
            (10, 384, 384),
            (48, 64, 96),
            (300, 96, 1536),
            (517, 1152, 384),
        ] {
            let (a, w, b) = (data(m * k, 0.7), data(n * k, 0.8), data(n, 0.9));
            let lin = PackedLinear::new(&w, &b, n, k, Matmul::Bf16);
            assert!(lin.uses_amx(), "({m},{n},{k}) should fit AMX tiles");
            check_bf16(&lin, &a, &w, &b, m);
        }
        // Shapes that do not fit the tiles fall back to the AVX-512 panels.
        let (w, b) = (data(64 * 30, 0.1), data(64, 0.2));
        assert!(!PackedLinear::new(&w, &b, 64, 30, Matmul::Bf16).uses_amx());
    }

    #[test]
    fn fused_feed_forward_equals_the_three_steps() {
        let isa = Isa::detect();
        // Every path: the fused ones (AMX, int8) must give exactly the
        // unfused result, and the others that result through `feed_forward`.
        let mut kinds = vec![(Matmul::F32, isa)];
        if isa.avx512_bf16 {
            kinds.push((
                Matmul::Bf16,
                Isa {
                    amx_bf16: false,
                    ..isa
                },
            ));
        }
        if isa.amx_bf16 {
            kinds.push((Matmul::Bf16, isa));
        } else {
            eprintln!("no AMX here: the bf16 feed-forward runs unfused");
        }
        if isa.avx512_vnni {
            kinds.push((Matmul::Int8, isa));
        }
        let (h, i) = (64, 256);
        let (w1, b1, w2, b2) = (
            data(i * h, 0.1),
            data(i, 0.2),
            data(h * i, 0.3),
            data(h, 0.4),
        );
        for (kind, isa) in kinds {
            let ffn_in = PackedLinear::for_isa(&w1, &b1, i, h, kind, isa);
            let ffn_out = PackedLinear::for_isa(&w2, &b2, h, i, kind, isa);
            // One row, a ragged 16-row tail, and more than one 256-row block.
            for m in [1, 37, 300, 555] {
                let a = data(m * h, 0.5 + m as f32);
                let mut inter = vec![0f32; m * i];
                ffn_in.forward(&a, m, &mut inter);
                super::super::gelu_erf(&mut inter);
                let mut want = vec![0f32; m * h];
                ffn_out.forward(&inter, m, &mut want);
                let mut got = vec![f32::NAN; m * h];
                let mut scratch = vec![0f32; m * i];
                feed_forward(&ffn_in, &ffn_out, &a, m, &mut scratch, &mut got);
                assert_eq!(got, want, "{kind:?}, amx {}, m {m}", ffn_in.uses_amx());
                assert_eq!(ffn_in.kind(), kind);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tiled_rows_hold_the_rounded_values_and_zero_padding() {
        if !Isa::detect().amx_bf16 {
            eprintln!("no AMX here: tiled rows are only used on AMX");
            return;
        }
        let (rows, k) = (21, 96);
        let src = data(rows * k, 0.9);
        let mut tiled = amx::TiledRows::default();
        // Dirty the buffer first: a reshape must zero the padding again.
        // SAFETY: AMX-BF16 implies AVX-512 F and BF16.
        unsafe {
            tiled.fill(&data(32 * k, 0.1), 32, k);
            tiled.fill(&src, rows, k);
        }
        let want: Vec<f32> = src.iter().map(|&x| bf16_to_f32(bf16_bits(x))).collect();
        assert_eq!(tiled.to_f32(), want);
        assert_eq!((tiled.rows(), tiled.k()), (rows, k));
        // The same through a product, whose thread-local input buffer held
        // 32 full rows just before.
        let (w, b) = (data(64 * k, 0.2), data(64, 0.3));
        let lin = PackedLinear::new(&w, &b, 64, k, Matmul::Bf16);
        check_bf16(&lin, &data(32 * k, 0.1), &w, &b, 32);
        check_bf16(&lin, &src, &w, &b, rows);
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3F82);
        assert_eq!(bf16_to_f32(bf16_bits(-2.5)), -2.5);
    }
}
