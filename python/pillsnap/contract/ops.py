"""Pre- and post-processing of both pipelines: one source for every place that serves a model.

    from pillsnap.contract import ops
    image = ops.decode_image(open("photo.jpg", "rb").read())
    tensor, box = ops.letterbox(image, 640)                      # detector input + geometry
    boxes, scores = ops.decode_yolo(output0[0], conf=0.25, iou=0.45, max_det=32)
    crops = ops.classifier_crops(image, ops.box_regions(ops.boxes_to_image(boxes, box),
                                                         margin=0.15), size=384, short_side=480)
    logits, features = classifier(ops.normalise(crops))
    indices, probs = ops.top_k(logits, k=5, temperature=1.3)
    answer = ops.answer(decide.identify(logits, features, ...), selection, width, height)

The embedded backend (``pillsnap.infer.pipeline``) imports this module; ``python -m
pillsnap.export --triton`` copies this very file into the Triton python models, because the
NGC container has no PillSnap installed. So: numpy and Pillow only, and no ``pillsnap``
import here (the file must work on its own). Test: ``python -m pytest tests/contract``.

What training saw, and therefore what the classifier gets here:
- a pill region is the detector's (or labelled) box grown by ``margin`` on each side and
  squared (``pill_crop``, also used by the pack writer); single mode classifies the
  detector's best box when there is a detector (``select_pills``), else the whole photo;
- the region is shrunk so its short side is at most ``short_side`` (the pack writer's
  bilinear antialiased resize), then the loader's eval transform ``Resize(size / 0.875)`` +
  ``CenterCrop(size)`` is applied (``eval_crop``, same numbers as the Rust loader);
- uint8 RGB is normalised with the ImageNet mean/std (``normalise``), NCHW float32.
The detector gets the photo resized (bilinear, antialiased, as the YOLO view was written)
so its long side is the input size, padded to a square with grey 114 (``letterbox``).

Which drug a pill is, and whether it is one the model knows at all, is decided from the
classifier's logits and pooled features (its second output) by ``pillsnap.contract.decide``,
with the numbers of the serving recipe (``pillsnap.contract.recipe``); this module builds
the answer's shape around what it decides.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_PCT = 0.875  # the share of the resized short side eval keeps (timm/torchvision)
LETTERBOX_FILL = 114  # ultralytics' padding grey
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "MPO")  # MPO: JPEGs from some phone cameras

_JPEG_SIGNATURE = b"\xff\xd8\xff"
_SIGNATURE_NAMES = {_JPEG_SIGNATURE: "JPEG", b"\x89PNG\r\n\x1a\n": "PNG",
                    b"RIFF": "RIFF (WebP)", b"BM": "BMP"}
_SIGNATURES = tuple(_SIGNATURE_NAMES)
# JPEG frame markers (SOFn), without DHT (C4), JPG (C8) and DAC (CC); 3, 7, B, F: lossless
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                          0xCE, 0xCF})
_LOSSLESS_SOF = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
Region = tuple[float, float, float, float]  # x, y, w, h in image pixels


class ImageInputError(ValueError):
    """An uploaded image cannot be used; ``kind`` is unsupported, corrupt or too_large."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------- decoding


def decode_image(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Encoded bytes -> RGB uint8 HWC, upright (EXIF orientation applied, as phones need).

    The pixel count is checked from the header, before anything is decoded.
    """
    if not data:
        raise ImageInputError("unsupported", "empty upload: no image bytes")
    # signatures first: Pillow would try every plugin (and ultralytics, when imported in the
    # same process, patches Image.open to look for a HEIF plugin on unknown data)
    if not data.startswith(_SIGNATURES):
        raise ImageInputError("unsupported", "not an image (JPEG, PNG, WebP or BMP)")
    if data.startswith(_JPEG_SIGNATURE):  # JPEG variants Pillow's libjpeg cannot decode
        variant = _unsupported_jpeg(data)
        if variant is not None:
            raise ImageInputError("unsupported", variant)
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, ImportError):  # ImportError: ultralytics' patched open
        raise ImageInputError("unsupported", _unreadable(data)) from None  # found no plugin
    except Image.DecompressionBombError:  # Pillow's own guard, for headers over ~179 MP
        raise ImageInputError("too_large", "image has far too many pixels (decompression "
                              f"bomb guard); the limit is {max_pixels}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # a known signature, a damaged header
        raise ImageInputError("corrupt", f"corrupt image header: {exc}") from None
    if image.format not in IMAGE_FORMATS:
        raise ImageInputError("unsupported", f"{image.format} images are not accepted; "
                              f"send one of {', '.join(IMAGE_FORMATS[:4])}")
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageInputError("too_large", f"image is {width}x{height} = {width * height} "
                              f"pixels; the limit is {max_pixels}")
    try:
        image = ImageOps.exif_transpose(image)
        rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged data
        raise ImageInputError("corrupt", f"corrupt {image.format} image: {exc}") from None
    return np.asarray(rgb, dtype=np.uint8)


def _jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(SOF marker, sample precision in bits) of a JPEG's first frame header, if found."""
    i = 2
    while i + 4 < len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF_MARKERS:
            return marker, data[i + 4]
        if marker == 0xDA or length < 2:  # scan data, or a broken segment: stop looking
            return None
        i += 2 + length
    return None


def _unsupported_jpeg(data: bytes) -> str | None:
    """What is wrong with a JPEG whose frame header asks for a decoder Pillow lacks."""
    frame = _jpeg_frame(data)
    if frame is not None and frame[0] in _LOSSLESS_SOF:
        return ("a lossless JPEG: only lossy (baseline or progressive) JPEGs are supported; "
                "send it as a PNG or a regular JPEG")
    if frame is not None and frame[1] != 8:
        return (f"a {frame[1]}-bit JPEG: only 8-bit JPEGs are supported; send it as a PNG or "
                "an 8-bit JPEG")
    return None


def _unreadable(data: bytes) -> str:
    """Why Pillow could not identify bytes that start with an image signature."""
    name = next(n for sig, n in _SIGNATURE_NAMES.items() if data.startswith(sig))
    return (f"starts like a {name} file but cannot be read as an image (damaged, or a "
            "variant that is not supported); send a JPEG, PNG, WebP or BMP photo")


# ---------------------------------------------------------------------------- detector input


@dataclass(frozen=True)
class Letterbox:
    """How a photo was placed in the square detector input: x_in = x * scale + pad_x."""

    scale: float
    pad_x: int
    pad_y: int
    width: int  # the photo's size
    height: int
    size: int  # the square input's side

    def as_array(self) -> np.ndarray:
        """Float64 ``[scale, pad_x, pad_y, width, height, size]`` (a tensor for Triton)."""
        return np.array([self.scale, self.pad_x, self.pad_y, self.width, self.height,
                         self.size], dtype=np.float64)

    @classmethod
    def from_array(cls, values: Sequence[float]) -> Letterbox:
        scale, pad_x, pad_y, width, height, size = (float(v) for v in values)
        return cls(scale, int(pad_x), int(pad_y), int(width), int(height), int(size))


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 HWC -> float32 (3, size, size) in [0, 1] and the placement (see ``Letterbox``).

    Never enlarges past ``size``; small photos are scaled up so the long side fills it,
    as the YOLO view's photos did when their long side was below the training size.
    """
    height, width = image.shape[:2]
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = Image.fromarray(image)
    if (new_w, new_h) != (width, height):
        resized = resized.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), LETTERBOX_FILL, dtype=np.uint8)
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = np.asarray(resized)
    tensor = canvas.transpose(2, 0, 1).astype(np.float32) / 255.0
    return tensor, Letterbox(scale, pad_x, pad_y, width, height, size)


def boxes_to_image(boxes: np.ndarray, placement: Letterbox) -> np.ndarray:
    """xyxy boxes in letterbox pixels -> xyxy in photo pixels, clipped to the photo."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - placement.pad_x) / placement.scale
    out[:, [1, 3]] = (out[:, [1, 3]] - placement.pad_y) / placement.scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, placement.width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, placement.height)
    return out


# ---------------------------------------------------------------------------- detector output


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (len(a), len(b))."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((rb - lt).clip(0), axis=2)
    area_a = np.prod((a[:, 2:] - a[:, :2]).clip(0), axis=1)
    area_b = np.prod((b[:, 2:] - b[:, :2]).clip(0), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float,
        limit: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best score first.

    ``limit``: stop after that many. Greedy NMS keeps boxes in score order, so the first
    ``limit`` are the same as those of the full pass; each costs one IoU row against the
    boxes left, so a weak detector's thousands of candidates (8,400 over a low threshold:
    110 ms on one core) cost ``limit`` rows instead of one per box kept.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size and (limit is None or len(keep) < limit):
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlap = box_iou(boxes[best:best + 1], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou]
    return np.array(keep, dtype=np.int64)


def detections(output: np.ndarray, placement: Letterbox, *, conf: float, iou: float,
               max_det: int) -> tuple[np.ndarray, np.ndarray]:
    """One image's detector output -> xyxy boxes in photo pixels and scores, best first."""
    boxes, scores = decode_yolo(output, conf=conf, iou=iou, max_det=max_det)
    return boxes_to_image(boxes, placement), scores.astype(np.float32)


def decode_yolo(output: np.ndarray, *, conf: float, iou: float,
                max_det: int) -> tuple[np.ndarray, np.ndarray]:
    """One image's ultralytics detect output ``(4 + classes, anchors)`` -> xyxy boxes, scores.

    Rows 0-3 are box centre and size in input pixels, the rest class scores (already
    sigmoid). PillSnap's detector has one class, so NMS is class-agnostic.
    """
    output = np.asarray(output, dtype=np.float32)
    if output.ndim != 2 or output.shape[0] < 5:
        raise ValueError(f"expected a (4 + classes, anchors) detector output, got {output.shape}")
    scores = output[4:].max(axis=0)
    chosen = scores > conf
    cx, cy, w, h = output[:4, chosen]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    scores = scores[chosen]
    keep = nms(boxes, scores, iou, limit=max_det)
    return boxes[keep], scores[keep]


# ---------------------------------------------------------------------------- classifier input


def pill_crop(bbox: Sequence[float], width: int, height: int, margin: float) -> Region:
    """The pill's box ``(x, y, w, h)`` grown by ``margin`` of its size on each side, squared,
    inside the photo: the region the pack writer stores for training and serving crops.
    """
    x, y, w, h = bbox
    side = max(w, h) * (1 + 2 * margin)
    side = min(side, width, height)
    cx, cy = x + w / 2, y + h / 2
    x0 = min(max(0.0, cx - side / 2), width - side)
    y0 = min(max(0.0, cy - side / 2), height - side)
    return (x0, y0, side, side)


def box_regions(boxes_xyxy: np.ndarray, width: int, height: int,
                margin: float) -> list[Region]:
    """Detector boxes (photo pixels, xyxy) -> the training crop region of each."""
    return [pill_crop((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), width, height,
                      margin) for x0, y0, x1, y1 in np.asarray(boxes_xyxy).reshape(-1, 4)]


def stored_size(w: float, h: float, short_side: int) -> tuple[int, int]:
    """The pack's stored size of a ``w`` x ``h`` region: short side shrunk to ``short_side``."""
    scale = min(short_side / min(w, h), 1.0)
    # Rust's f64::round (half away from zero), not Python's round (half to even)
    return max(1, math.floor(w * scale + 0.5)), max(1, math.floor(h * scale + 0.5))


def eval_crop(width: int, height: int, size: int) -> Region:
    """``Resize(int(size / 0.875))`` + ``CenterCrop(size)`` as the source region it keeps
    (the Rust loader's ``eval_crop``; torchvision's rounding)."""
    short_target = int(size / EVAL_CROP_PCT)
    if width <= height:
        new_w, new_h = short_target, short_target * height // width
    else:
        new_w, new_h = short_target * width // height, short_target
    top = round((new_h - size) / 2.0)  # Python's round: half to even, like the Rust code
    left = round((new_w - size) / 2.0)
    sx, sy = width / new_w, height / new_h
    return (left * sx, top * sy, size * sx, size * sy)


def _resize_region(image: Image.Image, region: Region, out: tuple[int, int]) -> Image.Image:
    x, y, w, h = region
    return image.resize(out, Image.Resampling.BILINEAR, box=(x, y, x + w, y + h),
                        reducing_gap=None)


def classifier_crop(image: Image.Image, region: Region | None, *, size: int,
                    short_side: int | None) -> np.ndarray:
    """One region of a photo -> uint8 (size, size, 3), as the eval loader saw packed crops."""
    if region is None:
        region = (0.0, 0.0, float(image.width), float(image.height))
    if short_side is not None:  # the pack writer's shrink
        image = _resize_region(image, region, stored_size(region[2], region[3], short_side))
        region = (0.0, 0.0, float(image.width), float(image.height))
    x, y, w, h = region
    cx, cy, cw, ch = eval_crop(round(w), round(h), size)
    sx, sy = w / round(w), h / round(h)
    centre = (x + cx * sx, y + cy * sy, cw * sx, ch * sy)
    return np.asarray(_resize_region(image, centre, (size, size)), dtype=np.uint8)


def classifier_crops(image: np.ndarray, regions: Sequence[Region] | None, *, size: int,
                     short_side: int | None) -> np.ndarray:
    """A photo and its regions (``None``: the whole photo) -> uint8 (n, size, size, 3)."""
    pil = Image.fromarray(image)
    wanted: Sequence[Region | None] = [None] if regions is None else regions
    crops = [classifier_crop(pil, r, size=size, short_side=short_side) for r in wanted]
    if not crops:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(crops)


def normalise(batch: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, ``(x / 255 - mean) / std`` (what training fed the model)."""
    batch = np.asarray(batch)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected uint8 (n, h, w, 3) images, got {batch.shape}")
    shift = np.asarray(mean, dtype=np.float32) * 255.0
    scale = np.asarray(std, dtype=np.float32) * 255.0
    out = (batch.astype(np.float32) - shift) / scale
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------- classifier output


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row softmax of ``logits / temperature`` (the temperature fitted at training)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def top_k(logits: np.ndarray, k: int, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, calibrated probabilities), each (n, min(k, classes)), best first."""
    probs = softmax(np.atleast_2d(logits), temperature)
    k = max(1, min(k, probs.shape[-1]))
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=-1)


FEATURES_OUTPUT = "features"  # the classifier graph's second output: its pooled features


# ---------------------------------------------------------------------------- the answer's shape
# Written once, here: the embedded pipeline, Triton's postprocess model (a copy of this file)
# and the API all build these; serve/schemas.py documents them for OpenAPI and its test
# checks that both name the same fields. TypedDicts, because the answer crosses Triton as
# JSON and this file may import nothing but numpy and Pillow.


class Names(TypedDict):
    ko: str | None
    en: str | None


class Imprints(TypedDict):
    front: str | None
    back: str | None


class DrugInfo(TypedDict):
    """One K-code's drug-table entry as the API shows it (``None`` where unknown)."""

    k_code: str
    edi_code: str | None
    edi_codes: list[str]
    name: Names
    company: Names
    shape: str | None
    colors: list[str]
    imprints: Imprints
    form: str | None


class Candidate(DrugInfo):
    confidence: float  # calibrated probability, 6 decimals


class _Detected(TypedDict, total=False):
    """Only for a detector's box: xyxy photo pixels (0.1 px) and the detector's score."""

    bbox: list[float]
    det_confidence: float


class NearTwin(TypedDict):
    """A runner-up that looks like the top-1 in the drug table, and what tells them apart."""

    k_code: str
    name: Names
    confidence: float
    differs_by: list[str]  # e.g. "imprint (front): 'AB 10' vs 'AB 20'"


class Pill(_Detected):
    """One classified region; ``unknown``: unlike every known drug (then ``candidates`` are
    the nearest known ones); ``open_set_score``: ``None`` without an open-set threshold;
    ``near_twins``: look-alikes among the candidates (``pillsnap.contract.decide``)."""

    top1: Candidate
    candidates: list[Candidate]
    near_twins: list[NearTwin]
    unknown: bool
    open_set_score: float | None


class ImageSize(TypedDict):
    width: int
    height: int


class Answer(TypedDict):
    """What both servers compute identically (Triton's ``RESULT``)."""

    pills: list[Pill]
    reason: str | None
    recommend_combo: bool
    image: ImageSize


class Prediction(Answer):
    """An answer as a backend returns it: which pipeline and model, and its stage timings."""

    pipeline: str
    model_version: str
    timing_ms: dict[str, float]


def prediction(answer: Answer, *, pipeline: str, model_version: str | None,
               timing_ms: Mapping[str, float]) -> Prediction:
    """``answer`` labelled with its pipeline, model version and stage timings."""
    return {"pills": list(answer["pills"]), "reason": answer["reason"],
            "recommend_combo": bool(answer["recommend_combo"]), "image": answer["image"],
            "pipeline": pipeline, "model_version": model_version or "unknown",
            "timing_ms": dict(timing_ms)}


def drug_info(k_code: str, drugs: Mapping[str, Mapping[str, Any]]) -> DrugInfo:
    """The API's view of one K-code's drug-table entry (``None`` where a field is unknown)."""
    entry = drugs.get(k_code, {})
    colours = [entry[c] for c in ("color1", "color2") if entry.get(c)]
    return {
        "k_code": k_code,
        "edi_code": entry.get("edi_code"),
        "edi_codes": list(entry.get("edi_codes", [])),
        "name": {"ko": entry.get("name_ko"), "en": entry.get("name_en")},
        "company": {"ko": entry.get("company"), "en": entry.get("company_en")},
        "shape": entry.get("shape"),
        "colors": colours,
        "imprints": {"front": entry.get("print_front"), "back": entry.get("print_back")},
        "form": entry.get("form"),
    }


# ---------------------------------------------------------------------------- the answer

NO_PILL = "no pill found"
WHOLE_PHOTO = "no pill detected; the whole photo was classified"


@dataclass(frozen=True)
class Selection:
    """What a pipeline classifies: ``regions`` (``None``: the whole photo) and, when they came
    from the detector, their ``boxes`` (xyxy photo pixels) and ``scores`` for the answer."""

    regions: list[Region] | None
    boxes: np.ndarray | None
    scores: np.ndarray | None
    recommend_combo: bool
    reason: str | None


def select_pills(pipeline: str, boxes: np.ndarray | None, scores: np.ndarray | None,
                 width: int, height: int, *, margin: float) -> Selection:
    """The pipelines' rule for what to classify, given the detections (``None``: no detector).

    combo: every box. single: the best box only, because the classifier learnt pill crops,
    not photos; 2+ boxes only *recommend* combo (the caller chose the pipeline). single
    with no box, or with no detector, classifies the whole photo.
    """
    if pipeline not in ("single", "combo"):
        raise ValueError(f"unknown pipeline {pipeline!r}: single or combo")
    if boxes is None or scores is None:
        if pipeline == "combo":
            raise ValueError("pipeline=combo needs detections")
        return Selection(None, None, None, False, None)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if pipeline == "combo":
        return Selection(box_regions(boxes, width, height, margin), boxes, scores, False,
                         None if len(boxes) else NO_PILL)
    if not len(boxes):
        return Selection(None, None, None, False, WHOLE_PHOTO)
    return Selection(box_regions(boxes[:1], width, height, margin), boxes[:1], scores[:1],
                     len(boxes) >= 2, None)


def pill_entries(found: Sequence[Pill], boxes: np.ndarray | None,
                 scores: np.ndarray | None) -> list[Pill]:
    """``identify``'s pills with, for detector boxes, ``bbox`` (xyxy photo pixels, 0.1 px)
    and ``det_confidence``."""
    pills = []
    for i, found_pill in enumerate(found):
        pill = Pill(**found_pill)
        if boxes is not None and scores is not None:
            x0, y0, x1, y1 = (round(float(v), 1) for v in boxes[i])
            pill = Pill(bbox=[x0, y0, x1, y1], det_confidence=round(float(scores[i]), 6),
                        **found_pill)
        pills.append(pill)
    return pills


def answer(found: Sequence[Pill], selection: Selection, width: int, height: int) -> Answer:
    """The part of a prediction both servers return identically (Triton's ``RESULT``)."""
    pills = pill_entries(found, selection.boxes, selection.scores)
    reason = selection.reason if pills or selection.reason else NO_PILL
    return Answer(pills=pills, reason=reason, recommend_combo=selection.recommend_combo,
                  image=ImageSize(width=width, height=height))
