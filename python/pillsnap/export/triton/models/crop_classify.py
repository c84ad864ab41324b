"""Triton python model ``crop_classify`` (BLS): detections -> pill crops -> ``classifier``.

Written as ``crop_classify/<version>/model.py`` (pipeline combo: every box) and
``crop_classify_single/<version>/model.py`` (single: the best box, else the whole photo) by
``python -m pillsnap.export --triton``; ``pillsnap.json`` says which, ``ops.select_pills``
(the copy of pillsnap.contract.ops next to this file) decides what is classified, exactly as
the in-process OnnxPipeline, with the crop geometry and the detector's thresholds of the
export's ``recipe.json``. Crops go to the ``classifier`` model in chunks of at most its
max_batch_size; 0 crops make no call.
Inputs: IMAGE uint8 [-1] (the upload) and PHOTO uint8 [h, w, 3] (preprocess's decoded photo
on the Pillow path; empty where the Rust engine is installed: the crops are then decoded
from IMAGE, each from its own window, by ``pillsnap_photo``, the copy of
pillsnap.contract.photo); with a detector DETECTIONS float32 [1, 4 + classes, anchors] and
PLACEMENT float64 [6]. Outputs: LOGITS float32 [n, classes], FEATURES float32 [n, d] (the
classifier's pooled features, which postprocess scores against the gallery; [n, 0] for a
classifier without them), BOXES float32 [n|0, 4],
SCORES float32 [n|0], DECISION string [1] (JSON: reason, recommend_combo, image, boxed).
A bad upload that only the crops' decode finds (no detector, so preprocess read the header
alone) is an INVALID_ARG error ``<kind>: <message>``, as preprocess answers.
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


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        self.settings = json.loads((HERE / "pillsnap.json").read_text(encoding="utf-8"))
        self.recipe = Recipe.from_json((HERE / "recipe.json").read_text(encoding="utf-8"))

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._one(request)))
            except ops.ImageInputError as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"{exc.kind}: {exc}", pb_utils.TritonError.INVALID_ARG)))
            except pb_utils.TritonModelException as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _photo(self, request: object) -> pillsnap_photo.Photo:
        decoded = pb_utils.get_input_tensor_by_name(request, "PHOTO").as_numpy()
        if decoded.size:
            return pillsnap_photo.PillowPhoto(decoded)
        data = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
        return pillsnap_photo.open_photo(np.ascontiguousarray(data, dtype=np.uint8).tobytes(),
                                         max_pixels=self.settings["max_pixels"])

    def _one(self, request: object) -> list:
        photo = self._photo(request)
        width, height = photo.width, photo.height
        boxes, scores = self._detections(request)
        crop = self.recipe.crop
        selection = ops.select_pills(self.settings["pipeline"], boxes, scores, width, height,
                                     margin=crop.margin)
        crops = photo.crops(selection.regions, size=crop.size, short_side=crop.short_side)
        logits, features = self._classify(ops.normalise(crops, crop.mean, crop.std))
        boxed = selection.boxes is not None
        decision = {"reason": selection.reason, "recommend_combo": selection.recommend_combo,
                    "image": {"width": int(width), "height": int(height)}, "boxed": boxed}
        empty = np.zeros((0, 4), dtype=np.float32)
        return [pb_utils.Tensor("LOGITS", logits), pb_utils.Tensor("FEATURES", features),
                pb_utils.Tensor("BOXES", selection.boxes if boxed else empty),
                pb_utils.Tensor("SCORES", selection.scores if boxed else empty[:, 0]),
                pb_utils.Tensor("DECISION", np.array([json.dumps(decision).encode()],
                                                     dtype=np.object_))]

    def _detections(self, request: object) -> tuple[np.ndarray | None, np.ndarray | None]:
        det = self.recipe.detector
        if not self.settings["detect"] or det is None:
            return None, None
        output = pb_utils.get_input_tensor_by_name(request, "DETECTIONS").as_numpy()[0]
        placement = pb_utils.get_input_tensor_by_name(request, "PLACEMENT").as_numpy()
        return ops.detections(output, ops.Letterbox.from_array(placement), conf=det.conf,
                              iou=det.iou, max_det=det.max_det)

    def _classify(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (n, classes) and pooled features (n, d; (n, 0) for a classifier without
        that output, whose answers then use a logit score)."""
        cls = self.settings["classifier"]
        step = cls["max_batch"]
        out = [self._call(x[i:i + step]) for i in range(0, len(x), step)]
        if not out:
            return (np.zeros((0, cls["classes"]), dtype=np.float32),
                    np.zeros((0, cls["features"]), dtype=np.float32))
        logits = np.concatenate([o[0] for o in out])
        features = (np.concatenate([o[1] for o in out]) if len(out[0]) > 1
                    else np.zeros((len(logits), 0), dtype=np.float32))
        return logits, features

    def _call(self, chunk: np.ndarray) -> list[np.ndarray]:
        names = self.settings["classifier"]["outputs"]
        request = pb_utils.InferenceRequest(
            model_name=self.settings["classifier"]["model"], requested_output_names=names,
            inputs=[pb_utils.Tensor("images", np.ascontiguousarray(chunk))])
        response = request.exec()
        if response.has_error():
            raise pb_utils.TritonModelException(
                f"classifier failed: {response.error().message()}")
        return [pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in names]
