// Builds the viewer and the embeddable module into web/dist with esbuild:
//   dist/viewer.js      the page's script (index.html)
//   dist/samplediff.js  the embeddable API (see docs/web.md)
//   dist/worker.js      the worker hosting the wasm module from web/pkg (built by build-wasm.sh)
// WGSL shaders from ../shaders are bundled as text. Type-checking is `npm run typecheck`.

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
console.log("web/dist built");
