// The worker that hosts the wasm module, so that large files never freeze the page and a wasm
// trap (a bug, or running out of the 4 GiB wasm memory) costs only this worker: the page gets
// a rejected promise with the message and starts a fresh worker for the next call.

import init, * as wasm from "samplediff-wasm-pkg";
import type { Request, Response } from "./protocol.js";

const scope = self as unknown as DedicatedWorkerGlobalScope;
const sessions = new Map<number, wasm.Comparison>();
let ready: Promise<wasm.InitOutput> | null = null;

function reply(message: Response, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}

function progress(id: number, stage: string, file?: string): void {
  reply({ id, progress: { stage, file } });
}

function session(n: number): wasm.Comparison {
  const s = sessions.get(n);
  if (!s) throw new Error(`no open comparison #${n} (it was closed, or the engine restarted)`);
  return s;
}

/** Buffers of typed arrays in a result, moved to the page instead of copied. */
function buffersOf(result: unknown): Transferable[] {
  if (!result || typeof result !== "object") return [];
  return Object.values(result as Record<string, unknown>)
    .filter((v): v is ArrayBufferView => ArrayBuffer.isView(v))
    .map((v) => v.buffer as ArrayBuffer);
}

async function handle(req: Request): Promise<unknown> {
  if (req.op === "init") {
    ready ??= init({ module_or_path: new URL("../pkg/samplediff_wasm_bg.wasm", import.meta.url) });
    await ready;
    const webgpu = req.webgpu ? await wasm.initWebGpu() : { available: false, reason: "WebGPU not requested" };
    return { version: wasm.version(), webgpu, formats: wasm.latentFormats() };
  }
  await (ready ??= init({ module_or_path: new URL("../pkg/samplediff_wasm_bg.wasm", import.meta.url) }));
  switch (req.op) {
    case "inspect":
      progress(req.id, "parsing", req.name);
      return wasm.inspect(req.name, new Uint8Array(req.bytes), req.selector);
    case "open": {
      progress(req.id, "parsing");
      const c = new wasm.Comparison(
        req.nameA, new Uint8Array(req.bytesA), req.nameB, new Uint8Array(req.bytesB), req.selectorA, req.selectorB,
      );
      sessions.get(req.session)?.free();
      sessions.set(req.session, c);
      return { a: c.summary("a"), b: c.summary("b") };
    }
    case "report":
      progress(req.id, "comparing");
      return session(req.session).reportJson(req.options as wasm.CompareOptions | undefined);
    case "heatmaps": {
      progress(req.id, "heatmaps");
      const s = session(req.session);
      if (req.gpu) {
        try {
          return await s.heatmapsWebGpu(req.nameA, req.nameB);
        } catch (e) {
          // WebGPU can be lost at any time; the CPU computes the same maps.
          console.warn(`samplediff: WebGPU heatmaps failed, using the CPU: ${(e as Error).message}`);
        }
      }
      return s.heatmaps(req.nameA, req.nameB);
    }
    case "latentSlice":
      return session(req.session).latentSlice(req.side, req.name);
    case "preview":
      progress(req.id, "previews");
      return session(req.session).preview(req.side, req.name, req.format);
    case "trace": {
      // Diff and explain only for recorded runs: on plain files the compare report says it all.
      const s = session(req.session);
      if (!s.isRun("a") || !s.isRun("b")) return null;
      progress(req.id, "tracing");
      return { diff: s.traceDiffJson(), explain: s.explainJson() };
    }
    case "memory":
      return (await ready).memory.buffer.byteLength;
    case "selfTestPanic":
      return wasm.__selfTestPanic();
    case "close":
      sessions.get(req.session)?.free();
      sessions.delete(req.session);
      return null;
  }
}

scope.onmessage = async (event: MessageEvent<Request>) => {
  const req = event.data;
  try {
    const result = await handle(req);
    reply({ id: req.id, ok: true, result }, buffersOf(result));
  } catch (e) {
    const trap = e instanceof WebAssembly.RuntimeError;
    const panic = (globalThis as { __samplediffPanic?: string }).__samplediffPanic;
    const error = trap
      ? panic ?? `the computation stopped (WebAssembly trap: ${e.message}); the files are probably too large for the browser's 4 GiB of wasm memory`
      : e instanceof Error ? e.message : String(e);
    reply({ id: req.id, ok: false, error, fatal: trap });
  }
};
