"""What the AIHub pill dataset looks like on disk, and parsing of its names and labels.

Knowledge of the real format (README.md, "Your own AIHub data") lives here and nowhere else: folder
names (``TS_1_단일``, ``VL_3_조합``), file names (``K-CODE_배경_조명_면_형태_앙각_회전각_크기``)
and the COCO-like JSON with one ``images[0]`` record of drug metadata per pill.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pillsnap.errors import LabelError

Split = Literal["train", "val"]
Kind = Literal["single", "combo"]
Role = Literal["image", "label"]

# TS/TL: training source/label; VS/VL: the official validation split.
_FOLDER = re.compile(r"^(?P<code>TS|TL|VS|VL)_(?P<num>\d+)_(?P<kind>단일|조합)$")
_ROLE = {"TS": ("train", "image"), "TL": ("train", "label"),
         "VS": ("val", "image"), "VL": ("val", "label")}
_KIND = {"단일": "single", "조합": "combo"}
K_CODE = re.compile(r"^K-\d{6}$")
_COMBO_FOLDER = re.compile(r"^K-\d{6}(?:-\d{6})+$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NAME_FIELDS = ("background", "light", "side", "form", "elevation", "rotation", "size")


def nfc(name: str) -> str:
    """Korean names extracted on macOS come decomposed (NFD); compare them composed."""
    return unicodedata.normalize("NFC", name)


@dataclass(frozen=True)
class DataFolder:
    """One extracted zip folder such as ``TS_1_단일``."""

    path: Path
    split: Split
    role: Role
    kind: Kind


def classify_folder(path: Path) -> DataFolder | None:
    """The DataFolder for an AIHub ``TS/TL/VS/VL_<n>_단일|조합`` folder, else None."""
    match = _FOLDER.match(nfc(path.name))
    if not match:
        return None
    split, role = _ROLE[match["code"]]
    return DataFolder(path, split, role, _KIND[match["kind"]])  # type: ignore[arg-type]


def combo_codes(folder: str) -> list[str]:
    """``"K-000123-004567"`` -> ``["K-000123", "K-004567"]``; [] if not a combo folder name."""
    if not _COMBO_FOLDER.match(folder):
        return []
    return [f"K-{n}" for n in folder[2:].split("-")]


def parse_file_name(stem: str) -> dict[str, int | str]:
    """The seven shooting attributes in an AIHub file name; missing or odd parts are skipped."""
    parts = stem.split("_")[1:]
    out: dict[str, int | str] = {}
    for key, value in zip(NAME_FIELDS, parts, strict=False):
        out[key] = int(value) if value.isdigit() else value
    return out


@dataclass
class PillLabel:
    """One pill as one label JSON describes it."""

    k_code: str
    bbox: list[float]
    image_width: int
    image_height: int
    file_name: str
    drug: dict[str, Any] = field(default_factory=dict)
    extra_boxes: int = 0  # annotations beyond the first (unexpected in one-pill JSONs)


# images[0] fields copied into the drug table, renamed to what the API returns.
DRUG_FIELDS = {
    "dl_name": "name_ko", "dl_name_en": "name_en", "dl_company": "company",
    "dl_company_en": "company_en", "drug_shape": "shape", "color_class1": "color1",
    "color_class2": "color2", "print_front": "print_front", "print_back": "print_back",
    "line_front": "line_front", "line_back": "line_back", "form_code_name": "form",
    "dl_material": "material", "dl_material_en": "material_en",
    "dl_custom_shape": "custom_shape", "di_class_no": "class_no",
    "di_etc_otc_code": "etc_otc", "item_seq": "item_seq", "dl_idx": "dl_idx",
    "leng_long": "length_long_mm", "leng_short": "length_short_mm", "thick": "thickness_mm",
}


def split_edi(value: Any) -> list[str]:
    """``"643303740,A01200351"`` -> both codes; empty or missing -> []."""
    if value is None:
        return []
    return [code.strip() for code in str(value).split(",") if code.strip()]


def parse_label(data: Any, folder_code: str | None = None) -> PillLabel:
    """Parse one label JSON document; raise LabelError naming the first thing wrong.

    ``folder_code`` is the K-code of the folder holding the JSON: the fallback for a
    single-pill label whose ``dl_mapping_code`` is missing.
    """
    if not isinstance(data, dict):
        raise LabelError("top level is not an object")
    images = data.get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], dict):
        raise LabelError("missing images[0]")
    info = images[0]
    k_code = _label_k_code(info, folder_code)
    width, height = _int_field(info, "width"), _int_field(info, "height")
    boxes = [b for b in (_bbox(a) for a in data.get("annotations") or []) if b is not None]
    if not boxes:
        raise LabelError("no annotation with a valid bbox [x, y, w, h]")
    drug = {new: info[old] for old, new in DRUG_FIELDS.items() if info.get(old) not in (None, "")}
    drug["edi_codes"] = split_edi(info.get("di_edi_code"))
    return PillLabel(
        k_code=k_code, bbox=boxes[0], image_width=width, image_height=height,
        file_name=str(info.get("file_name") or info.get("imgfile") or ""),
        drug=drug, extra_boxes=len(boxes) - 1,
    )


def read_label(path: Path, folder_code: str | None = None) -> PillLabel:
    """Read and parse a label file; broken JSON becomes LabelError with the reason."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelError(f"broken JSON: {exc}") from None
    return parse_label(data, folder_code)


def _label_k_code(info: dict[str, Any], folder_code: str | None) -> str:
    for key in ("dl_mapping_code", "drug_N"):
        value = str(info.get(key) or "").strip()
        if K_CODE.match(value):
            return value
    if folder_code and K_CODE.match(folder_code):
        return folder_code
    raise LabelError("no K-code in dl_mapping_code or drug_N")


def _int_field(info: dict[str, Any], key: str) -> int:
    try:
        value = int(info[key])
    except (KeyError, TypeError, ValueError):
        raise LabelError(f"images[0].{key} missing or not a number") from None
    if value <= 0:
        raise LabelError(f"images[0].{key} must be positive, got {value}")
    return value


def _bbox(annotation: Any) -> list[float] | None:
    if not isinstance(annotation, dict):
        return None
    box = annotation.get("bbox")
    if not isinstance(box, list | tuple) or len(box) != 4:
        return None
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    return [x, y, w, h] if w > 0 and h > 0 else None
