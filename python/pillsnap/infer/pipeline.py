"""The in-process ONNX Runtime pipeline: image bytes -> pills with top-k K-codes and metadata.

    pipe = OnnxPipeline.open(Path("artifacts/export"))
    answer = pipe.predict(image_bytes, pipeline="combo", top_k=5)
    answer["pills"][0]["top1"]["k_code"], answer["timing_ms"]

combo: the detector finds the pills; each box, grown by the training crop margin, is
classified, ``max_batch`` crops per classifier call. No pill: an empty list and a reason.
single: the classifier learnt pill crops (``recipe.crop.region == "pill"``), so with a
detector it classifies the highest-scoring box only, cropped as in combo, and answers
``recommend_combo: true`` when it saw 2+ pills (it never switches pipeline itself); no box:
the whole photo, with a ``reason``. Without a detector, or for a classifier trained on whole
photos (``region == "image"``), single classifies the whole photo (the pack's shrink + the
eval centre crop). The rules live in ``ops.select_pills``, the verdict on each crop in
``pillsnap.contract.decide``, both shared with Triton's models; every number comes from the
export's serving recipe (``pillsnap.contract.recipe``). The gallery of class statistics is
read again when an enrollment replaces it (``python -m pillsnap.enroll``): the next answer
knows the new drug. This is the embedded API backend and the reference the Triton pipelines
are compared with.

The photo is opened with ``pillsnap.contract.photo`` (the Rust engine where installed, with
Pillow as the fallback and reference; ``PILLSNAP_PHOTO_ENGINE=pillow`` forces Pillow). On
the engine the ``decode`` timing is the header alone: the letterbox's (DCT-scaled) decode
counts in ``detect`` and the crops' window decodes in ``preprocess``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import numpy as np

from pillsnap.config.schema import IoBinding
from pillsnap.contract import decide, ops
from pillsnap.contract.gallery import Gallery
from pillsnap.contract.photo import Photo, open_photo
from pillsnap.contract.recipe import Recipe
from pillsnap.errors import IMAGE_INPUT_ERRORS, ModelError
from pillsnap.infer.binding import ModelRunner, Runner
from pillsnap.infer.bundle import Bundle, load_bundle
from pillsnap.infer.device import confirm_started, providers_for

logger = logging.getLogger(__name__)

PIPELINES = ("single", "combo")


class OnnxPipeline:
    """Both pipelines over one export folder (see the module docstring)."""

    def __init__(self, bundle: Bundle, *, max_batch: int = 32,
                 max_pixels: int | None = None, io_binding: IoBinding = "off",
                 runners: tuple[ModelRunner, ModelRunner | None] | None = None) -> None:
        """``runners``: the classifier and the detector as something else than the bundle's
        ONNX Runtime sessions (``pillsnap.bench.standin``: PyTorch on a GPU)."""
        self.bundle = bundle
        if runners is None:
            runners = (Runner(bundle.classifier, io_binding),
                       None if bundle.detector is None else Runner(bundle.detector, io_binding))
        self.classifier, self.detector = runners
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        self.recipe: Recipe = bundle.recipe
        self.outputs = ["logits"] + ([ops.FEATURES_OUTPUT] if ops.FEATURES_OUTPUT
                                     in self.classifier.outputs else [])
        rule = self.recipe.open_set
        if rule is None:
            logger.warning("the classifier of %s has no open-set threshold (exported before "
                           "it existed): drugs it never learnt are named, not flagged "
                           "unknown; export it again", bundle.folder)
        elif rule.score == "mahalanobis" and (bundle.gallery is None or len(self.outputs) < 2):
            raise ModelError(f"{bundle.folder}: the open-set score is mahalanobis, but the "
                             "classifier has no features output or the export no gallery; "
                             "export again")
        self.single_detects = self.recipe.crop.region == "pill" and self.detector is not None
        if self.recipe.crop.region == "pill" and self.detector is None:
            logger.warning("the classifier of %s learnt pill crops (pack.region=pill) but the "
                           "export has no detector: single mode classifies whole photos, "
                           "which it never saw; export with --det-ckpt", bundle.folder)

    @classmethod
    def open(cls, folder: Path, *, threads: int = 0, max_batch: int = 32,
             max_pixels: int | None = None, device: str = "cpu",
             io_binding: IoBinding = "auto", warm: bool = False) -> OnnxPipeline:
        """``device``: ``serve.device`` (``pillsnap.infer.device``; the CPU by default, as
        export checks and eval need no GPU); ``io_binding``: ``serve.io_binding``
        (``pillsnap.infer.binding``); ``warm``: run ``warm_up`` before returning, as a
        server does so that its first request does not pay for it."""
        providers = providers_for(device)
        bundle = load_bundle(folder, threads=threads, providers=providers)
        confirm_started(bundle.classifier, device, providers)
        pipe = cls(bundle, max_batch=max_batch, max_pixels=max_pixels, io_binding=io_binding)
        if warm:
            pipe.warm_up()
        return pipe

    def warm_up(self) -> None:
        """Each model run once on a blank input of its own shape (on a GPU the first runs
        pick kernels and TensorRT builds its engines), then ``io_binding=auto`` settled
        (timed on a GPU)."""
        runners = [("classifier", self.classifier, self.outputs, self.recipe.crop.size)]
        if self.detector is not None and self.recipe.detector is not None:
            runners.append(("detector", self.detector, ["output0"], self.recipe.detector.size))
        for model, runner, names, size in runners:
            feeds = {"images": np.zeros((1, 3, size, size), dtype=np.float32)}
            runner.run(names, feeds)
            runner.settle(model, names, feeds)

    @property
    def device(self) -> str:
        """Where the classifier really runs (``cpu``, ``cuda`` or ``tensorrt``)."""
        return self.classifier.where

    @property
    def io_bound(self) -> str:
        """``on``/``off`` (``serve.io_binding`` as settled), per model where they differ."""
        ways = {"classifier": self.classifier.bound}
        if self.detector is not None:
            ways["detector"] = self.detector.bound
        if len(set(ways.values())) == 1:
            return "on" if self.classifier.bound else "off"
        return ", ".join(f"{model} {'on' if bound else 'off'}" for model, bound in ways.items())

    @property
    def model_seconds(self) -> float:
        """Seconds spent inside ONNX Runtime calls so far (``Runner.busy_s``, both models)."""
        return sum(r.busy_s for r in (self.classifier, self.detector) if r is not None)

    @property
    def pipelines(self) -> tuple[str, ...]:
        return PIPELINES if self.detector is not None else PIPELINES[:1]

    def decode(self, data: bytes) -> np.ndarray:
        """Image bytes -> RGB array; bad input raises the matching ``pillsnap.errors`` type."""
        with _image_errors():
            return self.photo(data).array()

    def photo(self, data: bytes) -> Photo:
        """Image bytes opened (header only on the native engine) with this server's pixel
        limit; bad input raises ``ops.ImageInputError`` here or at the first output."""
        return open_photo(data, max_pixels=self.max_pixels)

    @property
    def gallery(self) -> Gallery | None:
        """The class statistics as they are now (an enrollment replaces the file)."""
        return self.bundle.gallery.current() if self.bundle.gallery is not None else None

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (n, size, size, 3) crops -> logits (n, classes) and, when the graph has
        them, the pooled features (n, d); ``max_batch`` crops per call."""
        crop = self.recipe.crop
        x = ops.normalise(crops, crop.mean, crop.std)
        names = self.outputs
        out = [self.classifier.run(names, {"images": x[i:i + self.max_batch]})
               for i in range(0, len(x), self.max_batch)]
        classes = len(self.recipe.k_codes)
        logits = (np.concatenate([o[0] for o in out]) if out
                  else np.zeros((0, classes), dtype=np.float32))
        features = None
        if len(names) > 1:
            features = (np.concatenate([o[1] for o in out]) if out
                        else np.zeros((0, 0), dtype=np.float32))
        return logits, features

    def detect(self, photo: Photo) -> tuple[np.ndarray, np.ndarray]:
        """Photo -> xyxy boxes in photo pixels and detector scores, best first."""
        runner, det = self.detector, self.recipe.detector
        if runner is None or det is None:
            raise ModelError(f"pipeline=combo needs a detector; {self.bundle.folder} has none "
                             "(export with --det-ckpt)")
        tensor, placement = photo.letterbox(det.size)
        output = runner.run(["output0"], {"images": tensor[None]})[0][0]
        return ops.detections(output, placement, conf=det.conf, iou=det.iou,
                              max_det=det.max_det)

    def crops(self, data: bytes, pipeline: str) -> tuple[ops.Selection, np.ndarray, int, int]:
        """What ``pipeline`` classifies in a photo: the selection and its uint8 crops, and
        the photo's size (enrollment and the export's calibration use this directly)."""
        with _image_errors():
            photo = self.photo(data)
            return self._crops(photo, pipeline, _Clock())

    def _crops(self, photo: Photo, pipeline: str,
               clock: _Clock) -> tuple[ops.Selection, np.ndarray, int, int]:
        width, height = photo.width, photo.height
        boxes, det_scores = None, None
        if pipeline == "combo" or self.single_detects:
            boxes, det_scores = self.detect(photo)
            clock.lap("detect")
        crop = self.recipe.crop
        selection = ops.select_pills(pipeline, boxes, det_scores, width, height,
                                     margin=crop.margin)
        crops = photo.crops(selection.regions, size=crop.size, short_side=crop.short_side)
        return selection, crops, width, height

    def predict(self, data: bytes, *, pipeline: str = "single", top_k: int = 5,
                with_outputs: bool = False) -> ops.Prediction:
        """One photo through ``pipeline``; a JSON-ready answer with per-stage timings.

        ``with_outputs`` adds ``logits`` and ``features`` (numpy, one row per pill; features
        None without that output) for ``pillsnap.eval``'s comparison of open-set scores and
        the export's calibration; the API never asks for them.
        """
        if pipeline not in self.pipelines:
            raise ModelError(f"pipeline={pipeline!r} is not available here; choose one of "
                             f"{', '.join(self.pipelines)}")
        clock = _Clock()
        with _image_errors():
            photo = self.photo(data)
            clock.lap("decode")
            selection, crops, width, height = self._crops(photo, pipeline, clock)
            clock.lap("preprocess")
        logits, features = self.classify(crops)
        clock.lap("classify")
        found = decide.identify(logits, features, recipe=self.recipe, gallery=self.gallery,
                                drugs=self.bundle.drugs, k=top_k)
        result = ops.answer(found, selection, width, height)
        clock.lap("postprocess")
        answer = ops.prediction(result, pipeline=pipeline,
                                model_version=self.bundle.model_version, timing_ms=clock.laps)
        if with_outputs:  # extra keys for eval and export only; the API never asks for them
            return cast(ops.Prediction, {**answer, "logits": logits, "features": features})
        return answer


@contextmanager
def _image_errors() -> Iterator[None]:
    """A bad upload (``ops.ImageInputError``) as the matching ``pillsnap.errors`` type."""
    try:
        yield
    except ops.ImageInputError as exc:
        raise IMAGE_INPUT_ERRORS[exc.kind](str(exc)) from None


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._last) * 1000, 3)
        self.laps["total"] = round((now - self._start) * 1000, 3)
        self._last = now
