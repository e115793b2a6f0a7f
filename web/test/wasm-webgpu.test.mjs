// The golden ComfyUI workflows run whole on WebGPU (issue 4's `wasm-webgpu` column): the wasm
// module's runWorkflowWebGpu (burn-wgpu on the browser's WebGPU, SwiftShader on a machine without
// a GPU) in headless Chromium, against
// * ComfyUI's recorded run: latent_out and every stepNNN.x / stepNNN.denoised within 1e-4 (the
//   `comfyui` tolerance of check-backends, docs/backends.md);
// * the same module's CPU run (runWorkflow in Node, burn's CPU backend): latent_out within 5e-5
//   (the backend-vs-backend tolerance), with the same tensors in the trace.
// The traces are written to tests/artifacts/wasm/wasm-webgpu/ for
// `samplediff check-backends --include wasm-webgpu=tests/artifacts/wasm/wasm-webgpu` (tests/run.sh).
// A browser without WebGPU fails the test with its reason: this column is never faked.
//
// Needs web/pkg (bash web/build-wasm.sh) and /usr/bin/chromium.

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { GOLDEN, WEB, loadWasm, maxAbs, readSafetensors, runOne, workflows } from "./wasm-runs.mjs";
import { writeAllWebGpu } from "./webgpu-runs.mjs";

const COMFYUI_TOLERANCE = 1e-4;
const BACKEND_TOLERANCE = 5e-5;
const NAMES = workflows();

/** name -> { webgpu, cpu } traces (parsed). */
const runs = new Map();

before(async () => {
  if (!existsSync(join(WEB, "pkg/samplediff_wasm_bg.wasm"))) throw new Error("web/pkg is missing: bash web/build-wasm.sh");
  assert.ok(NAMES.length >= 3, "golden workflows found");
  const { adapter, results } = await writeAllWebGpu();
  console.log(`WebGPU adapter: vendor ${adapter.vendor}, architecture ${adapter.architecture}`);
  const sd = await loadWasm();
  for (const { name, run, seconds } of results) {
    console.log(`${name}: ${seconds.toFixed(1)} s on WebGPU`);
    runs.set(name, { webgpu: readSafetensors(run), cpu: readSafetensors(runOne(sd, name).run) });
  }
});

const isStepOrOut = (n) => /^step\d{3}\.(x|denoised)$/.test(n) || n === "latent_out";

describe("whole workflow on WebGPU (headless Chromium)", () => {
  for (const name of NAMES) {
    test(`${name} against ComfyUI`, () => {
      const golden = readSafetensors(readFileSync(join(GOLDEN, name)));
      const { webgpu } = runs.get(name);
      const rows = [];
      for (const [t, { shape, data }] of webgpu.tensors) {
        if (!isStepOrOut(t)) continue;
        const want = golden.tensors.get(t);
        assert.ok(want, `ComfyUI's file has no ${t}`);
        assert.deepEqual(shape, want.shape, t);
        rows.push([t, maxAbs(data, want.data)]);
      }
      assert.ok(rows.some(([t]) => t === "latent_out") && rows.length >= 3, "steps and latent_out recorded");
      const out = rows.find(([t]) => t === "latent_out")[1];
      console.log(`webgpu run ${name}: latent_out max abs ${out.toExponential(2)} vs ComfyUI, worst step ${Math.max(...rows.map(([, m]) => m)).toExponential(2)}`);
      for (const [t, m] of rows) assert.ok(m <= COMFYUI_TOLERANCE, `${t}: max abs ${m} > ${COMFYUI_TOLERANCE}`);
    });

    test(`${name} against the CPU backend in wasm`, () => {
      const { webgpu, cpu } = runs.get(name);
      assert.deepEqual([...webgpu.tensors.keys()].sort(), [...cpu.tensors.keys()].sort(), "the same trace layout");
      const m = maxAbs(webgpu.tensors.get("latent_out").data, cpu.tensors.get("latent_out").data);
      console.log(`webgpu run ${name}: latent_out max abs ${m.toExponential(2)} vs wasm-cpu`);
      assert.ok(m <= BACKEND_TOLERANCE, `latent_out: max abs ${m} > ${BACKEND_TOLERANCE}`);
      // Inputs recorded into the trace come from the host and must be the CPU run's exactly.
      for (const t of ["latent_in", "positive", "sigmas"]) assert.equal(maxAbs(webgpu.tensors.get(t).data, cpu.tensors.get(t).data), 0, t);
    });
  }
});
