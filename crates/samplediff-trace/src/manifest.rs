//! The JSON manifest a trace carries under the metadata key [`MANIFEST_KEY`].
//!
//! Everything in it is optional except the format name and version, so a trace written by the
//! Python package on a GPU box and one written by `samplediff` in a browser read the same way.
//! Unknown fields are kept (`extra`), never rejected: newer writers may add more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, TraceError};

/// Metadata key of the manifest.
pub const MANIFEST_KEY: &str = "samplediff.manifest";
/// The `format` field's value.
pub const FORMAT_NAME: &str = "samplediff-trace";
/// The manifest version this crate writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// The manifest of one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// What wrote the trace, e.g. `"samplediff 0.1.0"` or `"samplediff-python 0.1 (ComfyUI)"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelFingerprint>,
    /// Conditioning as ComfyUI holds it: a list of `[tensor, dict]` per side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<Conditioning>,
    /// Where the initial noise came from, as the writer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseInfo>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Manifest {
    /// An empty manifest of the current version written by `tool`.
    pub fn new(tool: impl Into<String>) -> Self {
        Self {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            tool: Some(tool.into()),
            environment: None,
            model: None,
            conditioning: None,
            noise: None,
            extra: BTreeMap::new(),
        }
    }

    /// Parses the manifest JSON; refuses another format or a newer version.
    pub fn from_json(text: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| TraceError::invalid(format!("metadata '{MANIFEST_KEY}' is not a trace manifest: {e}")))?;
        if m.format != FORMAT_NAME {
            return Err(TraceError::invalid(format!("manifest format is '{}', expected '{FORMAT_NAME}'", m.format)));
        }
        if m.version > FORMAT_VERSION {
            return Err(TraceError::invalid(format!(
                "manifest version {} is newer than this samplediff reads ({FORMAT_VERSION})",
                m.version
            )));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest always serialises")
    }
}

/// Where and how the run was computed. Every field is what the writer could find out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The program that ran the sampling (`"ComfyUI"`, `"samplediff"`, a service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comfyui_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comfyui_commit: Option<String>,
    /// Device names, e.g. `["NVIDIA H100 80GB HBM3"]` or `["cpu"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Dtypes by role: `{"model": "bfloat16", "latent": "float32", "conditioning": "float32"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dtypes: BTreeMap<String, String>,
    /// Determinism switches: `{"deterministic_algorithms": true, "cudnn_benchmark": false, ...}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub determinism: BTreeMap<String, Value>,
    /// Attention implementation, e.g. `"pytorch sdpa (cudnn)"`, `"burn flex"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_backend: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A hash of the model's weights at each stage of loading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelFingerprint {
    /// In loading order: `base` (as loaded), then e.g. `lora` (after LoraLoaderModelOnly).
    pub stages: Vec<WeightsHash>,
}

impl ModelFingerprint {
    pub fn stage(&self, name: &str) -> Option<&WeightsHash> {
        self.stages.iter().find(|s| s.stage == name)
    }
}

/// The fingerprint of one set of weights (see [`crate::fingerprint`] for the exact recipe).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightsHash {
    /// `base`, `lora`, ... (free text; `base` and `lora` are what samplediff writes).
    pub stage: String,
    /// Lowercase hex SHA-256 over the sorted keys, dtypes, shapes and bytes.
    pub sha256: String,
    /// Number of tensors hashed.
    pub keys: usize,
    /// Tensor count per dtype, e.g. `{"F32": 58}`.
    pub dtypes: BTreeMap<String, usize>,
    /// What produced this stage, e.g. `{"lora": "tiny_kohya.safetensors", "strength": 1.0}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, Value>,
}

/// ComfyUI CONDITIONING per side: one entry per `[tensor, dict]` pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditioning {
    #[serde(default)]
    pub positive: Vec<CondEntry>,
    #[serde(default)]
    pub negative: Vec<CondEntry>,
}

/// One `[tensor, dict]` of a CONDITIONING list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CondEntry {
    /// Name of the trace tensor holding the conditioning tensor (`positive`, `negative`).
    pub tensor: String,
    /// The dict as JSON (`{"pooled_output": null}`); tensors inside it are described, not stored.
    pub meta: Value,
}

/// The writer's record of the initial noise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseInfo {
    /// `torch_cpu` (ComfyUI's default), `cuda_philox`, `tensor` (given from outside), `zeros`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_fields() {
        let mut m = Manifest::new("samplediff test");
        m.conditioning = Some(Conditioning {
            positive: vec![CondEntry { tensor: "positive".into(), meta: serde_json::json!({"pooled_output": null}) }],
            negative: vec![],
        });
        let mut v: Value = serde_json::from_str(&m.to_json()).unwrap();
        v["future_field"] = serde_json::json!(3);
        let back = Manifest::from_json(&v.to_string()).unwrap();
        assert_eq!(back.conditioning, m.conditioning);
        assert_eq!(back.extra["future_field"], 3);
    }

    #[test]
    fn refuses_other_formats() {
        assert!(Manifest::from_json(r#"{"format": "x", "version": 1}"#).is_err());
        assert!(Manifest::from_json(r#"{"format": "samplediff-trace", "version": 99}"#).is_err());
        assert!(Manifest::from_json("not json").is_err());
    }
}
