// Messages between a page and the worker that hosts the wasm module.

export type Request =
  | { id: number; op: "init"; webgpu: boolean }
  | { id: number; op: "inspect"; name: string; bytes: ArrayBuffer; selector?: string }
  | { id: number; op: "open"; session: number; nameA: string; bytesA: ArrayBuffer; nameB: string; bytesB: ArrayBuffer; selectorA?: string; selectorB?: string }
  | { id: number; op: "report"; session: number; options?: unknown }
  | { id: number; op: "heatmaps"; session: number; nameA: string; nameB: string; gpu: boolean }
  | { id: number; op: "latentSlice"; session: number; side: "a" | "b"; name: string }
  | { id: number; op: "preview"; session: number; side: "a" | "b"; name: string; format?: string }
  | { id: number; op: "trace"; session: number }
  | { id: number; op: "close"; session: number }
  | { id: number; op: "selfTestPanic" }
  | { id: number; op: "memory" };

export type Response =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string; fatal: boolean }
  | { id: number; progress: { stage: string; file?: string } };

/** A request before it gets its id (Omit applied to each member of the union). */
export type RequestBody = Request extends infer R ? (R extends unknown ? Omit<R, "id"> : never) : never;
