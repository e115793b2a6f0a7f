// The golden workflows run whole on WebGPU (issue 4's `wasm-webgpu` column): the wasm module's
// runWorkflowWebGpu (burn-wgpu on the browser's WebGPU) inside headless Chromium, one page for all
// workflows. Writes what `samplediff run <wf> -o ...` writes:
//   OUT/wasm-webgpu/<wf>   (the run's whole trace)
// so that `samplediff check-backends --include wasm-webgpu=OUT/wasm-webgpu` holds the WebGPU runs
// against every other backend and ComfyUI.
//
//   node web/test/webgpu-runs.mjs [OUT]      # default tests/artifacts/wasm; needs web/pkg

import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { launch } from "./browser.mjs";
import { serve } from "./server.mjs";
import { DEFAULT_OUT, ROPE_AXES, WEB, inputs, workflows } from "./wasm-runs.mjs";

/**
 * Every golden workflow run on WebGPU in headless Chromium. Resolves to
 * `{ adapter, results: [{ name, run, seconds }] }`: the adapter's description as the page saw it
 * and each run's trace bytes. Rejects with the page's reason when it has no WebGPU.
 */
export async function runAllWebGpu() {
  const server = await serve(WEB);
  const browser = await launch();
  try {
    const page = await browser.context.newPage();
    const console_ = [];
    page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
    await page.goto(`${server.url}test/blank.html`);
    const adapter = await page.evaluate(async () => {
      const sd = await import("/pkg/samplediff_wasm.js");
      await sd.default();
      const status = await sd.initWebGpu();
      if (!status.available) return { available: false, reason: status.reason };
      const a = await navigator.gpu.requestAdapter();
      const i = a?.info ?? {};
      return { available: true, vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
    });
    if (!adapter.available) throw new Error(`headless Chromium offers no WebGPU: ${adapter.reason}`);
    const results = [];
    for (const name of workflows()) {
      const { wf, model, lora } = inputs(name);
      const b64 = (b) => (b ? Buffer.from(b).toString("base64") : null);
      const started = performance.now();
      const got = await page
        .evaluate(
          async ({ wf, model, lora, axes }) => {
            const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
            const text = (u8) => {
              let s = "";
              for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
              return btoa(s);
            };
            const sd = await import("/pkg/samplediff_wasm.js");
            try {
              return { run: text(await sd.runWorkflowWebGpu(bytes(wf), bytes(model), lora ? bytes(lora) : undefined, axes)) };
            } catch (e) {
              return { error: `${e?.message ?? e}${globalThis.__samplediffPanic ? ` (${globalThis.__samplediffPanic})` : ""}` };
            }
          },
          { wf: b64(wf), model: b64(model), lora: b64(lora), axes: ROPE_AXES },
        )
        .catch((e) => ({ error: `${e.message}\n${console_.slice(-20).join("\n")}` }));
      if (got.error) throw new Error(`${name} on WebGPU: ${got.error}`);
      results.push({ name, run: Buffer.from(got.run, "base64"), seconds: (performance.now() - started) / 1000 });
    }
    await page.close();
    if (browser.outside.length) throw new Error(`requests that would have left 127.0.0.1: ${browser.outside.join(", ")}`);
    return { adapter, results };
  } finally {
    await browser.close();
    await server.close();
  }
}

/** Every golden workflow on WebGPU; the traces written under `out`/wasm-webgpu. */
export async function writeAllWebGpu(out = DEFAULT_OUT) {
  const all = await runAllWebGpu();
  mkdirSync(join(out, "wasm-webgpu"), { recursive: true });
  for (const { name, run } of all.results) writeFileSync(join(out, "wasm-webgpu", name), run);
  return all;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? DEFAULT_OUT);
  const { adapter, results } = await writeAllWebGpu(out);
  console.log(`WebGPU adapter: ${JSON.stringify(adapter)}`);
  for (const { name, seconds } of results) console.log(`${name}: ${out}/wasm-webgpu/${name} (${seconds.toFixed(1)} s)`);
}
