"""Triton python model ``preprocess``: encoded image bytes -> the photo, the detector input.

Written into the repository as ``preprocess/<version>/model.py`` by ``python -m
pillsnap.export --triton``, next to the contract copies (``pillsnap_ops.py``,
``pillsnap_photo.py``, ``pillsnap_recipe.py``, ...), the export's ``recipe.json`` (the
detector's letterbox size) and ``pillsnap.json`` (the upload limits). Inputs: IMAGE uint8
[-1]. Outputs: PHOTO uint8 [h, w, 3]; with a detector also DET_IMAGES float32 [1, 3, s, s]
(letterboxed) and PLACEMENT float64 [6]. The photo is opened as the in-process pipeline
opens it (``pillsnap_photo.open_photo``): where PillSnap's Rust engine is installed it
decodes only the letterbox's DCT-scaled pixels and PHOTO is empty ([0, 0, 3]: crop_classify
cuts its crops from IMAGE itself); on the Pillow path (the NGC container) PHOTO is the
decoded photo. Bad uploads are errors whose message starts with ``unsupported:``,
``corrupt:`` or ``too_large:`` (code INVALID_ARG, HTTP 400; the ensemble prefixes "in
ensemble '...', ").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the ops copy lives next to this file, not in a package
import pillsnap_ops as ops  # noqa: E402
import pillsnap_photo  # noqa: E402
from pillsnap_recipe import Recipe  # noqa: E402

NOT_DECODED = np.zeros((0, 0, 3), dtype=np.uint8)  # PHOTO when crop_classify reads IMAGE


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.settings = json.loads((HERE / "pillsnap.json").read_text(encoding="utf-8"))
        recipe = Recipe.from_json((HERE / "recipe.json").read_text(encoding="utf-8"))
        self.detector_size = recipe.detector.size if recipe.detector is not None else None

    def execute(self, requests: list) -> list:
        return [self._one(request) for request in requests]

    def _one(self, request: object) -> object:
        data = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        try:
            return pb_utils.InferenceResponse(output_tensors=self._outputs(
                np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)))
        except ops.ImageInputError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(
                f"{exc.kind}: {exc}", pb_utils.TritonError.INVALID_ARG))

    def _outputs(self, data: np.ndarray) -> list:
        limit = self.settings["max_bytes"]
        if limit is not None and data.size > limit:
            raise ops.ImageInputError("too_large", f"upload is {data.size} bytes; the limit is "
                                      f"{limit}")
        photo = pillsnap_photo.open_photo(data.tobytes(), max_pixels=self.settings["max_pixels"])
        outputs = []
        if self.detector_size is not None:
            tensor, placement = photo.letterbox(self.detector_size)
            outputs += [pb_utils.Tensor("DET_IMAGES", tensor[None]),
                        pb_utils.Tensor("PLACEMENT", placement.as_array())]
        # Pillow decoded the whole photo: hand it on rather than decode it twice
        image = photo.array() if photo.engine == "pillow" else NOT_DECODED
        return [pb_utils.Tensor("PHOTO", image), *outputs]
