"""The config of every model in the repository, as text (see docs/triton.md for the graph).

    onnx_gpu_config("classifier", inputs, outputs, settings)   # config.pbtxt
    onnx_cpu_config("classifier", inputs, outputs, settings)   # configs/cpu.pbtxt
    ensemble_config("pill_combo", steps, model_version="...")

Every config lists every input and output because the server runs with
``--disable-auto-complete-config``. Python steps of an ensemble have ``max_batch_size: 0``
(each request is one photo; crop counts vary, so they travel as a leading -1 dim); the two
ONNX models batch, and ensembles hand them a leading 1 as the batch dim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pillsnap.export.triton.pbtxt import (
    Tensor,
    dims,
    header,
    instances,
    io,
    join,
    parameters,
    quoted,
)
from pillsnap.infer import triton_contract as contract

# the serving contract (pillsnap.infer.triton_contract): what pill_single and pill_combo expose
IMAGE = Tensor(contract.INPUT_IMAGE, "TYPE_UINT8", (-1,))
TOP_K = Tensor(contract.INPUT_TOP_K, "TYPE_INT32", (1,))
RESULT = Tensor(contract.OUTPUT_RESULT, "TYPE_STRING", (1,))


@dataclass(frozen=True)
class OnnxSettings:
    """What both configs of one ONNX model share."""

    max_batch_size: int
    max_queue_delay_us: int
    instances: int
    warmup: bool
    tensorrt_fp16: bool
    cpu_threads: int


@dataclass(frozen=True)
class Step:
    """One ensemble step: ``model`` with its tensors mapped to ensemble tensor names."""

    model: str
    inputs: dict[str, str]
    outputs: dict[str, str]


def onnx_gpu_config(name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                    s: OnnxSettings) -> str:
    """``config.pbtxt``: ONNX Runtime on the GPU, dynamic batching, warm-up, optional TRT."""
    return join(header(name, "onnxruntime", s.max_batch_size), io("input", inputs),
                io("output", outputs), instances(s.instances, "KIND_GPU"),
                _batching(s), _warmup(inputs) if s.warmup else "",
                _tensorrt() if s.tensorrt_fp16 else "")


def onnx_cpu_config(name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                    s: OnnxSettings) -> str:
    """``configs/cpu.pbtxt``: the same model and I/O, run by ONNX Runtime on the CPU from a
    python model (the bundled tritonserver has only the python backend)."""
    return join(header(name, "python", s.max_batch_size), io("input", inputs),
                io("output", outputs), instances(s.instances, "KIND_CPU"), _batching(s),
                parameters({"onnx_threads": str(s.cpu_threads)}))


def python_config(name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], *,
                  count: int) -> str:
    """A python step of the ensembles: one photo per request, on the CPU."""
    return join(header(name, "python", 0), io("input", inputs), io("output", outputs),
                instances(count, "KIND_CPU"))


def ensemble_config(name: str, steps: Sequence[Step], *, model_version: str) -> str:
    rows = ",\n".join(_step(s) for s in steps)
    return join(header(name, "ensemble", 0), io("input", [IMAGE, TOP_K]),
                io("output", [RESULT]), f"ensemble_scheduling {{ step [\n{rows}\n] }}",
                parameters({contract.VERSION_PARAMETER: model_version}))


def _step(step: Step) -> str:
    maps = [f"input_map {{ key: {quoted(k)} value: {quoted(v)} }}"
            for k, v in step.inputs.items()]
    maps += [f"output_map {{ key: {quoted(k)} value: {quoted(v)} }}"
             for k, v in step.outputs.items()]
    return f"  {{ model_name: {quoted(step.model)} model_version: -1\n    " + \
        "\n    ".join(maps) + " }"


def _batching(s: OnnxSettings) -> str:
    return f"dynamic_batching {{ max_queue_delay_microseconds: {s.max_queue_delay_us} }}"


def _warmup(inputs: Sequence[Tensor]) -> str:
    # zeros are enough: warm-up exists to build kernels / TensorRT engines before traffic
    feeds = " ".join(f"inputs {{ key: {quoted(t.name)} value {{ data_type: {t.dtype} "
                     f"dims: {dims(t.dims)} zero_data: true }} }}" for t in inputs)
    return f'model_warmup [ {{ name: "zeros" batch_size: 1 {feeds} }} ]'


def _tensorrt() -> str:
    # the engine cache keeps restarts from rebuilding engines for minutes
    return ('optimization { execution_accelerators { gpu_execution_accelerator: [ {\n'
            '  name: "tensorrt"\n'
            '  parameters { key: "precision_mode" value: "FP16" }\n'
            '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            '  parameters { key: "trt_engine_cache_enable" value: "true" }\n'
            '  parameters { key: "trt_engine_cache_path" value: "/tmp/pillsnap_trt" }\n'
            '} ] } }')
