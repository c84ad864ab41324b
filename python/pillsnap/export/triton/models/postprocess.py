"""Triton python model ``postprocess``: logits and features -> top-k K-codes, calibrated
confidence, the open-set verdict, drug metadata, as one UTF-8 JSON string (the ensembles'
RESULT).

Written as ``postprocess/<version>/model.py`` by ``python -m pillsnap.export --triton``,
next to the contract copies (``pillsnap_decide.py`` decides, as in the in-process
pipeline), the export's ``recipe.json`` (classes, temperature, open-set rule),
``drugs.json`` and ``gallery.npz`` (class statistics and enrolled drugs). The gallery is
read again whenever ``python -m pillsnap.enroll --triton-repo`` replaces the file (a stat
per request), so an enrolled drug is answered from the next request on. RESULT is
``{"pills": [...], "reason": str|null, "recommend_combo": bool, "image": {...}}`` with pills
exactly as OnnxPipeline.predict returns them (``ops.answer``).
Inputs: LOGITS, FEATURES, BOXES, SCORES, DECISION (from crop_classify), TOP_K int32 [1].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the ops copy lives next to this file, not in a package
import pillsnap_decide as decide  # noqa: E402
import pillsnap_ops as ops  # noqa: E402
from pillsnap_gallery import GALLERY_FILE, GalleryFile  # noqa: E402
from pillsnap_recipe import Recipe  # noqa: E402


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.recipe = Recipe.from_json((HERE / "recipe.json").read_text(encoding="utf-8"))
        self.drugs = json.loads((HERE / "drugs.json").read_text(encoding="utf-8"))
        path = HERE / GALLERY_FILE
        self.gallery = GalleryFile(path) if path.is_file() else None

    def execute(self, requests: list) -> list:
        return [self._one(request) for request in requests]

    def _one(self, request: object) -> object:
        def tensor(name: str) -> np.ndarray:
            return pb_utils.get_input_tensor_by_name(request, name).as_numpy()

        logits = tensor("LOGITS")
        decision = json.loads(tensor("DECISION").reshape(-1)[0])
        boxed = decision["boxed"]
        selection = ops.Selection(None, tensor("BOXES") if boxed else None,
                                  tensor("SCORES") if boxed else None,
                                  decision["recommend_combo"], decision["reason"])
        k = int(tensor("TOP_K").reshape(-1)[0])
        features = tensor("FEATURES")
        found = decide.identify(
            logits, features if features.shape[-1] else None, recipe=self.recipe,
            gallery=self.gallery.current() if self.gallery is not None else None,
            drugs=self.drugs, k=k)
        image = decision["image"]
        result = ops.answer(found, selection, image["width"], image["height"])
        text = json.dumps(result, ensure_ascii=False).encode("utf-8")
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("RESULT", np.array([text], dtype=np.object_))])
