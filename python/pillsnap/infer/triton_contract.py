"""The serving contract of the Triton ensembles ``pill_single`` and ``pill_combo``.

    from pillsnap.infer.triton_contract import INPUT_IMAGE, OUTPUT_RESULT, error_kind
    error_kind("in ensemble 'pill_single', corrupt: corrupt PNG image: ...")   # "corrupt"

Inputs: IMAGE uint8 [-1] (the encoded image file's bytes) and TOP_K int32 [1]. Output:
RESULT string [1], UTF-8 JSON ``{"pills", "reason", "recommend_combo", "image"}`` with pills
exactly as ``OnnxPipeline.predict`` returns them. Bad uploads fail the request (HTTP 400,
gRPC INVALID_ARGUMENT) with a message whose kind is ``unsupported:``, ``corrupt:`` or
``too_large:``; Triton's ensemble puts ``in ensemble '<name>', `` in front of it, which
``error_kind`` looks past. Each ensemble's config carries the export's model version as the
parameter ``pillsnap_model_version``. Full description: docs/triton.md.
"""

from __future__ import annotations

import re

ENSEMBLE_OF = {"single": "pill_single", "combo": "pill_combo"}  # pipeline -> ensemble
ENSEMBLES = tuple(ENSEMBLE_OF.values())
INPUT_IMAGE = "IMAGE"
INPUT_TOP_K = "TOP_K"
OUTPUT_RESULT = "RESULT"
VERSION_PARAMETER = "pillsnap_model_version"
ERROR_KINDS = ("unsupported", "corrupt", "too_large")

_KIND = re.compile(r"^(?:in ensemble '[^']*', )?(unsupported|corrupt|too_large): ")


def error_kind(message: str) -> str | None:
    """``unsupported``, ``corrupt`` or ``too_large`` for a bad-upload error, else ``None``."""
    match = _KIND.match(message)
    return match.group(1) if match else None
