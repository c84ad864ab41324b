"""Triton python model ``postprocess``: logits -> top-k K-codes, calibrated confidence, drug
metadata, as one UTF-8 JSON string (the ensembles' RESULT).

Written as ``postprocess/<version>/model.py`` by ``python -m pillsnap.export --triton``,
next to ``pillsnap_ops.py`` (a copy of pillsnap.contract.ops), ``classes.json``, ``drugs.json``
and ``pillsnap.json`` (the calibration temperature and open-set threshold). RESULT is
``{"pills": [...], "reason": str|null, "recommend_combo": bool, "image": {...}}`` with pills
exactly as OnnxPipeline.predict returns them (``ops.answer``).
Inputs: LOGITS, KNOWN, BOXES, SCORES, DECISION (from crop_classify), TOP_K int32 [1].
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


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.settings = json.loads((HERE / "pillsnap.json").read_text(encoding="utf-8"))
        self.k_codes = json.loads((HERE / "classes.json").read_text(encoding="utf-8"))["k_codes"]
        self.drugs = json.loads((HERE / "drugs.json").read_text(encoding="utf-8"))
        self.open_set = ops.OpenSet.from_metadata(self.settings.get("open_set"))

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
        found = ops.identify(logits, k=k, temperature=self.settings["temperature"],
                             k_codes=self.k_codes, drugs=self.drugs, open_set=self.open_set,
                             graph=tensor("KNOWN"))
        image = decision["image"]
        result = ops.answer(found, selection, image["width"], image["height"])
        text = json.dumps(result, ensure_ascii=False).encode("utf-8")
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("RESULT", np.array([text], dtype=np.object_))])
