// Charts on a 2-D canvas: the error histogram (decade bins of |a-b|) and the per-step
// divergence curve of traces. Sized for the device's pixel ratio so text stays sharp.

const INK = "#1f2328";
const GRID = "#d0d7de";
const SERIES = ["#cf222e", "#0969da", "#8250df", "#1a7f37"];

function setup(canvas: HTMLCanvasElement, cssWidth: number, cssHeight: number): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssWidth * dpr);
  canvas.height = Math.round(cssHeight * dpr);
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2-D canvas context");
  ctx.scale(dpr, dpr);
  ctx.font = "11px system-ui, sans-serif";
  return ctx;
}

export interface Bin {
  label: string;
  count: number;
}

/** Bars with counts on a log scale (an exact match bin and ten decades differ by millions). */
export function drawHistogram(canvas: HTMLCanvasElement, bins: Bin[]): void {
  const widest = Math.max(...bins.map((b) => Math.max(b.label.length, String(b.count).length)));
  const [W, H] = [Math.max(320, Math.max(46, 7 * widest + 12) * bins.length + 60), 200];
  const ctx = setup(canvas, W, H);
  const [left, bottom, top] = [48, 36, 12];
  const plotH = H - bottom - top;
  const maxLog = Math.log10(Math.max(1, ...bins.map((b) => b.count)) + 1);
  ctx.strokeStyle = GRID;
  ctx.fillStyle = INK;
  for (let d = 0; d <= Math.ceil(maxLog); d++) {
    const y = top + plotH - (plotH * d) / Math.max(1, maxLog);
    if (y < top - 1) break;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(W - 8, y);
    ctx.stroke();
    ctx.fillText(d === 0 ? "1" : `1e${d}`, 8, y + 4);
  }
  const bw = (W - left - 8) / Math.max(1, bins.length);
  bins.forEach((b, i) => {
    const h = b.count > 0 ? (plotH * Math.log10(b.count + 1)) / Math.max(1e-9, maxLog) : 0;
    const x = left + i * bw;
    ctx.fillStyle = i === 0 && b.label === "0" ? "#1a7f37" : "#bc4c00";
    ctx.fillRect(x + 3, top + plotH - h, bw - 6, h);
    ctx.fillStyle = INK;
    ctx.save();
    ctx.translate(x + bw / 2, H - bottom + 12);
    ctx.textAlign = "center";
    ctx.fillText(b.label, 0, 0);
    ctx.fillText(String(b.count), 0, 14);
    ctx.restore();
  });
}

export interface Series {
  label: string;
  points: { step: number; value: number | null }[];
}

/** Lines over the steps, log y (divergence grows by decades). Exact zeros (bit-identical
 *  steps) sit on a "0" line under the plot. */
export function drawCurve(canvas: HTMLCanvasElement, series: Series[], yLabel: string): void {
  const [W, H] = [640, 260];
  const ctx = setup(canvas, W, H);
  const [left, right, top, bottom] = [56, 12, 12, 56];
  const values = series.flatMap((s) => s.points.map((p) => p.value)).filter((v): v is number => v !== null && v > 0);
  const steps = series.flatMap((s) => s.points.map((p) => p.step));
  if (!steps.length) return;
  const [lo, hi] = values.length ? [Math.floor(Math.log10(Math.min(...values))), Math.ceil(Math.log10(Math.max(...values)))] : [-8, 0];
  const [s0, s1] = [Math.min(...steps), Math.max(...steps)];
  const zeroY = H - bottom;
  const plotBottom = zeroY - 14;
  const x = (s: number) => left + ((s - s0) / Math.max(1, s1 - s0)) * (W - left - right);
  const y = (v: number) => (v <= 0 ? zeroY : top + (1 - (Math.log10(v) - lo) / Math.max(1, hi - lo)) * (plotBottom - top));
  ctx.strokeStyle = GRID;
  ctx.fillStyle = INK;
  for (let d = lo; d <= hi; d++) {
    ctx.beginPath();
    ctx.moveTo(left, y(10 ** d));
    ctx.lineTo(W - right, y(10 ** d));
    ctx.stroke();
    ctx.fillText(`1e${d}`, 8, y(10 ** d) + 4);
  }
  ctx.setLineDash([2, 3]);
  ctx.beginPath();
  ctx.moveTo(left, zeroY);
  ctx.lineTo(W - right, zeroY);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillText("0", 8, zeroY + 4);
  for (let s = s0; s <= s1; s++) ctx.fillText(String(s), x(s) - 3, zeroY + 16);
  ctx.fillText(`step     y: ${yLabel}`, left, zeroY + 30);
  series.forEach((ser, i) => {
    ctx.strokeStyle = ctx.fillStyle = SERIES[i % SERIES.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    for (const p of ser.points) {
      if (p.value === null) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(x(p.step), y(p.value));
      else ctx.moveTo(x(p.step), y(p.value));
      pen = true;
    }
    ctx.stroke();
    for (const p of ser.points) if (p.value !== null) ctx.fillRect(x(p.step) - 3, y(p.value) - 3, 6, 6);
    // Legend under the axis, one entry per series.
    const lx = left + i * 190;
    ctx.fillRect(lx, H - 12, 14, 3);
    ctx.fillText(ser.label, lx + 20, H - 7);
  });
  ctx.lineWidth = 1;
}

/** Histogram bins of a report: exact matches, then decades. */
export function histogramBins(h: { zero: number; bins: { lo: number; hi: number; count: number }[] }): Bin[] {
  return [{ label: "0", count: h.zero }, ...h.bins.map((b) => ({ label: `1e${Math.round(Math.log10(b.lo))}`, count: b.count }))];
}
