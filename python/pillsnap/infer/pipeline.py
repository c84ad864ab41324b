"""The in-process ONNX Runtime pipeline: image bytes -> pills with top-k K-codes and metadata.

    pipe = OnnxPipeline.open(Path("artifacts/export"))
    answer = pipe.predict(image_bytes, pipeline="combo", top_k=5)
    answer["pills"][0]["top1"]["k_code"], answer["timing_ms"]

combo: the detector finds the pills; each box, grown by the training crop margin, is
classified, ``max_batch`` crops per classifier call. No pill: an empty list and a reason.
single: the classifier learnt pill crops (``pack_region=pill`` in its metadata), so with a
detector it classifies the highest-scoring box only, cropped as in combo, and answers
``recommend_combo: true`` when it saw 2+ pills (it never switches pipeline itself); no box:
the whole photo, with a ``reason``. Without a detector, or for a classifier trained on whole
photos (``pack_region=image``), single classifies the whole photo (the pack's shrink + the
eval centre crop). The rules live in ``ops.select_pills``, shared with Triton's models.
This is the embedded API backend and the reference the Triton pipelines are compared with.

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
from pillsnap.contract import ops
from pillsnap.contract.photo import Photo, open_photo
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
        info = bundle.classifier_info
        self.image_size = int(info["image_size"])
        self.short_side = int(info["pack_short_side"])
        self.margin = float(info["crop_margin"])
        self.temperature = float(info["temperature"])
        self.open_set = ops.OpenSet.from_metadata(info.values.get("open_set"))
        self.outputs = ["logits"] + ([ops.KNOWN_OUTPUT] if ops.KNOWN_OUTPUT
                                     in self.classifier.outputs else [])
        if self.open_set is None:
            logger.warning("the classifier of %s has no open-set threshold (exported before "
                           "it existed): drugs it never learnt are named, not flagged "
                           "unknown; export it again", bundle.folder)
        self.mean, self.std = tuple(info["mean"]), tuple(info["std"])
        # exports older than the pack_region key were all trained on pill crops
        self.region = str(info.values.get("pack_region", "pill"))
        self.single_detects = self.region == "pill" and self.detector is not None
        if self.region == "pill" and self.detector is None:
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
        runners = [("classifier", self.classifier, self.outputs, self.image_size)]
        if self.detector is not None and self.bundle.detector_info is not None:
            runners.append(("detector", self.detector, ["output0"],
                            int(self.bundle.detector_info["image_size"])))
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

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (n, size, size, 3) crops -> logits (n, classes) and, when the graph has it,
        the open-set ``known_score`` (n, 1); ``max_batch`` crops per call."""
        x = ops.normalise(crops, self.mean, self.std)
        names = self.outputs
        out = [self.classifier.run(names, {"images": x[i:i + self.max_batch]})
               for i in range(0, len(x), self.max_batch)]
        classes = len(self.bundle.k_codes)
        logits = (np.concatenate([o[0] for o in out]) if out
                  else np.zeros((0, classes), dtype=np.float32))
        known = None
        if len(names) > 1:
            known = (np.concatenate([o[1] for o in out]) if out
                     else np.zeros((0, 1), dtype=np.float32))
        return logits, known

    def detect(self, photo: Photo) -> tuple[np.ndarray, np.ndarray]:
        """Photo -> xyxy boxes in photo pixels and detector scores, best first."""
        runner, info = self.detector, self.bundle.detector_info
        if runner is None or info is None:
            raise ModelError(f"pipeline=combo needs a detector; {self.bundle.folder} has none "
                             "(export with --det-ckpt)")
        tensor, placement = photo.letterbox(int(info["image_size"]))
        output = runner.run(["output0"], {"images": tensor[None]})[0][0]
        return ops.detections(output, placement, conf=float(info["conf_threshold"]),
                              iou=float(info["iou_threshold"]),
                              max_det=int(info["max_detections"]))

    def predict(self, data: bytes, *, pipeline: str = "single", top_k: int = 5,
                with_logits: bool = False) -> ops.Prediction:
        """One photo through ``pipeline``; a JSON-ready answer with per-stage timings.

        ``with_logits`` adds ``logits`` and ``known_score`` (numpy, one row per pill; None
        without that output) for ``pillsnap.eval``'s comparison of open-set scores; the API
        never asks for it.
        """
        if pipeline not in self.pipelines:
            raise ModelError(f"pipeline={pipeline!r} is not available here; choose one of "
                             f"{', '.join(self.pipelines)}")
        clock = _Clock()
        with _image_errors():
            photo = self.photo(data)
            clock.lap("decode")
            width, height = photo.width, photo.height
            boxes, det_scores = None, None
            if pipeline == "combo" or self.single_detects:
                boxes, det_scores = self.detect(photo)
                clock.lap("detect")
            selection = ops.select_pills(pipeline, boxes, det_scores, width, height,
                                          margin=self.margin)
            crops = photo.crops(selection.regions, size=self.image_size,
                                short_side=self.short_side)
            clock.lap("preprocess")
        logits, known = self.classify(crops)
        clock.lap("classify")
        found = ops.identify(logits, k=top_k, temperature=self.temperature,
                             k_codes=self.bundle.k_codes, drugs=self.bundle.drugs,
                             open_set=self.open_set, graph=known)
        result = ops.answer(found, selection, width, height)
        clock.lap("postprocess")
        answer = ops.prediction(result, pipeline=pipeline,
                                model_version=self.bundle.model_version, timing_ms=clock.laps)
        if with_logits:  # extra keys for eval only; the API never asks for them
            return cast(ops.Prediction, {**answer, "logits": logits, "known_score": known})
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
