//! bf16 matrix products on Intel AMX tiles (`tdpbf16ps`).
//!
//! One `tdpbf16ps` multiplies a 16 × 32 bf16 tile by a 32 × 16 bf16 tile
//! into a 16 × 16 f32 accumulator tile: 16 K multiply–adds in one
//! instruction, about 25 times what AVX-512 FMA does per cycle on the same
//! core (a micro-benchmark here ran 3.7 TFLOP/s on one core against the
//! f32 path's 0.14). The weight is packed once at load time into B tiles;
//! activations are rounded to bf16 per call; accumulation stays f32, so the
//! numerics are those of the AVX-512 BF16 path.
//!
//! Rust has no stable AMX intrinsics, so the handful of instructions are
//! written with `asm!`. Tile registers are not visible to the compiler's
//! register allocator, and nothing else in the process uses them, so they
//! are named directly. Linux only hands out AMX state to a process that
//! asks ([`request_permission`]); the tile configuration is per thread and
//! is loaded at the start of every product and released at the end.

use std::arch::asm;

/// K elements per tile step: 16 rows of 64 bytes = 32 bf16 per A row.
pub const KB: usize = 32;
/// Columns per B tile (16 f32 accumulators of 64 bytes).
pub const NB: usize = 16;
/// bf16 values in one B tile: 16 k-pairs × 16 columns × 2.
const B_TILE: usize = KB * NB;
/// Rows of activations per cache block: 256 rows × k bf16 stay in L2 while
/// every column block of the weight passes over them.
const MC: usize = 256;

/// Ask Linux for the AMX tile data state (`ARCH_REQ_XCOMP_PERM`,
/// `XFEATURE_XTILEDATA`); without it the first tile instruction faults.
/// Granted once per process, for every thread.
#[cfg(target_os = "linux")]
pub fn request_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with this request only changes the process's
    // permitted xsave features; it reads no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
pub fn request_permission() -> bool {
    false
}

/// Whether the CPU has AMX-TILE and AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22).
pub fn cpu_has_amx_bf16() -> bool {
    // CPUID leaf 7 exists on every x86-64 with AVX-512, which callers check first.
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    edx & (1 << 24) != 0 && edx & (1 << 22) != 0
}

/// Whether a `[n, k]` weight can be packed into B tiles.
pub fn fits(n: usize, k: usize) -> bool {
    n.is_multiple_of(2 * NB) && k.is_multiple_of(KB) && n > 0 && k > 0
}

/// Pack a `[n, k]` row-major weight into B tiles: tile `(j, t)` (columns
/// `16j..16j+16`, k `32t..32t+32`) is 512 contiguous bf16 at
/// `(j * k / 32 + t) * 512`; its row `r` holds, for each column `c`, the
/// pair `(W[c][32t + 2r], W[c][32t + 2r + 1])` — the VNNI-style layout
/// `tdpbf16ps` reads.
pub fn pack(weight: &[f32], n: usize, k: usize) -> AlignedBf16 {
    assert!(fits(n, k), "AMX packing needs n % 32 == 0 and k % 32 == 0");
    let kt = k / KB;
    let mut tiles = AlignedBf16::zeros(n * k);
    for j in 0..n / NB {
        for t in 0..kt {
            let tile = &mut tiles[(j * kt + t) * B_TILE..][..B_TILE];
            for r in 0..KB / 2 {
                for c in 0..NB {
                    let w = &weight[(j * NB + c) * k + t * KB + 2 * r..][..2];
                    tile[r * 2 * NB + 2 * c] = super::gemm::bf16_bits(w[0]);
                    tile[r * 2 * NB + 2 * c + 1] = super::gemm::bf16_bits(w[1]);
                }
            }
        }
    }
    tiles
}

/// One cache line of bf16 values: the unit [`AlignedBf16`] allocates in,
/// so that every tile it holds starts on a 64-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u16; 32]);

/// bf16 values on 64-byte boundaries. A tile load from memory that is not
/// 64-byte aligned splits every one of its 16 rows over two cache lines: a
/// micro-benchmark of the gemm's inner loop ran 3.7 TFLOP/s from aligned
/// tiles and 1.1 TFLOP/s from tiles 16 bytes off (what `Vec<u16>` gets from
/// the allocator).
#[derive(Clone, Default)]
pub struct AlignedBf16 {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBf16 {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let mut v = AlignedBf16::default();
        v.resize(len);
        v
    }

    /// Grow or shrink to `len` values; new values are zero.
    pub fn resize(&mut self, len: usize) {
        let old = self.len;
        self.lines.resize(len.div_ceil(32), Line([0; 32]));
        self.len = len;
        if len > old {
            self[old..].fill(0);
        }
    }
}

impl std::ops::Deref for AlignedBf16 {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        // SAFETY: `Line` is 32 u16 with no padding (64 bytes, align 64), so
        // the lines are `32 * lines.len() >= len` contiguous u16.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBf16 {
    fn deref_mut(&mut self) -> &mut [u16] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBf16({} values)", self.len)
    }
}

/// The `ldtilecfg` operand: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    const FULL: TileConfig = {
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        let mut t = 0;
        while t < 8 {
            cfg[16 + 2 * t] = 64; // bytes per row (colsb), little-endian u16
            cfg[48 + t] = 16; // rows
            t += 1;
        }
        TileConfig(cfg)
    };
}

/// Rows of activations rounded to bf16 in the order the kernel reads them:
/// A tile `(b, t)` (rows `16b..16b+16`, k `32t..32t+32`) is 512
/// contiguous bf16 at `(b * k / 32 + t) * 512`. A tile load is then one
/// contiguous kilobyte instead of 16 rows of 64 bytes a row stride apart,
/// and the 16-row blocks stream through memory in order (the hardware
/// prefetchers follow them). Rows past `m` up to a multiple of 16 are zero.
#[derive(Default)]
pub struct TiledRows {
    data: AlignedBf16,
    rows: usize,
    k: usize,
}

impl TiledRows {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Resize for `rows × k` (k a multiple of 32), zeroing the padding rows.
    fn reshape(&mut self, rows: usize, k: usize) {
        assert!(k.is_multiple_of(KB), "tiled rows need k % 32 == 0");
        self.data.resize(rows.div_ceil(16) * 16 * k);
        self.rows = rows;
        self.k = k;
        self.zero_padding();
    }

    /// Zero the last block's rows past `rows`, in each of its k tiles.
    fn zero_padding(&mut self) {
        if !self.rows.is_multiple_of(16) {
            let kt = self.k / KB;
            let block = self.rows / 16;
            for t in 0..kt {
                let tile = &mut self.data[(block * kt + t) * B_TILE..][..B_TILE];
                tile[(self.rows % 16) * KB..].fill(0);
            }
        }
    }

    /// Round `src` (`[rows, k]` row-major f32) into tile order.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn fill(&mut self, src: &[f32], rows: usize, k: usize) {
        use std::arch::x86_64::*;
        assert!(src.len() >= rows * k, "operand sizes");
        self.reshape(rows, k);
        let kt = k / KB;
        for r in 0..rows {
            let (block, within) = (r / 16, r % 16);
            let row = src.as_ptr().add(r * k);
            for t in 0..kt {
                let lo = _mm512_loadu_ps(row.add(t * KB));
                let hi = _mm512_loadu_ps(row.add(t * KB + 16));
                let pair: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let dst = self
                    .data
                    .as_mut_ptr()
                    .add((block * kt + t) * B_TILE + within * KB);
                _mm512_storeu_si512(dst as *mut __m512i, pair);
            }
        }
    }

    /// Back to f32 rows (tests).
    pub fn to_f32(&self) -> Vec<f32> {
        let kt = self.k / KB;
        let mut out = vec![0f32; self.rows * self.k];
        for r in 0..self.rows {
            for c in 0..self.k {
                let (t, j) = (c / KB, c % KB);
                let v = self.data[((r / 16) * kt + t) * B_TILE + (r % 16) * KB + j];
                out[r * self.k + c] = super::gemm::bf16_to_f32(v);
            }
        }
        out
    }
}

/// Where a product's accumulators go.
pub enum Output<'a> {
    /// `[m, n]` row-major f32.
    F32(&'a mut [f32]),
    /// GELU of each value, rounded to bf16, as the next product's tiled
    /// input (`[m, n]`): the feed-forward block's intermediate never
    /// exists in f32.
    GeluBf16(&'a mut TiledRows),
}

/// `out = gelu(tile)` rounded to bf16, for one 16 × 32 block of
/// accumulators (`acc`, rows of 32 f32) into one A tile (`dst`, rows of 32
/// bf16).
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `dst` points at 512 writable u16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")]
unsafe fn gelu_to_bf16(acc: &[f32; 16 * 32], dst: *mut u16) {
    use super::ops::gelu_x16;
    use std::arch::x86_64::*;
    for r in 0..16 {
        let lo = gelu_x16(_mm512_loadu_ps(acc.as_ptr().add(r * 32)));
        let hi = gelu_x16(_mm512_loadu_ps(acc.as_ptr().add(r * 32 + 16)));
        let pair: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.add(r * 32) as *mut __m512i, pair);
    }
}

/// `out = a · W + bias`, `a` tiled ([`TiledRows`]), W packed by [`pack`].
///
/// Tiles: 0–3 accumulate a 32 × 32 block of `out`, 4–5 hold two 16-row
/// slices of `a`, 6–7 two 16-column tiles of W. The loads are interleaved
/// with the products that need them (tile registers are not renamed: a
/// load into tmm4 waits for every product still reading it, so four loads
/// up front and four products after leave the unit idle during the loads).
///
/// # Safety
/// The CPU must have AMX-TILE and AMX-BF16 and [`request_permission`] must
/// have succeeded; `tiles` packed for `[n, k]` with `k == a.k()`,
/// `bias.len() >= n`, an `F32` output at least `[a.rows(), n]`, and
/// [`fits`]`(n, k)`.
pub unsafe fn gemm(a: &TiledRows, tiles: &[u16], n: usize, bias: &[f32], out: Output<'_>) {
    let (m, k) = (a.rows, a.k);
    let m_pad = m.div_ceil(16) * 16;
    debug_assert!(a.data.len() >= m_pad * k && tiles.len() == n * k && bias.len() >= n);
    debug_assert!(
        (a.data.as_ptr() as usize).is_multiple_of(64)
            && (tiles.as_ptr() as usize).is_multiple_of(64),
        "tiles must start on 64-byte boundaries (AlignedBf16)"
    );
    let kt = k / KB;
    let tile_bytes = 64isize; // bytes per tile row, A and B alike
    let mut out = out;
    match &mut out {
        Output::F32(o) => assert!(o.len() >= m * n, "output is not [m, n]"),
        Output::GeluBf16(t) => t.reshape(m, n),
    }
    let mut spill = [0f32; 16 * 32];
    asm!("ldtilecfg [{}]", in(reg) TileConfig::FULL.0.as_ptr(), options(nostack, readonly));
    for mc in (0..m_pad).step_by(MC) {
        let mc_end = (mc + MC).min(m_pad);
        for jb in 0..n / (2 * NB) {
            let b0 = tiles.as_ptr().add(2 * jb * kt * B_TILE);
            let b1 = b0.add(kt * B_TILE);
            let mut i = mc;
            while i < mc_end {
                let two = mc_end - i >= 32;
                // Start the accumulators at the bias: a tile load with
                // stride 0 repeats one 16-float row down all 16 rows.
                let col = bias.as_ptr().add(2 * jb * NB);
                asm!(
                    "tileloadd tmm0, [{b0} + {zero}*1]",
                    "tileloadd tmm1, [{b1} + {zero}*1]",
                    "tileloadd tmm2, [{b0} + {zero}*1]",
                    "tileloadd tmm3, [{b1} + {zero}*1]",
                    b0 = in(reg) col,
                    b1 = in(reg) col.add(NB),
                    zero = in(reg) 0usize,
                    options(nostack, readonly)
                );
                let a0 = a.data.as_ptr().add((i / 16) * kt * B_TILE);
                let a1 = a0.add(kt * B_TILE);
                for t in 0..kt {
                    let (pa0, pa1) = (a0.add(t * B_TILE), a1.add(t * B_TILE));
                    let (pb0, pb1) = (b0.add(t * B_TILE), b1.add(t * B_TILE));
                    if two {
                        asm!(
                            "tileloadd tmm4, [{a0} + {s}*1]",
                            "tileloadd tmm6, [{b0} + {s}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tileloadd tmm7, [{b1} + {s}*1]",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tileloadd tmm5, [{a1} + {s}*1]",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a0 = in(reg) pa0,
                            a1 = in(reg) pa1,
                            b0 = in(reg) pb0,
                            b1 = in(reg) pb1,
                            s = in(reg) tile_bytes,
                            options(nostack, readonly)
                        );
                    } else {
                        asm!(
                            "tileloadd tmm4, [{a0} + {s}*1]",
                            "tileloadd tmm6, [{b0} + {s}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tileloadd tmm7, [{b1} + {s}*1]",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            a0 = in(reg) pa0,
                            b0 = in(reg) pb0,
                            b1 = in(reg) pb1,
                            s = in(reg) tile_bytes,
                            options(nostack, readonly)
                        );
                    }
                }
                for (slice, row0) in [(0usize, i), (1, i + 16)] {
                    if slice == 1 && !two {
                        break;
                    }
                    match &mut out {
                        Output::F32(o) => store_f32(slice, row0, m, n, 2 * jb * NB, o, &mut spill),
                        Output::GeluBf16(t) => {
                            // Both 16-column halves side by side: one
                            // 16 × 32 block, one tile of the next input.
                            let p = spill.as_mut_ptr();
                            store_tile(slice, 0, p, 128);
                            store_tile(slice, 1, p.add(NB), 128);
                            let dst = t
                                .data
                                .as_mut_ptr()
                                .add(((row0 / 16) * (n / KB) + jb) * B_TILE);
                            gelu_to_bf16(&spill, dst);
                        }
                    }
                }
                i += if two { 32 } else { 16 };
            }
        }
    }
    asm!("tilerelease", options(nostack, nomem));
    if let Output::GeluBf16(t) = out {
        // The padding rows received gelu(bias).
        t.zero_padding();
    }
}

/// Store accumulator `slice` (0: tmm0/1, 1: tmm2/3), `half` (0 or 1) to
/// `dst` with `stride` bytes between rows.
#[inline(always)]
unsafe fn store_tile(slice: usize, half: usize, dst: *mut f32, stride: isize) {
    match (slice, half) {
        (0, 0) => {
            asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) dst, s = in(reg) stride, options(nostack))
        }
        (0, 1) => {
            asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) dst, s = in(reg) stride, options(nostack))
        }
        (1, 0) => {
            asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) dst, s = in(reg) stride, options(nostack))
        }
        _ => {
            asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) dst, s = in(reg) stride, options(nostack))
        }
    }
}

/// Store one 16-row slice of accumulators (two 16 × 16 tiles) at rows
/// `row0..` and columns `col0..col0 + 32` of a `[m, n]` f32 output:
/// straight into it when all 16 rows are real, else through `spill` (the
/// padding rows have nowhere to go).
#[inline(always)]
unsafe fn store_f32(
    slice: usize,
    row0: usize,
    m: usize,
    n: usize,
    col0: usize,
    out: &mut [f32],
    spill: &mut [f32; 16 * 32],
) {
    for half in 0..2 {
        let col = col0 + half * NB;
        if row0 + 16 <= m {
            store_tile(
                slice,
                half,
                out.as_mut_ptr().add(row0 * n + col),
                (n * 4) as isize,
            );
        } else {
            store_tile(slice, half, spill.as_mut_ptr(), 64);
            for r in 0..m.saturating_sub(row0) {
                out[(row0 + r) * n + col..][..NB].copy_from_slice(&spill[r * NB..][..NB]);
            }
        }
    }
}
