// Builds the viewer and the embeddable module into web/dist with esbuild:
//   dist/viewer.js      the page's script (index.html)
//   dist/samplediff.js  the embeddable API (see docs/web.md)
//   dist/worker.js      the worker hosting the wasm module from web/pkg (built by build-wasm.sh)
//   dist/samplediff.d.ts (+ types.d.ts, protocol.d.ts)  its TypeScript types (tsc)
// WGSL shaders from ../shaders are bundled as text. Type-checking is `npm run typecheck`.

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const pkg = {
  name: "samplediff-wasm-pkg",
  setup(b) {
    // The wasm glue stays a separate file: dist/*.js import it from ../pkg at run time.
    b.onResolve({ filter: /^samplediff-wasm-pkg$/ }, () => ({ path: "../pkg/samplediff_wasm.js", external: true }));
  },
};

await build({
  entryPoints: { viewer: "src/viewer/main.ts", samplediff: "src/lib/samplediff.ts", worker: "src/lib/worker.ts" },
  outdir: "dist",
  bundle: true,
  format: "esm",
  target: "es2022",
  sourcemap: true,
  loader: { ".wgsl": "text" },
  plugins: [pkg],
  logLevel: "warning",
});
// Declarations of the embeddable API; the wasm glue's types are the ones wasm-bindgen wrote.
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.lib.json"], { stdio: "inherit" });
for (const f of readdirSync("dist").filter((f) => f.endsWith(".d.ts"))) {
  const path = `dist/${f}`;
  writeFileSync(path, readFileSync(path, "utf8").replaceAll('"samplediff-wasm-pkg"', '"../pkg/samplediff_wasm.js"'));
}
console.log("web/dist built");
