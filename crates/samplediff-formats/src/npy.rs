//! NumPy `.npy` (format versions 1, 2 and 3) and `.npz` (a zip of `.npy` files).
//!
//! An `.npy` file is `\x93NUMPY`, a version, a header length, a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, then the raw elements. We
//! parse that literal by hand (it is a fixed, tiny grammar; no crate reads it without also
//! reading pickled object arrays, which we refuse), convert big-endian and Fortran-order data to
//! little-endian C order, and check the element count against the bytes present.
//! numpy has no bfloat16 or float8, so those never occur here.

use std::collections::BTreeMap;

use crate::archive::Archive;
use crate::layout::{CopyBudget, checked_bytes, checked_numel, fortran_strides, gather, swap_bytes};
use crate::limits::{MAX_DIMS, MAX_NPY_HEADER};
use crate::{Bytes, DType, FormatError, RawTensor, Result, TensorFile, bail};

pub const MAGIC: &[u8] = b"\x93NUMPY";

/// Read one `.npy` file as a one-tensor file; the tensor is called `name`.
pub fn read(buf: Bytes, name: &str) -> Result<TensorFile> {
    let mut budget = CopyBudget::for_file(buf.len());
    let tensor = read_array(buf, name, &mut budget)?;
    Ok(TensorFile { tensors: vec![tensor], metadata: BTreeMap::new() })
}

/// Whether this zip archive is an `.npz` (every entry is an `.npy`).
pub fn is_npz_archive(archive: &Archive) -> bool {
    archive.entries().iter().all(|e| e.name.ends_with(".npy"))
}

/// Read an `.npz`: each `name.npy` entry becomes tensor `name`, in archive order.
pub fn read_npz(buf: Bytes) -> Result<TensorFile> {
    let mut budget = CopyBudget::for_file(buf.len());
    let mut archive = Archive::open(buf)?;
    let entries = archive.entries().to_vec();
    let mut tensors = Vec::with_capacity(entries.len());
    for entry in &entries {
        let Some(name) = entry.name.strip_suffix(".npy") else {
            bail!("npz entry '{}' is not an .npy file", entry.name);
        };
        let bytes = archive.read(entry, entry.size)?;
        let tensor = read_array(bytes, name, &mut budget)
            .map_err(|e| FormatError::new(format!("npz entry '{}': {e}", entry.name)))?;
        tensors.push(tensor);
    }
    Ok(TensorFile { tensors, metadata: BTreeMap::new() })
}

/// The parsed header of an `.npy` file.
#[derive(Debug, PartialEq)]
struct Header {
    dtype: DType,
    big_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn read_array(buf: Bytes, name: &str, budget: &mut CopyBudget) -> Result<RawTensor> {
    if !buf.starts_with(MAGIC) {
        bail!("not an .npy file (no \\x93NUMPY magic)");
    }
    let Some(&[major, _minor]) = buf.get(6..8) else { bail!("truncated .npy header") };
    let (len_size, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        v => bail!("unsupported .npy format version {v}"),
    };
    let len_bytes = buf.get(8..8 + len_size).ok_or_else(|| FormatError::new("truncated .npy header"))?;
    let header_len = if len_size == 2 {
        u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize
    } else {
        u32::from_le_bytes(len_bytes.try_into().unwrap()) as usize
    };
    if header_len > MAX_NPY_HEADER {
        bail!(".npy header is {header_len} bytes (limit {MAX_NPY_HEADER})");
    }
    let data_start = 8 + len_size + header_len;
    let text = buf
        .get(8 + len_size..data_start)
        .ok_or_else(|| FormatError::new(format!(".npy header of {header_len} bytes is longer than the file")))?;
    let text =
        if utf8 { std::str::from_utf8(text).ok() } else { text.is_ascii().then(|| std::str::from_utf8(text).unwrap()) }
            .ok_or_else(|| FormatError::new(".npy header is not valid text"))?;
    let header = parse_header(text)?;

    let elem = header.dtype.size();
    let numel = checked_numel(&header.shape)?;
    let nbytes = checked_bytes(numel, elem, &header.shape)?;
    let present = buf.len() - data_start;
    if present < nbytes {
        bail!(".npy data is truncated: shape {:?} needs {nbytes} bytes, the file holds {present}", header.shape);
    }
    let raw = buf.slice(data_start..data_start + nbytes);
    let swap = header.big_endian && elem > 1;
    let reorder = header.fortran_order && header.shape.iter().filter(|&&d| d > 1).count() > 1;
    let data = if !swap && !reorder {
        raw
    } else {
        budget.charge(nbytes, "reordering the array")?;
        let mut out =
            if reorder { gather(&raw, elem, &header.shape, &fortran_strides(&header.shape), 0) } else { raw.to_vec() };
        if swap {
            swap_bytes(&mut out, elem);
        }
        Bytes::new(out)
    };
    Ok(RawTensor { name: name.to_string(), dtype: header.dtype, shape: header.shape, data })
}

/// The element type of a numpy `descr` such as `<f4` or `|b1`; `true` when big-endian.
fn parse_descr(descr: &str) -> Result<(DType, bool)> {
    let mut chars = descr.chars();
    let order = chars.next().unwrap_or(' ');
    let big_endian = match order {
        '<' | '|' => false,
        '>' => true,
        '=' => cfg!(target_endian = "big"),
        _ => bail!("unsupported .npy dtype '{descr}'"),
    };
    let dtype = match chars.as_str() {
        "f8" => DType::F64,
        "f4" => DType::F32,
        "f2" => DType::F16,
        "i8" => DType::I64,
        "i4" => DType::I32,
        "i2" => DType::I16,
        "i1" => DType::I8,
        "u1" => DType::U8,
        "b1" => DType::BOOL,
        "O" => bail!(".npy holds Python objects (dtype 'O'), which would need pickle; refused"),
        _ => bail!("unsupported .npy dtype '{descr}'"),
    };
    Ok((dtype, big_endian))
}

/// Parse the header's dict literal: string keys; values are strings, `True`/`False` or tuples
/// of non-negative integers. Anything else (structured dtypes, expressions) is refused.
fn parse_header(text: &str) -> Result<Header> {
    #[derive(Debug)]
    enum Value {
        Str(String),
        Bool(bool),
        Ints(Vec<usize>),
    }
    let mut lex = Lexer { s: text.as_bytes(), i: 0 };
    lex.expect(b'{')?;
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        lex.skip_ws();
        if lex.eat(b'}') {
            break;
        }
        let key = lex.string()?;
        lex.expect(b':')?;
        lex.skip_ws();
        let value = match lex.peek() {
            Some(b'\'' | b'"') => Value::Str(lex.string()?),
            Some(b'(') => Value::Ints(lex.int_tuple()?),
            Some(b'T' | b'F') => Value::Bool(lex.boolean()?),
            _ => bail!(".npy header: unsupported value for '{key}'"),
        };
        fields.insert(key, value);
        lex.skip_ws();
        if !lex.eat(b',') {
            lex.expect(b'}')?;
            break;
        }
    }
    let descr = match fields.get("descr") {
        Some(Value::Str(s)) => s,
        Some(_) => bail!(".npy header: structured dtypes are not supported"),
        None => bail!(".npy header has no 'descr'"),
    };
    let (dtype, big_endian) = parse_descr(descr)?;
    let fortran_order = match fields.get("fortran_order") {
        Some(Value::Bool(b)) => *b,
        _ => bail!(".npy header has no boolean 'fortran_order'"),
    };
    let shape = match fields.remove("shape") {
        Some(Value::Ints(v)) => v,
        _ => bail!(".npy header has no 'shape' tuple"),
    };
    Ok(Header { dtype, big_endian, fortran_order, shape })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) { Ok(()) } else { bail!(".npy header: expected '{}' at byte {}", c as char, self.i) }
    }

    fn string(&mut self) -> Result<String> {
        self.skip_ws();
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => bail!(".npy header: expected a string at byte {}", self.i),
        };
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or_else(|| FormatError::new(".npy header: unterminated string"))?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        bail!(".npy header: expected True or False at byte {}", self.i)
    }

    fn int_tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            let dim: usize =
                digits.parse().map_err(|_| FormatError::new(format!(".npy header: bad dimension at byte {start}")))?;
            self.eat(b'L'); // Python 2 long suffix
            dims.push(dim);
            if dims.len() > MAX_DIMS {
                bail!(".npy shape has more than {MAX_DIMS} dimensions");
            }
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let h = parse_header("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }   \n").unwrap();
        assert_eq!(h, Header { dtype: DType::F64, big_endian: true, fortran_order: true, shape: vec![2, 3] });
        let h = parse_header("{'descr': '|b1', 'fortran_order': False, 'shape': (5,)}").unwrap();
        assert_eq!(h.shape, vec![5]);
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': ()}").unwrap();
        assert!(h.shape.is_empty());
    }

    #[test]
    fn bad_headers_are_errors() {
        for bad in [
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            "{'descr': '<f4', 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
            "",
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }
}
