// Drawing without a GPU: the same heatmap colours on a 2-D canvas, and previews from the
// core's CPU preview (pixels computed in wasm).

import { BAD_RGB, LUT, position, type Scale } from "./colors.js";
import type { HeatmapData, PreviewData } from "../lib/types.js";

function put(canvas: HTMLCanvasElement, width: number, height: number, rgba: Uint8ClampedArray): void {
  // The canvas holds the data's own pixels; CSS scales it up (image-rendering: pixelated).
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2-D canvas context");
  ctx.putImageData(new ImageData(rgba as Uint8ClampedArray<ArrayBuffer>, width, height), 0, 0);
}

export function drawHeatmap(canvas: HTMLCanvasElement, maps: HeatmapData, channel: number, scale: Scale): void {
  const n = maps.width * maps.height;
  const rgba = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    const k = channel * n + i;
    const [r, g, b] = maps.bad[k] ? BAD_RGB : LUT[Math.min(255, Math.round(position(maps.values[k], scale) * 255))];
    rgba.set([r, g, b, 255], i * 4);
  }
  put(canvas, maps.width, maps.height, rgba);
}

export function drawPreview(canvas: HTMLCanvasElement, p: PreviewData): void {
  put(canvas, p.width, p.height, p.rgba);
}

/** The colour bar: the scale left to right. */
export function drawColourBar(canvas: HTMLCanvasElement): void {
  const rgba = new Uint8ClampedArray(256 * 4);
  LUT.forEach(([r, g, b], i) => rgba.set([r, g, b, 255], i * 4));
  put(canvas, 256, 1, rgba);
}
