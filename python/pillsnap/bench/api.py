"""A bounded load test of the HTTP API on loopback: N requests at concurrency C.

    python -m pillsnap.bench api --model-path artifacts/export --requests 2000 --concurrency 32
    python -m pillsnap.bench api --url http://127.0.0.1:8000 --api-key KEY ...

Without ``--url`` it starts ``python -m pillsnap.serve api`` (embedded backend) as a child
on a free loopback port with a one-off key, and stops it afterwards. Reports client-side
latency percentiles, throughput and errors, and the server's own split (backend vs proxy)
from the responses' ``timing_ms``. Bounded in count and time (``--max-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pillsnap.bench.machine import describe
from pillsnap.bench.table import markdown_table


@dataclass
class Plan:
    requests: int = 2000
    concurrency: int = 32
    pipeline: str = "single"
    url: str | None = None
    api_key: str | None = None
    model_path: Path | None = None
    image: Path | None = None
    max_seconds: float = 600.0


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    backend_ms: list[float] = field(default_factory=list)
    proxy_ms: list[float] = field(default_factory=list)


def demo_photo() -> bytes:
    """A 976 x 1280 JPEG (the AIHub photo size) of a pill-like ellipse, made here."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (976, 1280), (196, 198, 200))
    ImageDraw.Draw(image).ellipse((380, 520, 600, 760), fill=(235, 235, 228),
                                  outline=(150, 150, 150), width=4)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def _load(plan: Plan, url: str, key: str, photo: bytes) -> tuple[Tally, float]:
    import httpx

    tally, counter = Tally(), iter(range(plan.requests))
    deadline = time.monotonic() + plan.max_seconds
    limits = httpx.Limits(max_connections=plan.concurrency,
                          max_keepalive_connections=plan.concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in counter:
            if time.monotonic() > deadline:
                tally.statuses["not sent (time limit)"] += 1
                continue
            start = time.perf_counter()
            try:
                response = await client.post(
                    "/predict", params={"pipeline": plan.pipeline},
                    headers={"X-API-Key": key}, files={"image": ("photo.jpg", photo)})
            except httpx.HTTPError as exc:
                tally.statuses[type(exc).__name__] += 1
                continue
            tally.latencies_ms.append((time.perf_counter() - start) * 1000)
            tally.statuses[str(response.status_code)] += 1
            if response.status_code == 200:
                timing = response.json()["timing_ms"]
                tally.backend_ms.append(timing["backend"])
                tally.proxy_ms.append(timing["total"] - timing["backend"])

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(plan.concurrency)))
        return tally, time.perf_counter() - started


@contextmanager
def _server(plan: Plan) -> Iterator[tuple[str, str]]:
    if plan.url:
        yield plan.url.rstrip("/"), plan.api_key or os.environ.get("API_KEY", "")
        return
    if plan.model_path is None:
        raise SystemExit("give --model-path (an export folder) or --url of a running server")
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "server.log"
        env = {**os.environ, "API_KEY": key}  # INFO: the access log is part of the cost
        with log.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "pillsnap.serve", "api", "--port", "0", "--env-file",
                 str(Path(work) / "none.env"), "--model-path", str(plan.model_path.resolve()),
                 "--backend", "embedded"], cwd=work, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        try:
            yield _wait_for_url(child, log), key
        finally:
            child.terminate()
            child.wait(timeout=30)


def _wait_for_url(child: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        found = re.search(r"Uvicorn running on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return found[1]
        time.sleep(0.1)
    raise SystemExit(f"the server did not start:\n{log.read_text(errors='replace')}")


def run(plan: Plan, json_path: Path | None = None) -> dict[str, Any]:
    photo = plan.image.read_bytes() if plan.image else demo_photo()
    with _server(plan) as (url, key):
        asyncio.run(_load(Plan(**{**plan.__dict__, "requests": plan.concurrency}), url, key,
                          photo))  # warm-up: connections, threads, first inference
        tally, wall = asyncio.run(_load(plan, url, key, photo))
    ok = tally.statuses.get("200", 0)
    errors = sum(n for s, n in tally.statuses.items() if s != "200")
    figures = {
        "requests": plan.requests, "concurrency": plan.concurrency, "pipeline": plan.pipeline,
        "photo_bytes": len(photo), "ok": ok, "errors": errors, "statuses": dict(tally.statuses),
        "wall_s": round(wall, 2), "throughput_rps": round(ok / wall, 1) if wall else 0.0,
        **{f"p{q}_ms": round(percentile(tally.latencies_ms, q), 1) for q in (50, 95, 99)},
        "max_ms": round(max(tally.latencies_ms, default=float("nan")), 1),
        "server_backend_p50_ms": round(percentile(tally.backend_ms, 50), 1),
        "server_proxy_p50_ms": round(percentile(tally.proxy_ms, 50), 2),
        "machine": describe(),
    }
    rows = [("requests", "concurrency", "pipeline", "ok", "errors", "req/s", "p50 ms",
             "p95 ms", "p99 ms", "max ms", "backend p50 ms", "proxy p50 ms"),
            tuple(str(figures[k]) for k in (
                "requests", "concurrency", "pipeline", "ok", "errors", "throughput_rps",
                "p50_ms", "p95_ms", "p99_ms", "max_ms", "server_backend_p50_ms",
                "server_proxy_p50_ms"))]
    print(markdown_table(rows))
    print(f"machine: {json.dumps(figures['machine'])}")
    if errors:
        print(f"errors by status: {json.dumps(dict(tally.statuses))}")
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def add_parser(sub: Any) -> None:
    api = sub.add_parser("api", help="HTTP load test of /predict on loopback (bounded)")
    api.add_argument("--requests", type=int, default=2000)
    api.add_argument("--concurrency", type=int, default=32)
    api.add_argument("--pipeline", choices=["single", "combo"], default="single")
    api.add_argument("--model-path", type=Path, help="export folder: start a server on it")
    api.add_argument("--url", help="a running server instead (with --api-key or API_KEY)")
    api.add_argument("--api-key")
    api.add_argument("--image", type=Path, help="the photo to send (default: a generated "
                     "976x1280 JPEG)")
    api.add_argument("--max-seconds", type=float, default=600.0)
    api.add_argument("--json", type=Path, help="write the figures as JSON")


def main(args: argparse.Namespace) -> int:
    figures = run(Plan(requests=args.requests, concurrency=args.concurrency,
                       pipeline=args.pipeline, url=args.url, api_key=args.api_key,
                       model_path=args.model_path, image=args.image,
                       max_seconds=args.max_seconds), args.json)
    return 1 if figures["errors"] else 0
