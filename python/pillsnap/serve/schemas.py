"""Response bodies (the API contract: README.md, "API"), as pydantic models for the OpenAPI schema.

Candidates allow extra fields: a newer model's metadata passes through without a server
release.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Pipeline = Literal["single", "combo"]


class Names(BaseModel):
    ko: str | None = None
    en: str | None = None


class Imprints(BaseModel):
    front: str | None = None
    back: str | None = None


class Candidate(BaseModel):
    model_config = ConfigDict(extra="allow")

    k_code: str = Field(description="the class: AIHub K-code, e.g. K-001900")
    edi_code: str | None = Field(description="the first EDI (insurance) code, if any")
    edi_codes: list[str] = Field(description="every EDI code of this K-code")
    name: Names
    company: Names
    shape: str | None = None
    colors: list[str] = []
    imprints: Imprints = Imprints()
    form: str | None = None
    confidence: float = Field(ge=0.0, le=1.0, description="calibrated probability")


class NearTwin(BaseModel):
    k_code: str = Field(description="a runner-up that looks like the top-1 in the drug table "
                        "(same shape and colours)")
    name: Names
    confidence: float = Field(ge=0.0, le=1.0)
    differs_by: list[str] = Field(description="what tells it from the top-1 in the drug "
                                  "table, e.g. \"imprint (front): 'AB 10' vs 'AB 20'\"")


class Pill(BaseModel):
    bbox: list[float] | None = Field(None, description="combo: [x0, y0, x1, y1] in pixels of "
                                     "the upright photo")
    det_confidence: float | None = Field(None, description="combo: detector score")
    low_confidence: bool = Field(description="top1 confidence under serve.low_confidence")
    unknown: bool = Field(False, description="the pill looks unlike every drug the model "
                          "knows (open-set score under the threshold fitted at training): "
                          "treat top1 as the nearest known drug, not an identification")
    open_set_score: float | None = Field(None, description="how much the pill looks like a "
                                         "known drug (higher: more); null for a model "
                                         "exported without an open-set threshold")
    top1: Candidate
    candidates: list[Candidate]
    near_twins: list[NearTwin] = Field([], description="candidates that look like top1 and "
                                       "hold a real share of the confidence: check what tells "
                                       "them apart before trusting top1")


class ImageSize(BaseModel):
    width: int
    height: int


class Prediction(BaseModel):
    pipeline: Pipeline
    model_version: str
    image: ImageSize | None = None
    pills: list[Pill]
    reason: str | None = Field(None, description="why pills is empty, e.g. 'no pill found'")
    recommend_combo: bool = Field(description="single mode saw signs of several pills; it "
                                  "never switches pipeline by itself")
    low_confidence: bool = Field(description="some pill's top1 is under the threshold")
    unknown: bool = Field(False, description="some pill is unlike every known drug")
    timing_ms: dict[str, float] = Field(description="per stage: read (upload), queue (the "
                                        "wait for a free worker; not in /batch items), the "
                                        "backend's stages, backend (its wall time seen by the "
                                        "proxy), total (the whole request in the proxy)")


class PredictResponse(Prediction):
    request_id: str


class ItemError(BaseModel):
    kind: str
    detail: str


class BatchItem(BaseModel):
    index: int
    filename: str | None = None
    status: int = Field(description="what /predict would have answered for this image")
    prediction: Prediction | None = None
    error: ItemError | None = None


class BatchResponse(BaseModel):
    request_id: str
    pipeline: Pipeline
    items: list[BatchItem]
    timing_ms: dict[str, float]


class ErrorBody(BaseModel):
    detail: Any
    kind: str = Field(description="stable error kind, e.g. corrupt_image, backend_unavailable, "
                      "overloaded (503 with Retry-After: the server's queue is full)")
    request_id: str | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    backend: str
    detail: str
    pipelines: list[str]


class Version(BaseModel):
    code_version: str
    model_version: str | None
    backend: str
    pipelines: list[str]


# Sent with 503 "overloaded" (the admission queue is full), not with the other 503 kinds.
RETRY_AFTER = {"Retry-After": {
    "description": "with kind overloaded: seconds to wait before trying again (at least 1)",
    "schema": {"type": "integer", "minimum": 1}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, **({"headers": RETRY_AFTER} if code == 503 else {})}
            for code in codes}
