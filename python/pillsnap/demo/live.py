"""The demo's serving stage: start the API (embedded ONNX Runtime, or Triton behind it), send
real ``/predict`` requests for validation photos, and compare with their true K-codes.

The servers run as child processes with the same commands a user types
(``python -m pillsnap.serve api`` / ``triton``), and the requests go over real HTTP.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pillsnap.child import Child, NotReady
from pillsnap.config import PillsnapConfig
from pillsnap.data.classes import training_classes
from pillsnap.data.manifest import read_manifest
from pillsnap.errors import PillsnapError
from pillsnap.serve import API_READY_LINE


@dataclass
class Servers:
    """The children started (tritonserver first, when asked), the API's URL and key, and
    Triton's host:port when it serves."""

    children: list[Child]
    url: str
    key: str
    triton_url: str | None = None

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


def _start(name: str, command: list[str], log: Path, *, env: dict[str, str] | None,
           ready: str, timeout_s: float) -> tuple[Child, re.Match[str]]:
    """Run ``command`` with output to ``log``; wait for a line matching ``ready``."""
    child = Child.start(command, name=name, log=log, env=env, grace_s=20)
    try:
        return child, child.wait_for_output(ready, timeout_s=timeout_s, interval_s=0.2)
    except NotReady:
        child.stop()
        raise PillsnapError(f"{name} did not start (log {log}):\n{child.log_tail(20)}") from None


def start_servers(cfg: PillsnapConfig, out: Path, *, port: int, triton: bool,
                  env: dict[str, str]) -> Servers:
    """The API (and Triton when asked)."""
    key = secrets.token_urlsafe(24)
    children: list[Child] = []
    triton_url = None
    cfg_file = str(out / "config.yaml")
    api = [sys.executable, "-m", "pillsnap.serve", "api", "--cfg", cfg_file, "--port",
           str(port), "--model-path", str(cfg.export.out_dir)]
    if triton:
        from pillsnap.serve.triton_server import free_ports

        ports = free_ports()
        server, _ = _start("tritonserver", [
            sys.executable, "-m", "pillsnap.serve", "triton", "--cfg", cfg_file,
            f"triton.http_port={ports.http}", f"triton.grpc_port={ports.grpc}",
            f"triton.metrics_port={ports.metrics}"], out / "triton.log", env=env,
            ready=r"tritonserver ready", timeout_s=cfg.triton.startup_timeout_s + 30)
        triton_url = f"127.0.0.1:{ports.http}"
        children.append(server)
        api += ["--backend", "triton", "--triton-url", triton_url]
    try:
        child, found = _start("the API", api, out / "api.log", env={**env, "API_KEY": key},
                              ready=API_READY_LINE, timeout_s=120)
    except PillsnapError:
        for c in children:
            c.stop()
        raise
    children.append(child)
    return Servers(children, found[1], key, triton_url)


def validation_photos(cfg: PillsnapConfig) -> dict[str, tuple[Path, list[str]]]:
    """The first single-pill photo of a trained drug, the first combination photo and the
    first photo of a drug outside the class index (``unknown``), of the val split, with
    their true K-codes."""
    known = training_classes(cfg)
    chosen: dict[str, tuple[Path, list[str]]] = {}
    for row in read_manifest(Path(cfg.data.manifest_dir)):
        kind = row.kind
        if kind == "single" and row.pills[0].k_code not in known:
            kind = "unknown"
        if row.split == "val" and kind not in chosen:
            chosen[kind] = (Path(cfg.data.root) / row.path, sorted(p.k_code for p in row.pills))
    return chosen


def predict(url: str, key: str, photo: Path, pipeline: str) -> dict[str, Any]:
    """``POST /predict`` as multipart form data, with the API key."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{photo.name}\"\r\nContent-Type: image/png\r\n\r\n").encode()
    body += photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{url}/predict?pipeline={pipeline}&top_k=3", data=body, method="POST",
        headers={"X-API-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise PillsnapError(f"/predict answered {exc.code}: {exc.read()[:300]!r}") from None


def compare(answer: dict[str, Any], truth: list[str], *, unknown: bool = False) -> dict[str, Any]:
    """The answer against the truth: the same K-codes, or for a drug the model never
    learnt (``unknown``), every pill flagged unknown."""
    predicted = sorted(p["top1"]["k_code"] for p in answer["pills"])
    match = (bool(answer["pills"]) and all(p.get("unknown") for p in answer["pills"])
             if unknown else predicted == truth)
    return {"truth": truth, "predicted": predicted, "match": match,
            "pills": [{"k_code": p["top1"]["k_code"], "name": p["top1"]["name"]["ko"],
                       "edi_code": p["top1"]["edi_code"],
                       "confidence": round(p["top1"]["confidence"], 3),
                       "unknown": bool(p.get("unknown")),
                       "bbox": p.get("bbox")} for p in answer["pills"]],
            "recommend_combo": answer.get("recommend_combo"),
            "timing_ms": answer["timing_ms"].get("total")}


def training_photos(cfg: PillsnapConfig, k_code: str) -> list[Path]:
    """The training split's single-pill photos of ``k_code`` (a held-out drug's, to enroll
    it from), in manifest order."""
    return [Path(cfg.data.root) / row.path for row in read_manifest(Path(cfg.data.manifest_dir))
            if row.split == "train" and row.kind == "single" and row.pills[0].k_code == k_code]


def first_validation_photo(cfg: PillsnapConfig, k_code: str) -> Path | None:
    """The validation split's first single-pill photo of ``k_code``."""
    for row in read_manifest(Path(cfg.data.manifest_dir)):
        if row.split == "val" and row.kind == "single" and row.pills[0].k_code == k_code:
            return Path(cfg.data.root) / row.path
    return None
