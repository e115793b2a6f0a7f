// The browser side of bench.mjs: the embeddable API, timed from the files to the report.
import { Samplediff } from "../dist/samplediff.js";

const sd = await Samplediff.create({ webgpu: false });

/** Read both files, compare, parse the report; milliseconds per phase. */
window.runBench = async () => {
  const [a, b] = [document.getElementById("a").files[0], document.getElementById("b").files[0]];
  const t0 = performance.now();
  const c = await sd.open(a, b);
  const t1 = performance.now();
  const report = await c.report();
  const t2 = performance.now();
  await c.close();
  const memory = await sd.memoryBytes();
  return { open_ms: t1 - t0, report_ms: t2 - t1, total_ms: t2 - t0, memory, verdict: report.verdict, max_abs: report.tensors[0].max_abs };
};
window.benchReady = true;
