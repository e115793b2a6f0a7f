//! Element layouts: shape arithmetic, strided views, byte order, and the copy budget.
//!
//! A [`crate::RawTensor`] is always C-contiguous little-endian. Files are not: torch saves views
//! (transposed, sliced) as a storage plus offset and strides, numpy saves Fortran-order and
//! big-endian arrays. This module turns those into contiguous bytes after checking that every
//! element lies inside the bytes the file really holds.

use crate::limits::{COPY_SLACK_BYTES, MAX_DIMS};
use crate::{Result, bail};

/// Number of elements of `shape`, refusing overflow and absurd ranks.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    if shape.len() > MAX_DIMS {
        bail!("tensor has {} dimensions (limit {MAX_DIMS})", shape.len());
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| crate::FormatError::new(format!("shape {shape:?} overflows the element count")))
}

/// Bytes of `numel` elements of `elem_size` bytes each.
pub fn checked_bytes(numel: usize, elem_size: usize, shape: &[usize]) -> Result<usize> {
    numel
        .checked_mul(elem_size)
        .ok_or_else(|| crate::FormatError::new(format!("shape {shape:?} overflows the byte count")))
}

/// Column-major (Fortran order) strides in elements.
pub fn fortran_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape) {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    strides
}

/// Whether a view with these strides reads its elements in C order with no gaps (dimensions of
/// size 1 may carry any stride, as torch allows).
pub fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Elements (counted from 0) a view reaches into its storage: one past its last element, or 0
/// for an empty view. Errors when the arithmetic overflows.
pub fn view_extent(shape: &[usize], strides: &[usize], offset: usize) -> Result<usize> {
    if shape.len() != strides.len() {
        bail!("view has {} sizes but {} strides", shape.len(), strides.len());
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    let mut last = offset;
    for (&d, &s) in shape.iter().zip(strides) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|step| last.checked_add(step))
            .ok_or_else(|| crate::FormatError::new(format!("view size {shape:?} stride {strides:?} overflows")))?;
    }
    last.checked_add(1).ok_or_else(|| crate::FormatError::new("view extent overflows"))
}

/// Copy a strided view out of `src` into C-contiguous bytes. The caller has checked with
/// [`view_extent`] that every element lies inside `src`.
pub fn gather(src: &[u8], elem: usize, shape: &[usize], strides: &[usize], offset: usize) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * elem);
    if numel == 0 {
        return out;
    }
    if shape.is_empty() {
        out.extend_from_slice(&src[offset * elem..(offset + 1) * elem]);
        return out;
    }
    let rank = shape.len();
    let (inner_len, inner_stride) = (shape[rank - 1], strides[rank - 1]);
    // An odometer over every dimension but the last; the last is copied as one run when it is
    // unit-strided, element by element otherwise.
    let mut index = vec![0usize; rank - 1];
    let mut base = offset;
    loop {
        if inner_stride == 1 {
            out.extend_from_slice(&src[base * elem..(base + inner_len) * elem]);
        } else {
            let start = out.len();
            out.resize(start + inner_len * elem, 0);
            let row = &mut out[start..];
            match elem {
                1 => copy_strided::<1>(src, row, base, inner_stride),
                2 => copy_strided::<2>(src, row, base, inner_stride),
                4 => copy_strided::<4>(src, row, base, inner_stride),
                _ => copy_strided::<8>(src, row, base, inner_stride),
            }
        }
        let mut dim = rank - 1;
        loop {
            if dim == 0 {
                return out;
            }
            dim -= 1;
            // Wrapping: a size-1 dimension may carry any stride, even one that overflows when
            // stepped past; the step is undone at once, so the sum comes out exact.
            index[dim] += 1;
            base = base.wrapping_add(strides[dim]);
            if index[dim] < shape[dim] {
                break;
            }
            base = base.wrapping_sub(strides[dim].wrapping_mul(shape[dim]));
            index[dim] = 0;
        }
    }
}

/// Copy `dst.len() / N` elements of `N` bytes, `stride` elements apart from element `base`.
/// Fixed-size copies keep this fast even in unoptimised (test) builds.
fn copy_strided<const N: usize>(src: &[u8], dst: &mut [u8], base: usize, stride: usize) {
    let mut at = base * N;
    for d in dst.chunks_exact_mut(N) {
        let s: &[u8; N] = src[at..at + N].try_into().unwrap();
        d.copy_from_slice(s);
        at += stride * N;
    }
}

/// Reverse the bytes of every `elem`-byte element (big-endian files to our little-endian).
pub fn swap_bytes(data: &mut [u8], elem: usize) {
    if elem > 1 {
        data.chunks_exact_mut(elem).for_each(|c| c.reverse());
    }
}

/// How many bytes a reader may still copy. Zero-copy slices of the file are free; gathered
/// views, byte-swapped and inflated data are charged, so a small file cannot make us allocate
/// without bound (for example a stride-0 view claiming a terabyte-sized shape).
#[derive(Debug)]
pub struct CopyBudget {
    left: u64,
}

impl CopyBudget {
    /// The budget for reading a file of `file_len` bytes.
    pub fn for_file(file_len: usize) -> Self {
        Self { left: (file_len as u64).saturating_add(COPY_SLACK_BYTES) }
    }

    pub fn charge(&mut self, bytes: usize, what: &str) -> Result<()> {
        match self.left.checked_sub(bytes as u64) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => bail!(
                "{what} needs a {bytes}-byte copy, past the limit of the file's size plus {} MiB",
                COPY_SLACK_BYTES >> 20
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn gathers_a_transpose() {
        // 2x3 matrix 0..6 in C order, read as its 3x2 transpose.
        let src = bytes(&[0, 1, 2, 3, 4, 5]);
        let out = gather(&src, 2, &[3, 2], &[1, 3], 0);
        assert_eq!(out, bytes(&[0, 3, 1, 4, 2, 5]));
    }

    #[test]
    fn gathers_a_strided_slice_with_offset() {
        // rows 1.. and every other column of a 3x4 matrix 0..12
        let src = bytes(&(0..12).collect::<Vec<_>>());
        let out = gather(&src, 2, &[2, 2], &[4, 2], 4);
        assert_eq!(out, bytes(&[4, 6, 8, 10]));
        assert_eq!(view_extent(&[2, 2], &[4, 2], 4).unwrap(), 11);
    }

    #[test]
    fn gathers_scalars_empties_and_broadcasts() {
        let src = bytes(&[7, 8]);
        assert_eq!(gather(&src, 2, &[], &[], 1), bytes(&[8]));
        assert!(gather(&src, 2, &[0, 5], &[5, 1], 0).is_empty());
        assert_eq!(gather(&src, 2, &[3], &[0], 0), bytes(&[7, 7, 7]));
        assert_eq!(gather(&src, 2, &[1, 2], &[usize::MAX, 1], 0), bytes(&[7, 8]));
    }

    #[test]
    fn contiguity_ignores_unit_dims() {
        assert!(is_contiguous(&[2, 1, 3], &[3, 99, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert_eq!(fortran_strides(&[2, 3, 4]), vec![1, 2, 6]);
    }

    #[test]
    fn overflowing_shapes_are_errors() {
        assert!(checked_numel(&[usize::MAX, 2]).is_err());
        assert!(view_extent(&[usize::MAX, 3], &[usize::MAX, 1], 0).is_err());
        let mut budget = CopyBudget::for_file(10);
        assert!(budget.charge(usize::MAX, "x").is_err());
    }
}
