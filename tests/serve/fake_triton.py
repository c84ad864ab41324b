"""A stand-in for tritonserver's HTTP endpoint (KServe v2 + Triton's binary-data extension),
serving ``pill_single`` / ``pill_combo`` with the ensembles' contract over ``OnnxPipeline``.

Only for testing the proxy's Triton backend where no tritonserver runs: readiness, model
config with ``pillsnap_model_version``, infer with IMAGE/TOP_K in and RESULT out, and bad
images as errors whose message starts with ``unsupported:``, ``corrupt:`` or ``too_large:``.
The end-to-end test against the real tritonserver comes with triton_models/.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pillsnap.errors import CorruptImageError, ImageTooLargeError, UnsupportedImageError
from pillsnap.infer.pipeline import OnnxPipeline

MODELS = {"pill_single": "single", "pill_combo": "combo"}
_KINDS = {UnsupportedImageError: "unsupported", CorruptImageError: "corrupt",
          ImageTooLargeError: "too_large"}


def fake_triton(pipe: OnnxPipeline) -> Starlette:
    async def ready(request: Request) -> Response:
        return Response(status_code=200 if request.path_params["model"] in MODELS else 400)

    async def config(request: Request) -> Response:
        name = request.path_params["model"]
        return JSONResponse({"name": name, "platform": "ensemble", "parameters": {
            "pillsnap_model_version": {"string_value": pipe.bundle.model_version}}})

    async def infer(request: Request) -> Response:
        name = request.path_params["model"]
        if name not in MODELS:
            return JSONResponse({"error": f"Request for unknown model: '{name}'"}, 400)
        inputs = _inputs(await request.body(), request.headers)
        try:
            answer = pipe.predict(inputs["IMAGE"].tobytes(), pipeline=MODELS[name],
                                  top_k=int(inputs["TOP_K"][0]))
        except tuple(_KINDS) as exc:
            kind = next(k for cls, k in _KINDS.items() if isinstance(exc, cls))
            return JSONResponse({"error": f"{kind}: {exc}"}, status_code=400)
        result = json.dumps({k: answer[k] for k in ("pills", "reason", "image")}
                            | {"recommend_combo": answer.get("recommend_combo", False)})
        blob = result.encode()
        payload = struct.pack("<I", len(blob)) + blob  # BYTES: 4-byte length, then the bytes
        header = json.dumps({"model_name": name, "outputs": [{
            "name": "RESULT", "datatype": "BYTES", "shape": [1],
            "parameters": {"binary_data_size": len(payload)}}]}).encode()
        return Response(header + payload, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(len(header))})

    return Starlette(routes=[
        Route("/v2/models/{model}/ready", ready),
        Route("/v2/models/{model}/config", config),
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
    ])


def _inputs(body: bytes, headers: Any) -> dict[str, np.ndarray]:
    size = int(headers.get("inference-header-content-length", len(body)))
    request, offset = json.loads(body[:size]), size
    out = {}
    for spec in request["inputs"]:
        nbytes = spec["parameters"]["binary_data_size"]
        dtype = {"UINT8": np.uint8, "INT32": np.int32}[spec["datatype"]]
        out[spec["name"]] = np.frombuffer(body[offset:offset + nbytes], dtype=dtype)
        offset += nbytes
    return out
