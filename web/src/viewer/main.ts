// The samplediff viewer: two files in, the report, heatmaps, previews and charts out.
// Everything runs in this browser (a worker with the wasm core); nothing is uploaded.
//
// For tests and users, `window.samplediff` publishes the state: `lastReport` (the compare
// JSON, equal to `samplediff compare --json`), `status`, `lastError`, `renderer`, `engine`.

import {
  Samplediff, type Comparison, type CompareReport, type Explanation, type FileInput, type LatentFormatInfo, type Progress,
  type TensorReport, type TraceDiff,
} from "../lib/samplediff.js";
import { drawColourBar, drawHeatmap, drawPreview } from "./canvas.js";
import { drawCurve, drawHistogram, histogramBins, type Series } from "./charts.js";
import { scaleFor } from "./colors.js";
import { byId, el, num } from "./dom.js";
import { GpuRenderer } from "./gpu.js";
import { channelTable, metricsTable, tensorTable, verdict, worstTable } from "./tables.js";

interface PageState {
  status: "starting" | "idle" | "loading" | "done" | "error";
  lastReport: CompareReport | null;
  /** For two recorded runs: `samplediff diff --json` and `explain --json`. */
  lastTrace: { diff: TraceDiff; explain: Explanation } | null;
  lastError: string | null;
  /** How pictures are drawn: "webgpu" (WGSL shaders) or "canvas". */
  renderer: "webgpu" | "canvas" | null;
  engine: Samplediff["info"] | null;
  /** The tensor whose details are shown. */
  selected: string | null;
}

declare global {
  interface Window {
    samplediff: PageState;
  }
}

const state: PageState = (window.samplediff = { status: "starting", lastReport: null, lastTrace: null, lastError: null, renderer: null, engine: null, selected: null });
const params = new URLSearchParams(location.search);
const useGpu = params.get("gpu") !== "off";

let engine: Samplediff;
let gpu: GpuRenderer | null = null;
let comparison: Comparison | null = null;
const files: { a?: FileInput; b?: FileInput } = {};
let logScale = false;
let formatChoice = "auto";

function showProgress(p: Progress | null): void {
  byId("progress").hidden = !p;
  if (!p) return;
  const bar = byId<HTMLProgressElement>("progress-bar");
  if (p.fraction === undefined) bar.removeAttribute("value");
  else bar.value = p.fraction;
  const what = { reading: "reading", parsing: "reading the format of", comparing: "comparing", heatmaps: "computing heatmaps", previews: "drawing previews", tracing: "diagnosing the runs" }[p.stage];
  byId("progress-text").textContent = `${what}${p.file ? ` ${p.file}` : ""}${p.fraction !== undefined ? ` ${Math.round(p.fraction * 100)}%` : "…"}`;
}

function showError(message: string | null): void {
  const box = byId("error");
  box.hidden = !message;
  box.textContent = message ?? "";
  state.lastError = message;
}

function fileName(side: "a" | "b"): void {
  const f = files[side];
  const size = (n: number) => (n < 2 ** 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);
  byId(`name-${side}`).textContent = f ? `${f.name} (${f instanceof Blob ? size(f.size) : "bytes"})` : "no file yet";
}

async function run(): Promise<void> {
  if (!files.a || !files.b) return;
  state.status = "loading";
  showError(null);
  byId("result").hidden = true;
  try {
    await comparison?.close();
    comparison = null;
    comparison = await engine.open(files.a, files.b, showProgress);
    const report = await comparison.report(undefined, showProgress);
    state.lastReport = report;
    state.lastTrace = null;
    await render(report);
    state.lastTrace = await comparison.trace(showProgress);
    renderTrace(report, state.lastTrace);
    state.status = "done";
  } catch (e) {
    state.status = "error";
    showError((e as Error).message);
  } finally {
    showProgress(null);
  }
}

/** The tensor shown first: the worst compared one (the report's ranking), else the first. */
function firstTensor(report: CompareReport): TensorReport | null {
  const compared = report.tensors.filter((t) => t.status === "compared");
  const worst = report.summary.ranking[0]?.name;
  return compared.find((t) => t.name === worst && !t.values_match) ?? compared.find((t) => t.name === "latent_out") ?? compared[0] ?? null;
}

async function render(report: CompareReport): Promise<void> {
  byId("result").hidden = false;
  byId("verdict-box").replaceChildren(verdict(report));
  const first = firstTensor(report);
  // A picture that cannot be drawn is reported, but the report stands.
  const select = async (t: TensorReport) => {
    state.selected = t.name;
    byId("tensor-list").replaceChildren(tensorTable(report, t.name, (u) => void select(u)));
    try {
      await detail(t);
    } catch (e) {
      showError(`${t.name}: ${(e as Error).message}`);
    } finally {
      showProgress(null);
    }
  };
  byId("tensor-list").replaceChildren(tensorTable(report, first?.name ?? null, (u) => void select(u)));
  byId("detail").hidden = !first;
  renderTrace(report, null);
  if (first) await select(first);
}

async function detail(t: TensorReport): Promise<void> {
  if (!comparison || !t.name_a || !t.name_b) return;
  byId("detail-title").textContent = t.name;
  byId("metric-table").replaceChildren(metricsTable(t));
  byId("hints").replaceChildren(...t.hints.map((h) => el("li", { "data-hint": h.kind }, h.message)));
  byId("worst").replaceChildren(worstTable(t));
  byId("channel-section").hidden = t.per_channel.length === 0;
  byId("channel-table").replaceChildren(channelTable(t));
  byId("histogram-section").hidden = !t.histogram;
  if (t.histogram) drawHistogram(byId<HTMLCanvasElement>("histogram"), histogramBins(t.histogram));
  await heatmaps(t);
  await previews(t);
}

async function heatmaps(t: TensorReport): Promise<void> {
  if (!comparison || !t.name_a || !t.name_b) return;
  showProgress({ stage: "heatmaps" });
  const maps = await comparison.heatmaps(t.name_a, t.name_b, { webgpu: useGpu });
  const scale = scaleFor(maps.max, logScale);
  const draw = gpu?.heatmaps(maps, scale);
  const tiles = [];
  for (let c = 0; c < maps.channels; c++) {
    const strip = maps.height === 1; // a 1-D tensor: one long row, drawn as a wide strip
    const canvas = el("canvas", { class: strip ? "map strip" : "map", "data-channel": c, "data-rendered": draw ? "webgpu" : "canvas" });
    if (draw) await draw(canvas, c);
    else drawHeatmap(canvas, maps, c, scale);
    const channel = t.per_channel[c];
    const label = maps.channels > 1 ? `ch ${c}${channel ? ` · max ${num(channel.max_abs)}` : ""}` : `max ${num(maps.max)}`;
    tiles.push(el("figure", {}, canvas, el("figcaption", {}, label)));
  }
  byId("heatmap-grid").replaceChildren(...tiles);
  byId("heatmap-grid").dataset.computedOn = maps.device;
  drawColourBar(byId<HTMLCanvasElement>("colour-bar"));
  byId("scale-min").textContent = logScale ? num(scale.min) : "0";
  byId("scale-max").textContent = num(scale.max);
  byId("heatmap-note").textContent = `|a−b|, max over batch and frames; computed on ${maps.device === "webgpu" ? "WebGPU (burn-wgpu)" : "the CPU (burn flex)"}, drawn with ${draw ? "WebGPU (WGSL)" : "canvas 2D"}; magenta: NaN/Inf on one side only.`;
}

function formatsFor(t: TensorReport): LatentFormatInfo[] {
  const shape = t.shape_a ?? [];
  if (shape.length !== 4 && shape.length !== 5) return [];
  return (engine.info.formats ?? []).filter((f) => f.channels === shape[1]);
}

async function previews(t: TensorReport): Promise<void> {
  const section = byId("preview-section");
  const formats = formatsFor(t);
  section.hidden = !comparison || formats.length === 0;
  if (section.hidden || !comparison || !t.name_a || !t.name_b) return;
  const choose = byId<HTMLSelectElement>("format");
  const auto = formats.find((f) => f.channels === 16 ? f.name === "Wan21" : f.name === "SD15") ?? formats[0];
  choose.replaceChildren(
    el("option", { value: "auto" }, `auto (${auto.name})`),
    ...formats.map((f) => el("option", { value: f.name, selected: f.name === formatChoice }, f.name)),
  );
  const format = formats.find((f) => f.name === formatChoice) ?? auto;
  showProgress({ stage: "previews" });
  const tiles = [];
  for (const [side, name, label] of [["a", t.name_a, "A"], ["b", t.name_b, "B (reference)"]] as const) {
    const canvas = el("canvas", { class: "preview", "data-side": side, "data-format": format.name, "data-rendered": gpu ? "webgpu" : "canvas" });
    if (gpu) await gpu.preview(canvas, await comparison.latentSlice(side, name), format);
    else drawPreview(canvas, await comparison.preview(side, name, format.name));
    tiles.push(el("figure", {}, canvas, el("figcaption", {}, `${label}: ${name}`)));
  }
  byId("preview-grid").replaceChildren(...tiles);
}

/** The divergence over the steps: from the trace diff for recorded runs (with the float32
 *  rounding floor and the explain findings), else each `stepNNN.*` tensor's relative RMSE. */
function renderTrace(report: CompareReport, trace: { diff: TraceDiff; explain: Explanation } | null): void {
  let series: Series[];
  if (trace) {
    const pick = (f: (p: TraceDiff["curve"][number]) => number | null, label: string): Series => ({ label, points: trace.diff.curve.map((p) => ({ step: p.step, value: f(p) })) });
    series = [pick((p) => p.x_rel, "x"), pick((p) => p.denoised_rel, "denoised"), pick((p) => p.x_floor, "float32 rounding floor (x)")];
  } else {
    const rel = new Map(report.summary.ranking.map((r) => [r.name, r.rel_rmse]));
    const byKind = new Map<string, Series>();
    for (const t of report.tensors) {
      const m = /^step(\d+)\.(.+)$/.exec(t.name);
      if (!m || t.status !== "compared") continue;
      const s = byKind.get(m[2]) ?? { label: m[2], points: [] };
      s.points.push({ step: Number(m[1]), value: rel.get(t.name) ?? null });
      byKind.set(m[2], s);
    }
    series = [...byKind.values()];
  }
  byId("trace").hidden = series.length === 0;
  if (series.length) drawCurve(byId<HTMLCanvasElement>("curve"), series, "RMS(a−b) / RMS(b)");
  const d = trace?.diff.first_divergence;
  byId("divergence").textContent = !trace
    ? ""
    : d
      ? `First divergence beyond float32 rounding: ${d.name}${d.step !== null ? ` (step ${d.step})` : ""}, relative RMS ${num(d.rel_rms)} vs floor ${num(d.rounding_floor)}: ${d.parting === "split" ? "an abrupt split" : "a drift"}.`
      : trace.diff.first_difference
        ? `The runs differ first at ${trace.diff.first_difference}, within what float32 rounding explains.`
        : "The runs are bit-identical.";
  byId("findings").replaceChildren(
    ...(trace?.explain.findings ?? []).map((f) =>
      el(
        "li",
        { "data-finding": f.cause },
        el("code", { class: "cause" }, f.cause),
        el("span", { class: "where" }, ` ${f.stage}${f.step !== null ? ` · step ${f.step}` : ""} · confidence ${f.confidence.toFixed(2)}`),
        el("div", { class: "evidence" }, f.evidence),
      ),
    ),
  );
  byId("findings-section").hidden = !trace;
}

function take(side: "a" | "b", f: File | undefined): void {
  if (!f) return;
  files[side] = f;
  fileName(side);
}

function wireInputs(): void {
  for (const side of ["a", "b"] as const) {
    const input = byId<HTMLInputElement>(`file-${side}`);
    input.addEventListener("change", () => {
      take(side, input.files?.[0]);
      void run();
    });
    const slot = byId(`slot-${side}`);
    slot.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      document.body.classList.remove("dragging");
      const dropped = [...(e.dataTransfer?.files ?? [])];
      if (dropped.length >= 2) [files.a, files.b] = dropped;
      else take(side, dropped[0]);
      fileName("a");
      fileName("b");
      void run();
    });
  }
  // Two files dropped anywhere: the first is A, the second B.
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => e.relatedTarget === null && document.body.classList.remove("dragging"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dragging");
    const dropped = [...(e.dataTransfer?.files ?? [])];
    if (dropped.length >= 2) [files.a, files.b] = dropped;
    else if (dropped.length === 1) take(files.a ? "b" : "a", dropped[0]);
    fileName("a");
    fileName("b");
    void run();
  });
  byId<HTMLSelectElement>("scale").addEventListener("change", (e) => {
    logScale = (e.target as HTMLSelectElement).value === "log";
    const t = state.lastReport?.tensors.find((x) => x.name === state.selected);
    if (t) void heatmaps(t).finally(() => showProgress(null));
  });
  byId<HTMLSelectElement>("format").addEventListener("change", (e) => {
    formatChoice = (e.target as HTMLSelectElement).value;
    const t = state.lastReport?.tensors.find((x) => x.name === state.selected);
    if (t) void previews(t).finally(() => showProgress(null));
  });
}

async function start(): Promise<void> {
  wireInputs();
  try {
    [engine, gpu] = await Promise.all([Samplediff.create({ webgpu: useGpu }), useGpu ? GpuRenderer.create() : Promise.resolve(null)]);
    state.engine = engine.info;
    state.renderer = gpu ? "webgpu" : "canvas";
    byId("engine").textContent = `samplediff ${engine.info.version} · report on the CPU (burn flex, float64, as the CLI) · heatmaps on ${engine.info.webgpu.available ? "WebGPU (burn-wgpu)" : "the CPU"} · drawn with ${gpu ? "WebGPU" : "canvas 2D"}`;
    state.status = "idle";
  } catch (e) {
    state.status = "error";
    showError(`the viewer could not start: ${(e as Error).message}`);
  }
}

void start();
