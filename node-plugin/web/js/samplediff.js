// samplediff: show each samplediff node's report on the node itself.
// The Python nodes return {"ui": {"samplediff_report": [text]}}; ComfyUI passes that to
// onExecuted, and a read-only multiline text widget displays it (not saved with the workflow).
import { app } from "../../../scripts/app.js";
import { ComfyWidgets } from "../../../scripts/widgets.js";

const KEY = "samplediff_report";

function showReport(node, text) {
  let widget = node.widgets?.find((w) => w.name === KEY);
  if (!widget) {
    widget = ComfyWidgets["STRING"](node, KEY, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false;
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.style.opacity = "0.9";
      widget.inputEl.style.fontFamily = "monospace";
      widget.inputEl.style.fontSize = "11px";
      widget.inputEl.style.whiteSpace = "pre";
    }
  }
  widget.value = text;
  const size = node.computeSize();
  node.setSize([Math.max(node.size[0], Math.min(size[0], 640)), Math.max(node.size[1], size[1])]);
  app.graph.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "samplediff.report",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.category !== "samplediff") return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const lines = message?.[KEY];
      if (lines?.length) showReport(this, lines.join("\n"));
    };
  },
});
