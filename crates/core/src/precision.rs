//! How the BERT matrices are computed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Arithmetic of the model's matrix products.
///
/// `F32` is exact: it agrees with the PyTorch reference to 1e-4 in logits
/// and 0.9999 in cosine (the parity tests), so indexes built with it stay
/// valid. `Fast` rounds the operands of the matrix products to bf16 (f32
/// accumulation) where the CPU has AMX or AVX-512 BF16, for speed: embeddings
/// within cosine 0.9999 of `F32`, reranked lists unchanged to within noise
/// (eval/README.md); it falls back to `F32` elsewhere. `Int8` quantises the
/// linear layers to 8 bits (per-column weights, per-row activations with a
/// zero point) where the CPU has AVX-512 VNNI, and falls back to `F32`
/// elsewhere. Both run attention in bf16 where the CPU has AVX-512 BF16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    #[serde(alias = "exact")]
    F32,
    #[serde(alias = "bf16")]
    Fast,
    /// Weights and activations of the linear layers in 8 bits (AVX-512
    /// VNNI), attention in bf16, everything else in f32.
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Fast => "fast",
            Precision::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" | "exact" => Ok(Precision::F32),
            "fast" | "bf16" => Ok(Precision::Fast),
            "int8" => Ok(Precision::Int8),
            other => Err(format!("unknown precision {other:?} (f32, fast or int8)")),
        }
    }
}
