"""Triton python model that runs an ONNX model with ONNX Runtime on the CPU.

Written as ``classifier/<version>/model.py`` and ``detector/<version>/model.py`` by
``python -m pillsnap.export --triton``; used by their ``configs/cpu.pbtxt``
(``tritonserver --model-config-name=cpu``), because the tritonserver bundled with the
nvidia-pytriton wheel has no onnxruntime backend. Same name, I/O and batching as the GPU
config, which runs ``model.onnx`` in this folder with the onnxruntime backend instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        threads = config.get("parameters", {}).get("onnx_threads", {}).get("string_value", "0")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        # no busy-waiting after a run: the detector's and the classifier's servers share the
        # cores, and one's spinning threads slow the other (as in pillsnap.infer.bundle)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = HERE / "model.onnx"
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors; say which file
            raise pb_utils.TritonModelException(
                f"cannot load ONNX model {path}: {exc}") from None

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                     for name in self.inputs}
            try:
                values = self.session.run(self.outputs, feeds)
            except Exception as exc:  # a bad request fails alone, the model stays up
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"onnxruntime: {exc}")))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values, strict=True)]))
        return responses
