// The viewer in a real browser (Debian's Chromium, headless): for fixture pairs in every
// format, the page's `window.samplediff.lastReport` must equal the native CLI's
// `samplediff compare --json` output for the same files exactly, every displayed metric must
// be the report's number, heatmaps and previews must be drawn, and no request may leave
// 127.0.0.1. Screenshots go to tests/artifacts/web/ (look at them).
//
// Needs: web/pkg (build-wasm.sh), web/dist (build.mjs), the CLI (cargo build -p samplediff-cli;
// SAMPLEDIFF_BIN overrides its path) and /usr/bin/chromium. tests/run.sh's `web` stage does all that.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { launch } from "./browser.mjs";
import { serve } from "./server.mjs";

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = resolve(WEB, "..");
const FIX = join(ROOT, "tests/fixtures");
const ARTIFACTS = join(ROOT, "tests/artifacts/web");
const CLI = process.env.SAMPLEDIFF_BIN ?? join(process.env.CARGO_TARGET_DIR ?? "/work/cargo-target", "debug/samplediff");

/** [label, A, B]: B is the reference, as on the command line. */
const PAIRS = [
  ...["bf16_2d", "f16_5d", "f32_drift", "f32_nonfinite", "mixed_f16_f32"].map((n) => [`metrics-${n}`, `metrics/${n}_a.safetensors`, `metrics/${n}_b.safetensors`]),
  ["npy-f32-1d", "metrics/f32_npy_1d_a.npy", "metrics/f32_npy_1d_b.npy"],
  ["npy-f64-affine", "metrics/f64_affine_a.npy", "metrics/f64_affine_b.npy"],
  ["comfyui-euler-vs-heun", "comfyui/wf_euler_simple_cfg3.safetensors", "comfyui/wf_heun_karras_cfg1.safetensors"],
  ["comfyui-dpmpp-vs-euler", "comfyui/wf_dpmpp2m_simple_d07.safetensors", "comfyui/wf_euler_simple_cfg3.safetensors"],
  ["comfyui-missing-denorm", "web/wf_euler_missing_denorm.safetensors", "comfyui/wf_euler_simple_cfg3.safetensors"],
];

const run = promisify(execFile);

/** The CLI's JSON for A vs B (exit 0 = match, 1 = mismatch; both print the report). */
async function cliJson(a, b) {
  try {
    const { stdout } = await run(CLI, ["compare", a, b, "--json"], { maxBuffer: 1 << 28 });
    return JSON.parse(stdout);
  } catch (e) {
    if (e.code === 1 && e.stdout) return JSON.parse(e.stdout);
    throw new Error(`samplediff compare failed (exit ${e.code}): ${e.stderr}`);
  }
}

let server;
let browser;

before(async () => {
  for (const [what, path] of [["web/pkg (bash web/build-wasm.sh)", join(WEB, "pkg/samplediff_wasm_bg.wasm")], ["web/dist (node web/build.mjs)", join(WEB, "dist/viewer.js")], ["the CLI (cargo build -p samplediff-cli)", CLI]]) {
    if (!existsSync(path)) throw new Error(`${what} is missing: ${path}`);
  }
  await mkdir(ARTIFACTS, { recursive: true });
  server = await serve(WEB);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
  assert.deepEqual(browser?.outside ?? [], [], "requests that would have left 127.0.0.1");
});

/** Open the viewer (a fresh page and engine), load A and B, wait for the outcome. */
async function compareInPage(a, b, query = "") {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${server.url}index.html${query}`);
  await page.waitForFunction(() => window.samplediff?.status === "idle" || window.samplediff?.status === "error", null, { timeout: 60_000 });
  await page.setInputFiles("#file-a", a);
  await page.setInputFiles("#file-b", b);
  await page.waitForFunction(() => ["done", "error"].includes(window.samplediff.status), null, { timeout: 120_000 });
  const state = await page.evaluate(() => ({ ...window.samplediff }));
  return { page, state, errors };
}

describe("viewer reports equal the CLI's", () => {
  for (const [label, a, b] of PAIRS) {
    test(label, async () => {
      const [pa, pb] = [join(FIX, a), join(FIX, b)];
      const want = await cliJson(pa, pb);
      const { page, state, errors } = await compareInPage(pa, pb);
      try {
        assert.equal(state.lastError, null, `the page reported an error: ${state.lastError}`);
        assert.equal(state.status, "done");
        assert.deepStrictEqual(state.lastReport, want);
        assert.deepEqual(errors, []);

        // Every metric shown is the report's value for the tensor shown.
        const shown = await page.$$eval("[data-metric]", (els) => els.map((e) => [e.dataset.metric, e.dataset.value]));
        assert.ok(shown.length > 1, "metrics are shown");
        const tensor = want.tensors.find((t) => t.name === state.selected);
        for (const [name, value] of shown) {
          if (name === "verdict") assert.equal(value, want.verdict);
          else {
            const path = name.split(".");
            const expected = path.reduce((o, k) => o?.[k], tensor);
            assert.deepStrictEqual(JSON.parse(value), expected ?? null, `data-metric=${name}`);
          }
        }

        // Heatmaps (one per channel) and, for latents, both previews are drawn.
        const maps = await page.$$eval("canvas.map", (cs) => cs.map((c) => [c.width, c.height, c.dataset.rendered]));
        if (tensor && tensor.numel > 0) {
          const shape = tensor.shape_a;
          assert.equal(maps.length, shape.length >= 4 ? shape[1] : 1, "one heatmap per channel");
          assert.ok(maps.every(([w, h]) => w > 0 && h > 0));
          assert.ok(maps.every(([, , r]) => r === state.renderer));
        }
        if (tensor && [4, 5].includes(tensor.shape_a.length) && [4, 16].includes(tensor.shape_a[1])) {
          assert.equal(await page.locator("canvas.preview").count(), 2, "previews of A and B");
        }
        await page.screenshot({ path: join(ARTIFACTS, `${label}.png`), fullPage: true });
      } finally {
        await page.close();
      }
    });
  }
});

/** The pixels of every heatmap and preview canvas of a page. */
function pictures(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      ["canvas.map", "canvas.preview"].map((sel) => [
        sel,
        [...document.querySelectorAll(sel)].map((c) => Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data)),
      ]),
    ),
  );
}

const distinctColours = (rgba) => new Set(Array.from({ length: rgba.length / 4 }, (_, i) => rgba.slice(4 * i, 4 * i + 3).join())).size;

describe("viewer", () => {
  const SEED_A = join(FIX, "web/wf_euler_missing_denorm.safetensors");
  const SEED_B = join(FIX, "comfyui/wf_euler_simple_cfg3.safetensors");
  let gpuPictures;

  test("computes heatmaps on WebGPU (burn-wgpu) and draws with the WGSL shaders (SwiftShader here)", async () => {
    const { page, state } = await compareInPage(SEED_A, SEED_B);
    try {
      assert.equal(state.renderer, "webgpu", "navigator.gpu gives an adapter with --enable-unsafe-webgpu");
      assert.equal(state.engine.webgpu.available, true, `burn-wgpu on WebGPU: ${state.engine.webgpu.reason}`);
      assert.equal(await page.locator("#heatmap-grid").getAttribute("data-computed-on"), "webgpu");
      assert.equal(state.selected, "latent_out");
      assert.ok(await page.locator('[data-hint="latent_denormalisation_missing"], [data-hint="channel_affine"]').count() > 0, "the de-normalisation hint is shown");
      gpuPictures = await pictures(page);
      assert.equal(gpuPictures["canvas.map"].length, 16);
      assert.equal(gpuPictures["canvas.preview"].length, 2);
      for (const rgba of [...gpuPictures["canvas.map"], ...gpuPictures["canvas.preview"]]) {
        assert.ok(distinctColours(rgba) > 3, "a drawn picture, not a blank canvas");
      }
      // The preview's latent format: Wan 2.1 chosen for 16 channels, Flux selectable.
      assert.equal(await page.locator("canvas.preview").first().getAttribute("data-format"), "Wan21");
      await page.selectOption("#format", "Flux");
      await page.waitForFunction(() => [...document.querySelectorAll("canvas.preview")].every((c) => c.dataset.format === "Flux"));
      // The two runs: explain names the missing process_out first, diff finds where they part.
      assert.equal(state.lastTrace.explain.findings[0].cause, "output_convention");
      assert.equal(state.lastTrace.diff.first_divergence.name, "latent_out");
      assert.ok((await page.locator("[data-finding]").count()) > 0);
    } finally {
      await page.close();
    }
  });

  test("falls back to the CPU and canvas 2D without WebGPU: same report, same pictures", async () => {
    const { page, state } = await compareInPage(SEED_A, SEED_B, "?gpu=off");
    try {
      assert.equal(state.renderer, "canvas");
      assert.equal(await page.locator("#heatmap-grid").getAttribute("data-computed-on"), "cpu");
      assert.deepStrictEqual(state.lastReport, await cliJson(SEED_A, SEED_B));
      const cpu = await pictures(page);
      await page.screenshot({ path: join(ARTIFACTS, "cpu-fallback.png"), fullPage: true });
      // Same colour table and formula on both paths: heatmaps may differ by one colour step where a
      // value sits on a boundary (float32 on the GPU), previews by one level (summation order).
      assert.ok(gpuPictures, "runs after the WebGPU test");
      for (const [sel, tolerance] of [["canvas.map", 8], ["canvas.preview", 1]]) {
        assert.equal(cpu[sel].length, gpuPictures[sel].length);
        cpu[sel].forEach((rgba, i) => {
          const worst = rgba.reduce((m, v, k) => Math.max(m, Math.abs(v - gpuPictures[sel][i][k])), 0);
          assert.ok(worst <= tolerance, `${sel} #${i}: WebGPU and canvas pictures differ by ${worst} levels`);
        });
      }
    } finally {
      await page.close();
    }
  });

  test("two files dropped on the page are compared (A first)", async () => {
    const [a, b] = [join(FIX, "metrics/f32_drift_a.safetensors"), join(FIX, "metrics/f32_drift_b.safetensors")];
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}index.html`);
      await page.waitForFunction(() => window.samplediff?.status === "idle");
      const bytes = await Promise.all([a, b].map(async (p) => Array.from(await readFile(p))));
      await page.evaluate(([ba, bb]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(ba)], "f32_drift_a.safetensors"));
        dt.items.add(new File([new Uint8Array(bb)], "f32_drift_b.safetensors"));
        document.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, bytes);
      await page.waitForFunction(() => ["done", "error"].includes(window.samplediff.status));
      const state = await page.evaluate(() => ({ ...window.samplediff }));
      assert.equal(state.lastError, null);
      assert.deepStrictEqual(state.lastReport, await cliJson(a, b));
      assert.match(await page.locator("#name-a").textContent(), /^f32_drift_a\.safetensors/);
    } finally {
      await page.close();
    }
  });

  test("a bad file gives a clear message naming it", async () => {
    const junk = join(ARTIFACTS, "not-a-tensor.bin");
    await writeFile(junk, "this is not a tensor file\n");
    const { page, state } = await compareInPage(junk, join(FIX, "metrics/f32_drift_b.safetensors"));
    try {
      assert.equal(state.status, "error");
      assert.match(state.lastError, /^not-a-tensor\.bin: unrecognised file format/);
      assert.equal(await page.locator("#error").textContent(), state.lastError);
      await page.screenshot({ path: join(ARTIFACTS, "bad-file.png"), fullPage: true });
    } finally {
      await page.close();
    }
  });

  test("the embeddable API alone: compare == CLI, a panic becomes a rejected promise and the engine recovers", async () => {
    const [a, b] = [join(FIX, "metrics/f64_affine_a.npy"), join(FIX, "metrics/f64_affine_b.npy")];
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}test/api.html`);
      await page.waitForFunction(() => window.apiReady === true);
      await page.setInputFiles("#a", a);
      await page.setInputFiles("#b", b);
      const out = await page.evaluate(async () => {
        const sd = await window.Samplediff.create({ webgpu: false });
        const [fa, fb] = [document.getElementById("a").files[0], document.getElementById("b").files[0]];
        const first = await sd.compare(fa, fb);
        const panic = await sd.selfTestPanic().then(() => "resolved", (e) => e.message);
        const again = await sd.compare(fa, fb); // a fresh worker after the trap
        const bad = await sd.compare({ name: "x.pt", data: new Uint8Array([1, 2, 3]) }, fb).then(() => "resolved", (e) => e.message);
        return { first, panic, again, bad };
      });
      const want = await cliJson(a, b);
      assert.deepStrictEqual(out.first, want);
      assert.deepStrictEqual(out.again, want);
      assert.match(out.panic, /internal error: .*self-test panic/);
      assert.match(out.bad, /^x\.pt: /);
    } finally {
      await page.close();
    }
  });

  test("no request left 127.0.0.1", () => {
    assert.ok(browser.requests.length > 0);
    const foreign = browser.requests.filter((u) => !u.startsWith(server.url) && !u.startsWith("data:") && !u.startsWith("blob:"));
    assert.deepEqual(foreign, []);
    assert.deepEqual(browser.outside, []);
  });
});
