// samplediff in the browser: the embeddable API.
//
//   import { Samplediff } from "./dist/samplediff.js";
//   const sd = await Samplediff.create();               // starts the worker, WebGPU if present
//   const report = await sd.compare(fileA, fileB);      // == `samplediff compare --json A B`
//
// Everything runs in a worker on this machine: files are never uploaded. The compare report is
// computed by the same Rust core as the CLI (burn's CPU backend, float64), so it is the CLI's
// JSON bit for bit; WebGPU, when the browser has it, computes the heatmaps. Every method
// returns a promise that rejects with an `Error` whose message says what is wrong (a bad file
// names the file and the problem).

import type { Request, RequestBody, Response } from "./protocol.js";
import type {
  CompareOptions, CompareReport, Explanation, FileInput, FileSummary, HeatmapData, LatentFormatInfo, LatentSliceData,
  PreviewData, Progress, TraceDiff, WebGpuStatus,
} from "./types.js";

export type * from "./types.js";

export interface CreateOptions {
  /** Try burn's WebGPU backend for heatmaps (default true; falls back to the CPU silently). */
  webgpu?: boolean;
  /** URL of `worker.js` (default: beside this module). */
  workerUrl?: string | URL;
}

export interface EngineInfo {
  version: string;
  webgpu: WebGpuStatus;
  formats: LatentFormatInfo[];
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; onProgress?: (p: Progress) => void };

/** Read a file's bytes, reporting progress (large files take a while). */
export async function readBytes(input: FileInput, onProgress?: (p: Progress) => void): Promise<ArrayBuffer> {
  const name = input.name;
  const data = input instanceof Blob ? input : input.data;
  if (data instanceof ArrayBuffer) return data.slice(0);
  if (data instanceof Uint8Array) return data.slice().buffer as ArrayBuffer;
  const total = data.size;
  const out = new Uint8Array(total);
  const reader = data.stream().getReader();
  let at = 0;
  onProgress?.({ stage: "reading", file: name, fraction: 0 });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (at + value.length > total) throw new Error(`${name}: the file grew while it was read`);
    out.set(value, at);
    at += value.length;
    onProgress?.({ stage: "reading", file: name, fraction: total ? at / total : 1 });
  }
  return out.buffer;
}

export class Samplediff {
  private worker!: Worker;
  private nextId = 1;
  private nextSession = 1;
  private pending = new Map<number, Pending>();
  private generation = 0;
  /** Version, WebGPU status and latent formats of the running engine. */
  info!: EngineInfo;

  private constructor(private readonly options: CreateOptions) {}

  /** Start the engine (a worker with the wasm module) and WebGPU where available. */
  static async create(options: CreateOptions = {}): Promise<Samplediff> {
    const sd = new Samplediff(options);
    await sd.start();
    return sd;
  }

  private async start(): Promise<void> {
    const url = this.options.workerUrl ?? new URL("./worker.js", import.meta.url);
    this.worker = new Worker(url, { type: "module" });
    this.generation++;
    this.worker.onmessage = (e: MessageEvent<Response>) => this.receive(e.data);
    this.worker.onerror = (e) => this.failAll(`the samplediff worker failed to start: ${e.message || "unknown error"}`);
    this.info = (await this.call({ op: "init", webgpu: this.options.webgpu ?? true })) as EngineInfo;
  }

  private receive(msg: Response): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if ("progress" in msg) {
      p.onProgress?.(msg.progress as Progress);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.ok) {
      p.resolve(msg.result);
      return;
    }
    p.reject(new Error(msg.error));
    if (msg.fatal) this.restart(msg.error);
  }

  private failAll(message: string): void {
    for (const p of this.pending.values()) p.reject(new Error(message));
    this.pending.clear();
  }

  /** A trapped wasm instance may hold broken state: replace the worker (open comparisons end). */
  private restart(reason: string): void {
    this.worker.terminate();
    this.failAll(`the samplediff engine restarted after an error: ${reason}`);
    void this.start().catch(() => undefined);
  }

  private call(req: RequestBody, transfer: Transferable[] = [], onProgress?: (p: Progress) => void): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...req, id } as Request, transfer);
    });
  }

  /** Describe a file: its format, tensors and metadata. */
  async inspect(file: FileInput, selector?: string, onProgress?: (p: Progress) => void): Promise<FileSummary> {
    const bytes = await readBytes(file, onProgress);
    return (await this.call({ op: "inspect", name: file.name, bytes, selector }, [bytes], onProgress)) as FileSummary;
  }

  /** Read two files (B is the reference) for a comparison that draws pictures too. */
  async open(a: FileInput, b: FileInput, onProgress?: (p: Progress) => void, selectors: { a?: string; b?: string } = {}): Promise<Comparison> {
    const bytesA = await readBytes(a, onProgress);
    const bytesB = await readBytes(b, onProgress);
    const session = this.nextSession++;
    const files = (await this.call(
      { op: "open", session, nameA: a.name, bytesA, nameB: b.name, bytesB, selectorA: selectors.a, selectorB: selectors.b },
      [bytesA, bytesB],
      onProgress,
    )) as { a: FileSummary; b: FileSummary };
    return new Comparison(this, session, this.generation, files.a, files.b);
  }

  /** Compare two files: the report of `samplediff compare --json A B`. */
  async compare(a: FileInput, b: FileInput, options?: CompareOptions, onProgress?: (p: Progress) => void): Promise<CompareReport> {
    const c = await this.open(a, b, onProgress);
    try {
      return await c.report(options, onProgress);
    } finally {
      void c.close();
    }
  }

  /** @internal */
  request(req: RequestBody, generation: number, onProgress?: (p: Progress) => void): Promise<unknown> {
    if (generation !== this.generation) {
      return Promise.reject(new Error("this comparison ended when the engine restarted after an error; open the files again"));
    }
    return this.call(req, [], onProgress);
  }

  /** Bytes of WebAssembly memory the engine holds (it grows to the peak of any call, never
   *  shrinks; a wasm32 instance can address at most 4 GiB). */
  async memoryBytes(): Promise<number> {
    return (await this.call({ op: "memory" })) as number;
  }

  /** @internal Panic inside the wasm module on purpose (tests of the panic boundary). */
  selfTestPanic(): Promise<unknown> {
    return this.call({ op: "selfTestPanic" });
  }

  /** Stop the worker. */
  dispose(): void {
    this.worker.terminate();
    this.failAll("the samplediff engine was disposed");
  }
}

/** Two files held by the engine: the report, heatmaps and previews without reading them again. */
export class Comparison {
  constructor(
    private readonly engine: Samplediff,
    private readonly session: number,
    private readonly generation: number,
    /** What each file holds. */
    readonly fileA: FileSummary,
    readonly fileB: FileSummary,
  ) {}

  /** The report's JSON text, exactly as `samplediff compare --json` prints it. */
  async reportJson(options?: CompareOptions, onProgress?: (p: Progress) => void): Promise<string> {
    return (await this.engine.request({ op: "report", session: this.session, options }, this.generation, onProgress)) as string;
  }

  /** The report (the parsed JSON). */
  async report(options?: CompareOptions, onProgress?: (p: Progress) => void): Promise<CompareReport> {
    return JSON.parse(await this.reportJson(options, onProgress)) as CompareReport;
  }

  /** Per-channel |a-b| maps of one tensor pair (WebGPU when available, else the CPU). */
  heatmaps(nameA: string, nameB: string, options: { webgpu?: boolean } = {}): Promise<HeatmapData> {
    const gpu = (options.webgpu ?? true) && this.engine.info.webgpu.available;
    return this.engine.request({ op: "heatmaps", session: this.session, nameA, nameB, gpu }, this.generation) as Promise<HeatmapData>;
  }

  /** Batch item 0, frame 0 of a latent: what a preview shows (for drawing it on the GPU). */
  latentSlice(side: "a" | "b", name: string): Promise<LatentSliceData> {
    return this.engine.request({ op: "latentSlice", session: this.session, side, name }, this.generation) as Promise<LatentSliceData>;
  }

  /** ComfyUI's latent-to-RGB preview of a tensor; `format` by name, or automatic. */
  preview(side: "a" | "b", name: string, format?: string): Promise<PreviewData> {
    return this.engine.request({ op: "preview", session: this.session, side, name, format }, this.generation) as Promise<PreviewData>;
  }

  /** For two recorded runs (traces with model calls): `samplediff diff --json` and
   *  `samplediff explain --json`, parsed; `null` when either file is not a run. */
  async trace(onProgress?: (p: Progress) => void): Promise<{ diff: TraceDiff; explain: Explanation } | null> {
    const r = (await this.engine.request({ op: "trace", session: this.session }, this.generation, onProgress)) as { diff: string; explain: string } | null;
    return r && { diff: JSON.parse(r.diff) as TraceDiff, explain: JSON.parse(r.explain) as Explanation };
  }

  /** Free the files' memory in the engine. */
  async close(): Promise<void> {
    await this.engine.request({ op: "close", session: this.session }, this.generation).catch(() => undefined);
  }
}
