//! The CPU's peak for each kind of product, measured rather than assumed.
//!
//! A peak derived from a model name and the nominal clock is often wrong:
//! `/proc/cpuinfo` gives the base clock (2.6 GHz on the Zen 4 this was
//! written on, which runs at 3.3–3.6 GHz), and "two AVX-512 FMA ports" holds on
//! Intel server cores but not on Zen 4, which splits a 512-bit FMA over its
//! two 256-bit pipes. So each instruction the kernels rely on is timed in a
//! loop of twelve independent accumulators (more than its latency ×
//! throughput, so the loop runs at the instruction's throughput), on every
//! core at once (clocks drop as more cores work), for a few tens of
//! milliseconds. `sift-speed` holds every measured kernel against these.

use super::Isa;
use std::time::Instant;

/// One instruction's measured peak over all the cores this process may use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    /// The instruction, as `objdump` names it.
    pub instruction: &'static str,
    /// Multiply–add FLOPs (or integer multiply–adds × 2) per second, all
    /// cores together, in G.
    pub gflops: f64,
    /// The same for one core (`gflops / cores`).
    pub gflops_per_core: f64,
    /// Whether it was timed (`false`: derived from the measured clock, as
    /// the AMX tile peak is).
    pub measured: bool,
}

/// The peaks of the kinds of products the kernels run on this CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Peaks {
    /// Threads timed side by side.
    pub cores: usize,
    /// Measured core clock in GHz (a chain of dependent one-cycle adds).
    pub clock_ghz: f64,
    /// f32 FMA (`vfmadd231ps` zmm, or ymm without AVX-512).
    pub f32: Peak,
    /// bf16 dot products on the vector units (`vdpbf16ps` zmm); `None`
    /// without AVX-512 BF16. The fast and int8 modes' attention runs here,
    /// and the fast mode's linear layers where there are no tiles.
    pub bf16_vector: Option<Peak>,
    /// bf16 tile products (`tdpbf16ps`) where the engine uses AMX tiles.
    pub bf16_tiles: Option<Peak>,
    /// int8 dot products (`vpdpbusd` zmm); `None` without AVX-512 VNNI.
    pub int8: Option<Peak>,
}

/// Iterations of each timed loop: 12 instructions each, ~60 ms at 3.6 GHz
/// and one instruction per cycle.
const ITERATIONS: u64 = 20_000_000;

impl Peaks {
    /// Time every instruction on `cores` threads at once (about a quarter
    /// of a second in all).
    pub fn measure(cores: usize) -> Peaks {
        let cores = cores.max(1);
        let isa = Isa::detect();
        let clock_ghz = on_all_cores(cores, chain_of_adds) / cores as f64;
        let f32 = {
            #[cfg(target_arch = "x86_64")]
            if isa.avx512 {
                // SAFETY: AVX-512 F was detected.
                timed(cores, "vfmadd231ps zmm", 32.0, || unsafe { x86::fma_zmm() })
            } else if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: FMA (with AVX) was detected.
                timed(cores, "vfmadd231ps ymm", 16.0, || unsafe { x86::fma_ymm() })
            } else {
                derived(cores, clock_ghz, "mulps + addps (no FMA)", 8.0)
            }
            #[cfg(not(target_arch = "x86_64"))]
            derived(cores, clock_ghz, "scalar f32 (no x86 vector units)", 2.0)
        };
        #[cfg(target_arch = "x86_64")]
        let (bf16_vector, bf16_tiles, int8) = (
            // SAFETY: AVX-512 BF16 was detected.
            isa.avx512_bf16.then(|| {
                timed(cores, "vdpbf16ps zmm", 64.0, || unsafe {
                    x86::dpbf16_zmm()
                })
            }),
            // One 16 × 16 × 32 tile product per 16 cycles per core: the
            // published rate, on the measured clock.
            isa.amx_bf16
                .then(|| derived(cores, clock_ghz, "tdpbf16ps (AMX tiles)", 2048.0)),
            // SAFETY: AVX-512 VNNI was detected.
            isa.avx512_vnni.then(|| {
                timed(cores, "vpdpbusd zmm", 128.0, || unsafe {
                    x86::dpbusd_zmm()
                })
            }),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (bf16_vector, bf16_tiles, int8) = (None, None, None);
        Peaks {
            cores,
            clock_ghz,
            f32,
            bf16_vector,
            bf16_tiles,
            int8,
        }
    }

    /// The peak of the linear layers of a [`super::Matmul`] kind, falling
    /// back where the engine falls back.
    pub fn of(&self, kind: super::Matmul) -> Peak {
        match kind {
            super::Matmul::F32 => self.f32,
            super::Matmul::Bf16 => self.bf16_tiles.or(self.bf16_vector).unwrap_or(self.f32),
            super::Matmul::Int8 => self.int8.unwrap_or(self.f32),
        }
    }

    /// The peak of the attention a [`super::Matmul`] kind's encoder runs:
    /// [`super::attention_bf16`] (on `vdpbf16ps`) for the fast and int8
    /// kinds, else f32 FMA.
    pub fn of_attention(&self, kind: super::Matmul) -> Peak {
        match kind {
            super::Matmul::F32 => self.f32,
            super::Matmul::Bf16 | super::Matmul::Int8 => self.bf16_vector.unwrap_or(self.f32),
        }
    }
}

/// `flops_per_instruction × instructions / s` of `run` on every core.
fn timed(
    cores: usize,
    instruction: &'static str,
    flops_per_instruction: f64,
    run: fn() -> f32,
) -> Peak {
    let per_second = on_all_cores(cores, || {
        let start = Instant::now();
        std::hint::black_box(run());
        (12 * ITERATIONS) as f64 / start.elapsed().as_secs_f64()
    });
    let gflops = per_second * flops_per_instruction / 1e9;
    Peak {
        instruction,
        gflops,
        gflops_per_core: gflops / cores as f64,
        measured: true,
    }
}

fn derived(cores: usize, clock_ghz: f64, instruction: &'static str, flops_per_cycle: f64) -> Peak {
    let per_core = clock_ghz * flops_per_cycle;
    Peak {
        instruction,
        gflops: per_core * cores as f64,
        gflops_per_core: per_core,
        measured: false,
    }
}

/// Run `f` on `cores` threads at once; the sum of what they return.
fn on_all_cores(cores: usize, f: impl Fn() -> f64 + Sync) -> f64 {
    let start = std::sync::Barrier::new(cores);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    f()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("peak thread panicked"))
            .sum()
    })
}

/// Cycles per second of one core, in G: a chain of dependent register
/// adds, one cycle each on every x86-64 core, eight to an iteration so the
/// loop's own counter and branch run alongside.
fn chain_of_adds() -> f64 {
    let start = Instant::now();
    let mut x = 0u64;
    for _ in 0..ITERATIONS {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: register adds, no memory.
        unsafe {
            std::arch::asm!(
                "add {0}, 1", "add {0}, 1", "add {0}, 1", "add {0}, 1",
                "add {0}, 1", "add {0}, 1", "add {0}, 1", "add {0}, 1",
                inout(reg) x,
                options(nomem, nostack)
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            x = std::hint::black_box(x + 8);
        }
    }
    std::hint::black_box(x);
    (8 * ITERATIONS) as f64 / start.elapsed().as_secs_f64() / 1e9
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ITERATIONS;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    macro_rules! twelve_chains {
        ($zero:expr, $step:expr, $sum:expr) => {{
            let mut acc = [$zero; 12];
            for _ in 0..ITERATIONS {
                for a in acc.iter_mut() {
                    *a = $step(*a);
                }
            }
            acc.iter().map(|a| $sum(*a)).sum::<f32>()
        }};
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_zmm() -> f32 {
        let (m, c) = (
            _mm512_set1_ps(black_box(0.999)),
            _mm512_set1_ps(black_box(1e-3)),
        );
        twelve_chains!(_mm512_setzero_ps(), |a| _mm512_fmadd_ps(a, m, c), |a| {
            _mm512_reduce_add_ps(a)
        })
    }

    #[target_feature(enable = "avx,fma")]
    pub unsafe fn fma_ymm() -> f32 {
        let (m, c) = (
            _mm256_set1_ps(black_box(0.999)),
            _mm256_set1_ps(black_box(1e-3)),
        );
        twelve_chains!(
            _mm256_setzero_ps(),
            |a| _mm256_fmadd_ps(a, m, c),
            |a: __m256| {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), a);
                lanes.iter().sum::<f32>()
            }
        )
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dpbf16_zmm() -> f32 {
        let b: __m512bh = std::mem::transmute(_mm512_set1_epi16(black_box(0x3c00)));
        twelve_chains!(_mm512_setzero_ps(), |a| _mm512_dpbf16_ps(a, b, b), |a| {
            _mm512_reduce_add_ps(a)
        })
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dpbusd_zmm() -> f32 {
        let b = _mm512_set1_epi8(black_box(1));
        twelve_chains!(
            _mm512_setzero_si512(),
            |a| _mm512_dpbusd_epi32(a, b, b),
            |a| { _mm512_reduce_add_epi32(a) as f32 }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_positive_and_ordered_by_width() {
        let peaks = Peaks::measure(1);
        assert!(
            peaks.clock_ghz > 0.3 && peaks.clock_ghz < 10.0,
            "clock {} GHz",
            peaks.clock_ghz
        );
        assert!(peaks.f32.gflops > 0.0);
        // A bf16 or int8 dot product does two or four f32 FMAs' work per
        // instruction; even on a loaded test machine it is not slower.
        for p in [peaks.bf16_vector, peaks.int8].into_iter().flatten() {
            assert!(p.gflops > peaks.f32.gflops, "{p:?} vs {:?}", peaks.f32);
        }
    }
}
