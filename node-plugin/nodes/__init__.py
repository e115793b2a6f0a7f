"""The node classes and their registration maps."""

from .tensor_diff import TensorDiff
from .trace_ksampler import TraceKSampler
from .traces import CompareTraces, LoadTrace

NODE_CLASS_MAPPINGS = {
    "SampleDiffTensorDiff": TensorDiff,
    "SampleDiffTraceKSampler": TraceKSampler,
    "SampleDiffLoadTrace": LoadTrace,
    "SampleDiffCompareTraces": CompareTraces,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "SampleDiffTensorDiff": "Tensor Diff (samplediff)",
    "SampleDiffTraceKSampler": "Trace KSampler (samplediff)",
    "SampleDiffLoadTrace": "Load Trace (samplediff)",
    "SampleDiffCompareTraces": "Compare Traces (samplediff)",
}
