// Benchmark (not a test): a 2 x 64 MiB float32 pair compared by the native CLI and in the
// browser (headless Chromium, the wasm core on burn's CPU backend), wall time of each.
//
//   node web/bench/bench.mjs            (after web/build-wasm.sh, node web/build.mjs, a CLI build)
//
// SAMPLEDIFF_BIN picks the CLI (default: the release build if there is one, else debug).
// The browser time runs from reading the two File objects to the parsed report; the native
// time is the whole `samplediff compare A B --json` process (read, compare, print).

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { launch } from "../test/browser.mjs";
import { serve } from "../test/server.mjs";

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TARGET = process.env.CARGO_TARGET_DIR ?? "/work/cargo-target";
const CLI = process.env.SAMPLEDIFF_BIN ?? [join(TARGET, "release/samplediff"), join(TARGET, "debug/samplediff")].find(existsSync);
const RUNS = Number(process.env.RUNS ?? 3);
const SHAPE = [1, 16, 1, 1024, 1024]; // 16 Mi float32 = 64 MiB, a video-sized Wan latent

/** A deterministic safetensors file: values from xorshift32, B = A + small noise. */
async function makePair(dir) {
  const n = SHAPE.reduce((x, y) => x * y, 1);
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  let s = 0x9e3779b9;
  const rand = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32;
  };
  for (let i = 0; i < n; i++) {
    a[i] = (rand() - 0.5) * 4;
    b[i] = a[i] + (rand() - 0.5) * 1e-3;
  }
  const file = (data) => {
    let header = JSON.stringify({ latent: { dtype: "F32", shape: SHAPE, data_offsets: [0, data.byteLength] } });
    header += " ".repeat((8 - (header.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    return Buffer.concat([len, Buffer.from(header), Buffer.from(data.buffer)]);
  };
  const [pa, pb] = [join(dir, "bench_a.safetensors"), join(dir, "bench_b.safetensors")];
  await writeFile(pa, file(a));
  await writeFile(pb, file(b));
  return [pa, pb];
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function main() {
  if (!CLI) throw new Error("no CLI binary: cargo build -p samplediff-cli (or set SAMPLEDIFF_BIN)");
  const dir = join(tmpdir(), "samplediff-bench");
  await mkdir(dir, { recursive: true });
  const [a, b] = await makePair(dir);

  const native = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync(CLI, ["compare", a, b, "--json"], { maxBuffer: 1 << 28 });
    native.push(performance.now() - t0);
    if (r.status !== 0 && r.status !== 1) throw new Error(`CLI failed: ${r.stderr}`);
  }

  const server = await serve(WEB);
  const browser = await launch();
  const browserRuns = [];
  let last;
  try {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}bench/bench.html`);
    await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60_000 });
    await page.setInputFiles("#a", a);
    await page.setInputFiles("#b", b);
    for (let i = 0; i < RUNS; i++) {
      last = await page.evaluate(() => window.runBench());
      browserRuns.push(last.total_ms);
    }
  } finally {
    await browser.close();
    await server.close();
  }

  const chromium = execFileSync("/usr/bin/chromium", ["--version"], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  const nat = median(native);
  const web = median(browserRuns);
  console.log(`pair: 2 x 64 MiB float32 ${JSON.stringify(SHAPE)} safetensors; ${RUNS} runs each, median`);
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model}; ${chromium}; node ${process.version}`);
  console.log(`native CLI (${CLI}): ${(nat / 1000).toFixed(2)} s   [${native.map((t) => (t / 1000).toFixed(2)).join(", ")}]`);
  console.log(`browser (wasm, CPU backend): ${(web / 1000).toFixed(2)} s   [${browserRuns.map((t) => (t / 1000).toFixed(2)).join(", ")}]  (last: read+parse ${(last.open_ms / 1000).toFixed(2)} s, report ${(last.report_ms / 1000).toFixed(2)} s; wasm memory ${(last.memory / 2 ** 30).toFixed(2)} GiB)`);
  console.log(`browser / native: ${(web / nat).toFixed(2)}x (target <= 3x)`);
}

await main();
