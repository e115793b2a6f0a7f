//! Model fingerprints: a SHA-256 over a set of weights, so two runs can tell whether they
//! computed with the same numbers without shipping the weights.
//!
//! Recipe (stable, easy to reproduce in Python with `hashlib.sha256`): tensors sorted by name;
//! for each, feed `name`, a 0 byte, the dtype name (`F32`, `BF16`, ...), a 0 byte, the shape as
//! decimal numbers joined by `,`, a 0 byte, the byte length as 8 little-endian bytes, then the
//! tensor's little-endian bytes. Stage `base` hashes the checkpoint as stored; stage `loaded`
//! hashes the values the model computes with (after the dtype cast and the LoRA merge), as
//! float32 bytes with the dtype name of the compute precision.

use std::collections::BTreeMap;

use samplediff_formats::{RawTensor, TensorFile};
use sha2::{Digest, Sha256};

use crate::manifest::WeightsHash;

/// One tensor to hash.
pub struct HashInput<'a> {
    pub name: &'a str,
    pub dtype: &'a str,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

/// Hashes tensors with the recipe above.
pub fn weights_hash<'a>(stage: &str, inputs: impl IntoIterator<Item = HashInput<'a>>) -> WeightsHash {
    let mut items: Vec<HashInput<'a>> = inputs.into_iter().collect();
    items.sort_by(|a, b| a.name.cmp(b.name));
    let mut hasher = Sha256::new();
    let mut dtypes = BTreeMap::new();
    for t in &items {
        hasher.update(t.name.as_bytes());
        hasher.update([0]);
        hasher.update(t.dtype.as_bytes());
        hasher.update([0]);
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        hasher.update(shape.join(",").as_bytes());
        hasher.update([0]);
        hasher.update((t.bytes.len() as u64).to_le_bytes());
        hasher.update(t.bytes);
        *dtypes.entry(t.dtype.to_owned()).or_insert(0) += 1;
    }
    let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    WeightsHash { stage: stage.into(), sha256, keys: items.len(), dtypes, detail: BTreeMap::new() }
}

/// Stage `base`: a checkpoint's tensors exactly as stored.
pub fn file_hash(stage: &str, file: &TensorFile) -> WeightsHash {
    weights_hash(stage, file.tensors.iter().map(raw_input))
}

fn raw_input(t: &RawTensor) -> HashInput<'_> {
    HashInput { name: &t.name, dtype: t.dtype.name(), shape: &t.shape, bytes: &t.data }
}

/// Float32 values to hash under `dtype_name` (e.g. the loaded weights of a bf16 model).
pub struct F32Weights {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Stage `loaded`: the values a model computes with.
pub fn values_hash(stage: &str, dtype_name: &str, weights: &[F32Weights]) -> WeightsHash {
    let bytes: Vec<Vec<u8>> = weights.iter().map(|w| w.values.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    weights_hash(
        stage,
        weights.iter().zip(&bytes).map(|(w, b)| HashInput { name: &w.name, dtype: dtype_name, shape: &w.shape, bytes: b }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_value_sensitive() {
        let a = RawTensor::from_f32("a", vec![2], &[1.0, 2.0]);
        let b = RawTensor::from_f32("b", vec![1], &[3.0]);
        let h1 = file_hash("base", &TensorFile { tensors: vec![a.clone(), b.clone()], metadata: Default::default() });
        let h2 = file_hash("base", &TensorFile { tensors: vec![b, a], metadata: Default::default() });
        assert_eq!(h1, h2);
        assert_eq!(h1.keys, 2);
        assert_eq!(h1.dtypes["F32"], 2);
        let c = RawTensor::from_f32("a", vec![2], &[1.0, 2.0000002]);
        let h3 = file_hash("base", &TensorFile { tensors: vec![c], metadata: Default::default() });
        assert_ne!(h1.sha256, h3.sha256);
        // Python: hashlib.sha256(b"").hexdigest() for no tensors.
        let empty = file_hash("base", &TensorFile::default());
        assert_eq!(empty.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
