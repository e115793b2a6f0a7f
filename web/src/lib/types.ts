// The compare report as `samplediff compare --json` writes it (crates/samplediff-metrics,
// src/report.rs: field names are a public contract; fields may be added, never renamed).
// Non-finite numbers are `null` in JSON.

export type Verdict = "match" | "mismatch";
export type Status = "compared" | "only_in_a" | "only_in_b" | "shape_mismatch";

export interface CompareReport {
  verdict: Verdict;
  tensors: TensorReport[];
  summary: Summary;
}

export interface TensorReport {
  name: string;
  name_a: string | null;
  name_b: string | null;
  status: Status;
  message: string | null;
  shape_a: number[] | null;
  shape_b: number[] | null;
  dtype_a: string | null;
  dtype_b: string | null;
  shapes_match: boolean;
  dtypes_match: boolean;
  values_match: boolean;
  atol: number | null;
  rtol: number | null;
  numel: number | null;
  finite_pairs: number | null;
  mismatched: number | null;
  max_abs: number | null;
  mean_abs: number | null;
  rmse: number | null;
  rms_a: number | null;
  rms_b: number | null;
  max_rel: number | null;
  mean_rel: number | null;
  rel_zero_b: number | null;
  max_rel_floored: number | null;
  mean_rel_floored: number | null;
  rel_floor: number | null;
  cosine: number | null;
  pearson: number | null;
  snr_db: number | null;
  nan_a: number | null;
  nan_b: number | null;
  inf_a: number | null;
  inf_b: number | null;
  nan_position_mismatch: number | null;
  inf_mismatch: number | null;
  ulp_max: number | null;
  ulp_median: number | null;
  percentiles_abs: { p50: number; p90: number; p99: number; p999: number } | null;
  histogram: { zero: number; bins: { lo: number; hi: number; count: number }[] } | null;
  worst: { index: number[]; a: number; b: number; abs: number }[];
  per_channel: ChannelStats[];
  per_frame: { frame: number; numel: number; mismatched: number; max_abs: number; mean_abs: number; rmse: number }[];
  hints: { kind: string; message: string }[];
}

export interface ChannelStats {
  channel: number;
  numel: number;
  mismatched: number;
  max_abs: number;
  mean_abs: number;
  rmse: number;
  mean_a: number;
  mean_b: number;
  std_a: number;
  std_b: number;
  scale: number | null;
  shift: number | null;
  r2: number | null;
}

export interface Summary {
  compared: number;
  matching: number;
  only_in_a: number;
  only_in_b: number;
  shape_mismatch: number;
  ranking: { name: string; rel_rmse: number | null; max_abs: number | null; mismatched: number | null; values_match: boolean }[];
}

export type {
  CompareOptions,
  FileSummary,
  HeatmapData,
  LatentFormatInfo,
  LatentSliceData,
  PreviewData,
  TensorSummary,
  WebGpuStatus,
} from "samplediff-wasm-pkg";

/** A file to compare: a browser `File`, or bytes with a name (the name only labels a lone
 *  `.npy`/`.pt` tensor and error messages; the format is recognised from the content). */
export type FileInput = File | { name: string; data: ArrayBuffer | Uint8Array | Blob };

/** Where a long operation stands. `fraction` is known while reading files. */
export interface Progress {
  stage: "reading" | "parsing" | "comparing" | "heatmaps" | "previews" | "tracing";
  /** Which file, while reading or parsing. */
  file?: string;
  fraction?: number;
}

/** `samplediff diff --json` (crates/samplediff-trace, src/diff.rs); `aligned` holds a full
 *  compare report per tensor. */
export interface TraceDiff {
  settings: { key: string; a: unknown; b: unknown }[];
  aligned: { name: string; step: number | null; rel_rms: number; rounding_floor: number; bit_identical: boolean; metrics: TensorReport }[];
  only_in_a: string[];
  only_in_b: string[];
  curve: { step: number; x_rel: number | null; denoised_rel: number | null; x_floor: number | null }[];
  first_difference: string | null;
  first_divergence: { name: string; step: number | null; rel_rms: number; rounding_floor: number; parting: "drift" | "split" } | null;
  floor_method: string;
}

/** `samplediff explain --json`: findings, earliest root cause first. */
export interface Explanation {
  findings: { cause: string; confidence: number; stage: string; step: number | null; evidence: string }[];
}
