//! CPU kernels for the BERT forward pass.
//!
//! candle's CPU backend runs BERT several times slower than PyTorch: a
//! scalar `gelu_erf`, softmax and layer norm as chains of unfused tensor
//! ops, attention over padded batches, one matmul call per batch element.
//! These kernels work on plain `f32` slices of a *packed* batch (the tokens
//! of every sequence back to back, no padding) and are called by
//! [`crate::encoder`].
//!
//! Every kernel has a portable implementation; the AVX-512 ones are chosen
//! at run time ([`Isa::detect`]) so one binary runs on any x86-64 (and on
//! other architectures through the portable code). Element-wise kernels are
//! written once as plain loops and compiled twice, with and without the
//! AVX-512 target feature, so the compiler vectorises them for the wide
//! registers where they exist.

#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_bf16;
pub mod gemm;
pub mod int8;
pub mod ops;
pub mod peak;

pub use attention::{attention, attention_bf16, attention_first_rows, attention_query_rows};
pub use gemm::{feed_forward, Matmul, PackedLinear};
pub use ops::{add_bias_gelu, gelu_erf, residual_layer_norm, softmax_in_place};

use std::sync::OnceLock;

/// The instruction sets the kernels can use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa {
    /// AVX-512 F (+ the usual AVX2/FMA): 16-lane f32 arithmetic.
    pub avx512: bool,
    /// AVX-512 BF16: `vdpbf16ps`, a bf16 dot product into f32 accumulators.
    pub avx512_bf16: bool,
    /// AVX-512 VNNI: `vpdpbusd`, a u8 × i8 dot product into i32 accumulators.
    pub avx512_vnni: bool,
    /// AMX-TILE + AMX-BF16 with the tile state granted by the OS:
    /// `tdpbf16ps`, a 16 × 16 × 32 bf16 tile product per instruction.
    pub amx_bf16: bool,
}

impl Isa {
    /// Detect once per process.
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let avx512 = std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("fma");
                let avx512_bf16 = avx512 && std::arch::is_x86_feature_detected!("avx512bf16");
                let avx512_vnni = avx512 && std::arch::is_x86_feature_detected!("avx512vnni");
                // SIFT_KERNELS=portable forces the fallback and
                // SIFT_KERNELS=no-amx the AVX-512 BF16 path (tests, comparisons).
                let choice = std::env::var("SIFT_KERNELS").unwrap_or_default();
                if choice == "portable" {
                    return Isa::portable();
                }
                let amx_bf16 = avx512_bf16
                    && choice != "no-amx"
                    && amx::cpu_has_amx_bf16()
                    && amx::request_permission();
                let isa = Isa {
                    avx512,
                    avx512_bf16,
                    avx512_vnni,
                    amx_bf16,
                };
                tracing::debug!(?isa, "kernels");
                isa
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                Isa::portable()
            }
        })
    }

    pub const fn portable() -> Isa {
        Isa {
            avx512: false,
            avx512_bf16: false,
            avx512_vnni: false,
            amx_bf16: false,
        }
    }
}

/// Compile a plain-Rust body twice: once with AVX-512 enabled (for the
/// compiler to vectorise 16 lanes wide) and once portable, and pick at run
/// time. The body must be safe code; the only unsafety is calling a
/// `#[target_feature]` function, which is sound because the feature was
/// detected first.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            fn wide($($arg: $ty),*) $(-> $ret)? $body
            #[inline(always)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            if $crate::kernels::Isa::detect().avx512 {
                // SAFETY: AVX-512 F/BW/VL and FMA were detected at run time.
                return unsafe { wide($($arg),*) };
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use multiversion;
