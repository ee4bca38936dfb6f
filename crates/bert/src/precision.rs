//! How the BERT matrices are computed.

use std::fmt;
use std::str::FromStr;

/// Arithmetic of the model's matrix products.
///
/// `F32` is exact: it agrees with the PyTorch reference to 1e-4 in logits
/// and 0.9999 in cosine (the parity tests), so indexes built with it stay
/// valid. `Fast` trades a little accuracy for speed where the CPU supports
/// it (see the kernels); it falls back to `F32` elsewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    Fast,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Fast => "fast",
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
            other => Err(format!("unknown precision {other:?} (f32 or fast)")),
        }
    }
}
