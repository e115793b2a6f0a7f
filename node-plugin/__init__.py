"""samplediff nodes for ComfyUI (category "samplediff").

* Tensor Diff: two LATENTs, IMAGEs or CONDITIONINGs -> the compare report text, a heatmap IMAGE
  of |a-b| per channel, and a pass/fail BOOLEAN.
* Trace KSampler: a drop-in KSampler whose chain runs in the samplediff core with this ComfyUI's
  model as the denoiser, recording a trace under the output folder (bit-identical to KSampler on
  the CPU in float32).
* Load Trace / Compare Traces: a trace's summary, and the explanation of where two traces part.

Analysis never breaks a workflow: a failure is reported in the node's text, outputs still flow.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# The frontend extension that shows each node's report on the node (web/js/samplediff.js).
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
