// The heatmaps' colour scale: one 256-entry table used by the WGSL shader, the canvas
// fallback and the colour bar, so every path draws the same colours. Anchors approximate
// matplotlib's "inferno" (dark = no error, bright = large error; readable in grey too).

const ANCHORS: [number, number, number][] = [
  [0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
  [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164],
];

/** Colour of a pixel where one side is non-finite and the other does not match it. */
export const BAD_RGB: [number, number, number] = [255, 0, 255];

/** 256 RGB colours, 0 -> no error. */
export const LUT: [number, number, number][] = Array.from({ length: 256 }, (_, i) => {
  const t = (i / 255) * (ANCHORS.length - 1);
  const k = Math.min(Math.floor(t), ANCHORS.length - 2);
  const f = t - k;
  const [a, b] = [ANCHORS[k], ANCHORS[k + 1]];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as [number, number, number];
});

/** The table as vec4<f32> rows for the shader. */
export function lutFloats(): Float32Array {
  const out = new Float32Array(256 * 4);
  LUT.forEach(([r, g, b], i) => out.set([r / 255, g / 255, b / 255, 1], i * 4));
  return out;
}

/** How values map onto the scale: linear on [0, max], or log10 on [min, max]. */
export interface Scale {
  log: boolean;
  min: number;
  max: number;
}

/** Position of `v` on the scale in [0, 1] (the shader's `scaled`). */
export function position(v: number, s: Scale): number {
  if (!(s.max > 0)) return 0;
  if (s.log) {
    if (v <= s.min) return 0;
    return Math.min(1, Math.max(0, Math.log(v / s.min) / Math.log(s.max / s.min)));
  }
  return Math.min(1, Math.max(0, v / s.max));
}

/** The scale for maps whose largest value is `max`: log spans four decades below it. */
export function scaleFor(max: number, log: boolean): Scale {
  return { log, max, min: log ? max * 1e-4 : 0 };
}
