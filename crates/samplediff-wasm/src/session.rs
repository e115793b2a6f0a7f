//! Two files read once and kept in memory, so that the report, the heatmaps and the previews of
//! one comparison never parse a large file twice.

use crate::files::Loaded;

/// Which side of a comparison: `"a"` (the file under test) or `"b"` (the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "a" | "A" => Ok(Side::A),
            "b" | "B" => Ok(Side::B),
            _ => Err(format!("side must be \"a\" or \"b\", not {s:?}")),
        }
    }
}

/// A pair of files under comparison (B is the reference).
pub struct Session {
    pub a: Loaded,
    pub b: Loaded,
}

impl Session {
    pub fn side(&self, side: Side) -> &Loaded {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}
