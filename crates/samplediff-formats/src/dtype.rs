use half::{bf16, f16};

/// Element types of the files we read. Names follow safetensors (`F32`, `BF16`, `F8_E4M3`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[allow(non_camel_case_types)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    F8_E4M3,
    F8_E5M2,
    I64,
    I32,
    I16,
    I8,
    U8,
    BOOL,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F8_E4M3 | DType::F8_E5M2 | DType::I8 | DType::U8 | DType::BOOL => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16 | DType::F8_E4M3 | DType::F8_E5M2)
    }

    /// The safetensors spelling, also used in reports (`"F32"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F8_E4M3 => "F8_E4M3",
            DType::F8_E5M2 => "F8_E5M2",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U8 => "U8",
            DType::BOOL => "BOOL",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => DType::F64,
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F8_E4M3" => DType::F8_E4M3,
            "F8_E5M2" => DType::F8_E5M2,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "I8" => DType::I8,
            "U8" => DType::U8,
            "BOOL" => DType::BOOL,
            _ => return None,
        })
    }

    /// Decode one little-endian element to f64 (exact for every type but I64 beyond 2^53).
    #[inline]
    pub fn decode(self, b: &[u8]) -> f64 {
        match self {
            DType::F64 => f64::from_le_bytes(b[..8].try_into().unwrap()),
            DType::F32 => f32::from_le_bytes(b[..4].try_into().unwrap()) as f64,
            DType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            DType::F8_E4M3 => f8_e4m3fn_to_f32(b[0]) as f64,
            DType::F8_E5M2 => f8_e5m2_to_f32(b[0]) as f64,
            DType::I64 => i64::from_le_bytes(b[..8].try_into().unwrap()) as f64,
            DType::I32 => i32::from_le_bytes(b[..4].try_into().unwrap()) as f64,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            DType::I8 => b[0] as i8 as f64,
            DType::U8 => b[0] as f64,
            DType::BOOL => (b[0] != 0) as u8 as f64,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// float8 e4m3fn (torch.float8_e4m3fn): bias 7, no infinities, 0x7F/0xFF are NaN.
/// `half` has no fp8 type, so the decode is written out here.
pub fn f8_e4m3fn_to_f32(v: u8) -> f32 {
    let sign = if v & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((v >> 3) & 0x0F) as i32;
    let m = (v & 0x07) as f32;
    if e == 0x0F && (v & 0x07) == 0x07 {
        return f32::NAN;
    }
    if e == 0 { sign * m / 8.0 * 2f32.powi(-6) } else { sign * (1.0 + m / 8.0) * 2f32.powi(e - 7) }
}

/// float8 e5m2 (torch.float8_e5m2): the top byte of an IEEE f16.
pub fn f8_e5m2_to_f32(v: u8) -> f32 {
    f16::from_bits((v as u16) << 8).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_decoders_match_torch_tables() {
        assert_eq!(f8_e4m3fn_to_f32(0x7E), 448.0);
        assert_eq!(f8_e4m3fn_to_f32(0x01), 2f32.powi(-9));
        assert!(f8_e4m3fn_to_f32(0xFF).is_nan());
        assert_eq!(f8_e4m3fn_to_f32(0xB8), -1.0);
        assert_eq!(f8_e5m2_to_f32(0x7B), 57344.0);
        assert!(f8_e5m2_to_f32(0x7C).is_infinite());
    }
}
