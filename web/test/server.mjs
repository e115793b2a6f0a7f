// A tiny static file server for web/ on 127.0.0.1 (tests and the benchmark; `node test/server.mjs`
// serves the viewer by hand). Only GET/HEAD of files under the root; no directory listings.

import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".map": "application/json",
  ".wgsl": "text/plain; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

/** Serve `root` on 127.0.0.1; resolves to { url, close, requests } once listening. */
export async function serve(root = resolve(fileURLToPath(import.meta.url), "../.."), port = 0) {
  const requests = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url);
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const file = join(root, path.endsWith("/") ? `${path}index.html` : path);
    if ((req.method !== "GET" && req.method !== "HEAD") || !(file === root || file.startsWith(root + sep))) {
      res.writeHead(403).end();
      return;
    }
    try {
      const s = await stat(file);
      if (!s.isFile()) throw new Error("not a file");
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": s.size, "cache-control": "no-store" });
      if (req.method === "HEAD") res.end();
      else createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${server.address().port}/`;
  return { url, requests, close: () => new Promise((ok) => server.close(ok)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await serve(undefined, Number(process.env.PORT ?? 8080));
  console.log(`samplediff viewer on ${url}`);
}
