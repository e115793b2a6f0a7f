// The golden workflows inside wasm (issues 3 and 4): every tests/fixtures/comfyui/wf_*.safetensors
// replayed through the reference chain and run whole (tiny Qwen-Image model + its LoRA), on burn's
// CPU backend compiled to wasm (web/pkg, loaded here in Node). Writes what the native CLI writes:
//   OUT/replay/<wf>    = `samplediff replay <wf> -o ...`  (stepNNN.*, callNNN.*, latent_out)
//   OUT/wasm-cpu/<wf>  = `samplediff run <wf> -o ...`     (the run's whole trace)
// so that `samplediff check-backends --include wasm-cpu=OUT/wasm-cpu` holds the wasm runs against
// every native backend and ComfyUI.
//
//   node web/test/wasm-runs.mjs [OUT]        # default tests/artifacts/wasm; needs web/pkg

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = resolve(WEB, "..");
export const GOLDEN = join(ROOT, "tests/fixtures/comfyui");
export const MODEL = join(GOLDEN, "models/diffusion_models/tiny_qwen.safetensors");
/** The tiny model's RoPE axes (head dim 32), as `check-backends` uses by default. */
export const ROPE_AXES = [8, 12, 12];
export const DEFAULT_OUT = join(ROOT, "tests/artifacts/wasm");

/** The golden workflow files' names, sorted. */
export function workflows() {
  return readdirSync(GOLDEN).filter((n) => n.startsWith("wf_") && n.endsWith(".safetensors")).sort();
}

/** The wasm module (web target), instantiated synchronously from web/pkg. */
export async function loadWasm() {
  const sd = await import(pathToFileURL(join(WEB, "pkg/samplediff_wasm.js")).href);
  sd.initSync({ module: readFileSync(join(WEB, "pkg/samplediff_wasm_bg.wasm")) });
  return sd;
}

/**
 * A safetensors file's float32 tensors and metadata, read here in JavaScript so that what the wasm
 * module wrote is checked by code that is not the module's own.
 */
export function readSafetensors(bytes) {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8"));
  const metadata = header.__metadata__ ?? {};
  delete header.__metadata__;
  const tensors = new Map();
  for (const [name, { dtype, shape, data_offsets: [start, end] }] of Object.entries(header)) {
    if (dtype !== "F32") continue;
    const raw = buf.subarray(8 + headerLen + start, 8 + headerLen + end);
    const data = new Float32Array(raw.byteLength / 4);
    for (let i = 0; i < data.length; i++) data[i] = raw.readFloatLE(4 * i);
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata };
}

/** Largest |a - b| (NaN when exactly one side is NaN at some element, Infinity for a size mismatch). */
export function maxAbs(a, b) {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) {
      if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
      return NaN;
    }
    if (d > worst) worst = d;
  }
  return worst;
}

/** The files one workflow needs: the workflow itself, the model, and the LoRA it names (if any). */
export function inputs(name) {
  const wf = readFileSync(join(GOLDEN, name));
  const lora = JSON.parse(readSafetensors(wf).metadata.lora ?? "null");
  return { wf, model: readFileSync(MODEL), lora: lora ? readFileSync(join(GOLDEN, "models/loras", lora)) : undefined };
}

/** Replays and runs one workflow in `sd` (the module), returning both outputs' bytes. */
export function runOne(sd, name) {
  const { wf, model, lora } = inputs(name);
  return { replay: sd.replay(wf, name), run: sd.runWorkflow(wf, model, lora, ROPE_AXES) };
}

/** Every golden workflow replayed and run in wasm; the files written under `out`. */
export async function writeAll(out = DEFAULT_OUT) {
  const sd = await loadWasm();
  for (const dir of ["replay", "wasm-cpu"]) mkdirSync(join(out, dir), { recursive: true });
  const results = [];
  for (const name of workflows()) {
    const r = runOne(sd, name);
    writeFileSync(join(out, "replay", name), r.replay);
    writeFileSync(join(out, "wasm-cpu", name), r.run);
    results.push({ name, ...r });
  }
  return results;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? DEFAULT_OUT);
  for (const { name } of await writeAll(out)) console.log(`${name}: ${out}/replay/${name}, ${out}/wasm-cpu/${name}`);
}
