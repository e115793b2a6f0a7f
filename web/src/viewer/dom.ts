// Tiny DOM helpers: the viewer builds its few elements by hand, no framework needed.

type Attrs = Record<string, string | number | boolean | undefined>;

/** `el("td", { "data-metric": "max_abs" }, "0.5")` */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") e.className = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  e.append(...children);
  return e;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

/** A number in 4 significant digits, plain when moderate, scientific otherwise (as the CLI). */
export function num(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return "0";
  if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) return v.toFixed(Math.min(6, Math.max(0, 3 - Math.floor(Math.log10(a)))));
  return v.toExponential(3);
}

export function shape(s: number[] | null): string {
  return s ? `[${s.join(", ")}]` : "–";
}
