//! Number formats and what one stored parameter costs in each, scale overhead included. The
//! planner multiplies parameter counts by these figures, so every one of them is an exact binary
//! fraction stated with the layout it comes from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::PlanError;

/// A storage format for weights or the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// IEEE single precision, 4 B.
    Fp32,
    /// TF32 is a tensor-core compute mode; its storage is an fp32 word, 4 B.
    Tf32,
    /// IEEE half precision, 2 B.
    Fp16,
    /// bfloat16, 2 B.
    Bf16,
    /// FP8 E4M3 (per-tensor scale, negligible), 1 B.
    Fp8E4m3,
    /// FP8 E5M2 (per-tensor scale, negligible), 1 B.
    Fp8E5m2,
    /// 8-bit integer, 1 B (per-channel scales not counted).
    Int8,
    /// 4-bit integer, 0.5 B (group scales not counted).
    Int4,
    /// NVFP4: 4-bit E2M1 values plus one FP8 E4M3 scale per 16 values, 0.5625 B.
    Nvfp4,
    /// MXFP4 (OCP microscaling): 4-bit E2M1 values plus one 8-bit E8M0 scale per 32 values,
    /// 0.53125 B.
    Mxfp4,
    /// NF4 as QLoRA stores it: 4-bit values, one 8-bit scale per 64 values and one fp32
    /// second-level scale per 256 blocks (double quantization), 0.515869140625 B.
    Nf4,
}

impl Precision {
    /// Every format, in the order tables list them.
    pub const ALL: [Precision; 11] = [
        Precision::Fp32,
        Precision::Tf32,
        Precision::Fp16,
        Precision::Bf16,
        Precision::Fp8E4m3,
        Precision::Fp8E5m2,
        Precision::Int8,
        Precision::Int4,
        Precision::Nvfp4,
        Precision::Mxfp4,
        Precision::Nf4,
    ];

    /// The formats full fine-tuning is planned in (weights, gradients and activations).
    pub const TRAINING: [Precision; 4] = [
        Precision::Fp32,
        Precision::Tf32,
        Precision::Fp16,
        Precision::Bf16,
    ];

    /// Reads a format name, case-insensitively: `fp32`, `tf32`, `fp16`, `bf16`, `fp8` (E4M3),
    /// `fp8-e4m3`, `fp8-e5m2`, `int8`, `int4`, `nvfp4`, `mxfp4`, `nf4`.
    pub fn parse(input: &str) -> Result<Precision, PlanError> {
        let s = input.trim().to_ascii_lowercase().replace('_', "-");
        let p = match s.as_str() {
            "fp32" | "float32" | "f32" => Precision::Fp32,
            "tf32" => Precision::Tf32,
            "fp16" | "float16" | "f16" | "half" => Precision::Fp16,
            "bf16" | "bfloat16" => Precision::Bf16,
            "fp8" | "fp8-e4m3" | "fp8e4m3" | "e4m3" => Precision::Fp8E4m3,
            "fp8-e5m2" | "fp8e5m2" | "e5m2" => Precision::Fp8E5m2,
            "int8" | "i8" => Precision::Int8,
            "int4" | "i4" => Precision::Int4,
            "nvfp4" => Precision::Nvfp4,
            "mxfp4" => Precision::Mxfp4,
            "nf4" => Precision::Nf4,
            _ => {
                let known: Vec<&str> = Precision::ALL.iter().map(|p| p.name()).collect();
                return Err(PlanError::Precision(format!(
                    "unknown precision `{input}`: use one of {} (or fp8 for fp8-e4m3)",
                    known.join(", ")
                )));
            }
        };
        Ok(p)
    }

    /// Parses a comma-separated list such as `fp16,fp8,nvfp4`; `all` or an empty string means
    /// every format (returned as an empty list).
    pub fn parse_list(input: &str) -> Result<Vec<Precision>, PlanError> {
        let mut out = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("all") {
                return Ok(Vec::new());
            }
            let p = Precision::parse(part)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The canonical name (what `parse` and serde read back).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
            Precision::Fp8E4m3 => "fp8-e4m3",
            Precision::Fp8E5m2 => "fp8-e5m2",
            Precision::Int8 => "int8",
            Precision::Int4 => "int4",
            Precision::Nvfp4 => "nvfp4",
            Precision::Mxfp4 => "mxfp4",
            Precision::Nf4 => "nf4",
        }
    }

    /// Bits per stored parameter, scale overhead included.
    pub fn bits_per_param(self) -> f64 {
        match self {
            Precision::Fp32 | Precision::Tf32 => 32.0,
            Precision::Fp16 | Precision::Bf16 => 16.0,
            Precision::Fp8E4m3 | Precision::Fp8E5m2 | Precision::Int8 => 8.0,
            Precision::Int4 => 4.0,
            // 4 bits + 8 bits / 16 values.
            Precision::Nvfp4 => 4.0 + 8.0 / 16.0,
            // 4 bits + 8 bits / 32 values.
            Precision::Mxfp4 => 4.0 + 8.0 / 32.0,
            // 4 bits + 8 bits / 64 values + 32 bits / (64 x 256 values).
            Precision::Nf4 => 4.0 + 8.0 / 64.0 + 32.0 / (64.0 * 256.0),
        }
    }

    /// Bytes per stored parameter, scale overhead included (fp16: 2, nvfp4: 0.5625).
    pub fn bytes_per_param(self) -> f64 {
        self.bits_per_param() / 8.0
    }

    /// How the figure is made up, for the precision table.
    pub fn layout(self) -> &'static str {
        match self {
            Precision::Fp32 => "IEEE fp32",
            Precision::Tf32 => "stored as fp32 (TF32 is a compute mode)",
            Precision::Fp16 => "IEEE fp16",
            Precision::Bf16 => "bfloat16",
            Precision::Fp8E4m3 => "FP8 E4M3, per-tensor scale (negligible)",
            Precision::Fp8E5m2 => "FP8 E5M2, per-tensor scale (negligible)",
            Precision::Int8 => "int8, per-channel scales not counted",
            Precision::Int4 => "int4, group scales not counted (group 128 adds ~0.03 B)",
            Precision::Nvfp4 => "E2M1 + one FP8 E4M3 scale per 16 values",
            Precision::Mxfp4 => "E2M1 + one 8-bit E8M0 scale per 32 values",
            Precision::Nf4 => "NF4 + 8-bit scale per 64 + fp32 scale per 64x256 (QLoRA)",
        }
    }

    /// Whether full fine-tuning can be planned in this format.
    pub fn is_training(self) -> bool {
        Precision::TRAINING.contains(&self)
    }

    /// Whether this is a 16-bit format (mixed-precision training keeps an fp32 master copy).
    pub fn is_16_bit(self) -> bool {
        matches!(self, Precision::Fp16 | Precision::Bf16)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::parse(s)
    }
}
