// The verdict, the tensor list and the metrics of one tensor. Every displayed metric carries
// `data-metric="NAME"` (the report's field name) and its exact value in `data-value`, so tests
// and users can read the numbers back.

import { el, num, shape } from "./dom.js";
import type { CompareReport, TensorReport } from "../lib/types.js";

export function verdict(report: CompareReport): HTMLElement {
  const s = report.summary;
  const differing = s.compared - s.matching + s.only_in_a + s.only_in_b + s.shape_mismatch;
  const text = report.verdict === "match" ? "MATCH" : `MISMATCH: ${differing} of ${report.tensors.length} tensors differ`;
  return el(
    "div",
    { class: `verdict ${report.verdict}`, "data-metric": "verdict", "data-value": report.verdict },
    text,
    el("span", { class: "counts" }, `${s.compared} compared, ${s.matching} match, ${s.only_in_a} only in A, ${s.only_in_b} only in B, ${s.shape_mismatch} with other shapes`),
  );
}

function statusText(t: TensorReport): string {
  switch (t.status) {
    case "compared":
      return t.values_match ? "match" : "MISMATCH";
    case "only_in_a":
      return "only in A";
    case "only_in_b":
      return "only in B";
    case "shape_mismatch":
      return "SHAPES DIFFER";
  }
}

/** One row per tensor; compared rows are buttons that select the tensor shown below. */
export function tensorTable(report: CompareReport, selected: string | null, onSelect: (t: TensorReport) => void): HTMLTableElement {
  const head = el("tr", {}, ...["tensor", "status", "shape", "dtype", "max_abs", "mean_abs", "rel. RMSE", "mismatched"].map((h) => el("th", {}, h)));
  const rank = new Map(report.summary.ranking.map((r) => [r.name, r.rel_rmse]));
  // Differences first, worst first (the report's ranking), then the rest in file order.
  const order = new Map(report.summary.ranking.map((r, i) => [r.name, i]));
  const key = (t: TensorReport) => (t.status === "compared" ? (t.values_match ? 2 : 0) : 1);
  const sorted = [...report.tensors].sort((x, y) => key(x) - key(y) || (key(x) === 0 ? (order.get(x.name) ?? 0) - (order.get(y.name) ?? 0) : 0));
  const rows = sorted.map((t) => {
    const dtype = t.dtype_a && t.dtype_b && t.dtype_a !== t.dtype_b ? `${t.dtype_a} / ${t.dtype_b}` : t.dtype_a ?? t.dtype_b ?? "–";
    const tr = el(
      "tr",
      { class: `${t.status} ${t.values_match ? "ok" : "bad"} ${t.name === selected ? "selected" : ""}`, "data-tensor": t.name, tabindex: t.status === "compared" ? 0 : undefined },
      el("td", { class: "name" }, t.name),
      el("td", {}, statusText(t)),
      el("td", {}, shape(t.shape_a ?? t.shape_b)),
      el("td", {}, dtype),
      el("td", { class: "n" }, num(t.max_abs)),
      el("td", { class: "n" }, num(t.mean_abs)),
      el("td", { class: "n" }, num(rank.get(t.name) ?? null)),
      el("td", { class: "n" }, t.mismatched === null ? "–" : `${t.mismatched} / ${t.numel}`),
    );
    if (t.status === "compared") {
      tr.addEventListener("click", () => onSelect(t));
      tr.addEventListener("keydown", (e) => e.key === "Enter" && onSelect(t));
    }
    return tr;
  });
  return el("table", { class: "tensors" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

/** The scalar metrics of the report, in the CLI's order, with what each means. */
const METRICS: [keyof TensorReport, string][] = [
  ["values_match", "every element close under atol + rtol·|b|"],
  ["mismatched", "elements not close"],
  ["numel", "elements"],
  ["finite_pairs", "elements finite on both sides"],
  ["max_abs", "max |a−b|"],
  ["mean_abs", "mean |a−b|"],
  ["rmse", "root mean square error"],
  ["rms_a", "RMS of A"],
  ["rms_b", "RMS of B"],
  ["max_rel", "max |a−b|/|b| (b ≠ 0)"],
  ["mean_rel", "mean |a−b|/|b| (b ≠ 0)"],
  ["rel_zero_b", "elements left out of rel: b = 0"],
  ["max_rel_floored", "max |a−b|/max(|b|, floor)"],
  ["mean_rel_floored", "mean |a−b|/max(|b|, floor)"],
  ["rel_floor", "floor of the denominator"],
  ["cosine", "cosine similarity"],
  ["pearson", "Pearson correlation"],
  ["snr_db", "signal-to-noise ratio (dB)"],
  ["ulp_max", "max distance in ULPs"],
  ["ulp_median", "median distance in ULPs"],
  ["nan_a", "NaN in A"],
  ["nan_b", "NaN in B"],
  ["inf_a", "Inf in A"],
  ["inf_b", "Inf in B"],
  ["nan_position_mismatch", "NaN on one side only"],
  ["inf_mismatch", "Inf not matched"],
  ["atol", "absolute tolerance"],
  ["rtol", "relative tolerance"],
];

function cell(name: string, value: unknown): HTMLElement {
  const text = typeof value === "boolean" ? (value ? "yes" : "NO") : num(value as number | null);
  return el("td", { class: "n", "data-metric": name, "data-value": JSON.stringify(value ?? null) }, text);
}

export function metricsTable(t: TensorReport): HTMLTableElement {
  const rows = METRICS.map(([key, what]) => el("tr", {}, el("th", {}, key), cell(key, t[key]), el("td", { class: "what" }, what)));
  if (t.percentiles_abs) {
    for (const [k, v] of Object.entries(t.percentiles_abs)) {
      rows.push(el("tr", {}, el("th", {}, `|a−b| ${k}`), cell(`percentiles_abs.${k}`, v), el("td", { class: "what" }, "percentile of |a−b|")));
    }
  }
  return el("table", { class: "metrics" }, el("tbody", {}, ...rows));
}

/** Per channel: errors and the affine fit b ≈ scale·a + shift (a missing de-normalisation). */
export function channelTable(t: TensorReport): HTMLTableElement {
  const head = el("tr", {}, ...["channel", "max_abs", "mean_abs", "rmse", "scale", "shift", "R²", "mismatched"].map((h) => el("th", {}, h)));
  const rows = t.per_channel.map((c) =>
    el(
      "tr",
      {},
      el("td", {}, String(c.channel)),
      ...(["max_abs", "mean_abs", "rmse", "scale", "shift", "r2"] as const).map((k) => el("td", { class: "n", "data-channel-metric": k }, num(c[k]))),
      el("td", { class: "n" }, `${c.mismatched} / ${c.numel}`),
    ),
  );
  return el("table", { class: "channels" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

export function worstTable(t: TensorReport): HTMLTableElement {
  const head = el("tr", {}, ...["index", "a", "b", "|a−b|"].map((h) => el("th", {}, h)));
  const rows = t.worst.map((w) => el("tr", {}, el("td", {}, `[${w.index.join(", ")}]`), el("td", { class: "n" }, num(w.a)), el("td", { class: "n" }, num(w.b)), el("td", { class: "n" }, num(w.abs))));
  return el("table", { class: "worst" }, el("thead", {}, head), el("tbody", {}, ...rows));
}
