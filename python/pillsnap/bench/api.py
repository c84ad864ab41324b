"""A bounded load test of the HTTP API on loopback: N requests at concurrency C.

    python -m pillsnap.bench api --model-path artifacts/export --requests 2000 --concurrency 32
    python -m pillsnap.bench api --repository triton_models --requests 2000 --concurrency 32
    python -m pillsnap.bench api --triton-url 127.0.0.1:8100 ...
    python -m pillsnap.bench api --url http://127.0.0.1:8000 --api-key KEY [--triton-url H:P]
    python -m pillsnap.bench api --model-path artifacts/export serve.max_queue=4

Without ``--url`` it starts ``python -m pillsnap.serve api`` as a child on a free loopback
port with a one-off key, and stops it afterwards: the embedded backend on ``--model-path``,
or the Triton backend in front of ``--triton-url`` (a running tritonserver) or of a
tritonserver it starts on ``--repository`` (bundled binary, CPU configs); dotted
``serve.key=value`` arguments go to that server (``serve.max_queue``, ``serve.max_concurrent``:
admission control). With Triton, the
same photo is then sent straight to Triton's HTTP endpoint (tritonclient's asyncio client,
the same count and concurrency) and the report gives the proxy's overhead over that direct
call; then ``--pairs`` requests each way alternate at concurrency 1, so both see the same
background load (on a shared machine, runs one after the other do not), and the paired
differences give the latency the proxy adds to one request.

Reports client-side latency percentiles of the answered requests, throughput, refusals
(503 ``overloaded``: the admission queue was full) apart from errors (by status), with the
time a refusal took and the ``Retry-After`` values seen, the server's own split (queue wait,
backend, the rest of the proxy) from the responses' ``timing_ms``, and the CPU time per request
of each process (the load generator, a proxy and a tritonserver started here: on a few
shared cores that is where the time goes). The load is a closed
loop (``bench/load.py``), bounded in count and time (``--max-seconds``); a client that is
refused waits the ``Retry-After`` before its next request, as the README asks of clients
(``--no-backoff``: at once, a retry storm). Exit status 1 when a request failed; refusals
are the server working as configured, not failures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pillsnap.bench.cpu import cpu_seconds
from pillsnap.bench.latency import percentiles
from pillsnap.bench.load import closed_loop
from pillsnap.bench.machine import describe
from pillsnap.bench.table import markdown_table
from pillsnap.child import Child, NotReady
from pillsnap.infer.triton_contract import ENSEMBLE_OF
from pillsnap.serve import API_READY_LINE

TOP_K = 5
WARMUP_PAIRS = 3
OVERLOADED = "overloaded"  # the error kind of a refusal by the server's admission queue
Meter = Callable[[], dict[str, float | None]]  # CPU seconds so far, per process


@dataclass(frozen=True)
class Plan:
    requests: int = 2000
    concurrency: int = 32
    pipeline: str = "single"
    url: str | None = None  # a running proxy
    api_key: str | None = None
    model_path: Path | None = None  # start a proxy, embedded backend
    repository: Path | None = None  # start tritonserver and a proxy in front of it
    triton_url: str | None = None  # a running tritonserver (host:port of its HTTP endpoint)
    image: Path | None = None
    max_seconds: float = 600.0
    pairs: int = 100  # with Triton: proxy and direct requests alternating at concurrency 1
    server_overrides: tuple[str, ...] = ()  # serve.key=value for the proxy started here
    backoff: bool = True  # a refused client waits its Retry-After before the next request

    @property
    def backend(self) -> str:
        if self.url:
            return "triton" if self.triton_url else "the running proxy's"
        return "triton" if self.repository or self.triton_url else "embedded"

    def check(self) -> None:
        sources = [s for s in (self.model_path, self.repository, self.triton_url) if s]
        if self.url and (self.model_path or self.repository):
            raise SystemExit("--url measures a running proxy: leave out --model-path and "
                             "--repository (--triton-url adds the direct Triton run)")
        if not self.url and len(sources) != 1:
            raise SystemExit("give one of --model-path (embedded backend), --repository or "
                             "--triton-url (Triton backend), or --url of a running proxy")
        if self.url and self.server_overrides:
            raise SystemExit("serve.key=value settings are for the server started here; "
                             "--url measures a running one as it is configured")


class Refused(Exception):
    """An HTTP answer other than 200, counted under its status code (and error kind, for
    the admission queue's 503 ``overloaded``)."""

    def __init__(self, status: int, kind: str | None = None) -> None:
        super().__init__(status, kind)
        self.status, self.kind = status, kind

    @property
    def key(self) -> str:
        return f"{self.status} {OVERLOADED}" if self.kind == OVERLOADED else str(self.status)


def _error_key(exc: Exception) -> str:
    return exc.key if isinstance(exc, Refused) else type(exc).__name__


@dataclass
class Seen:
    """What the proxy's answers said, for the measured requests (the warm-up's cleared)."""

    backend_ms: list[float] = field(default_factory=list)
    queue_ms: list[float] = field(default_factory=list)
    proxy_ms: list[float] = field(default_factory=list)  # the rest of the request in the proxy
    refused_ms: list[float] = field(default_factory=list)  # client time to a 503 overloaded
    retry_after_s: list[int] = field(default_factory=list)

    def clear(self) -> None:
        for samples in vars(self).values():
            samples.clear()


def demo_photo() -> bytes:
    """A 976 x 1280 JPEG (the AIHub photo size) of a pill-like ellipse, made here."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (976, 1280), (196, 198, 200))
    ImageDraw.Draw(image).ellipse((380, 520, 600, 760), fill=(235, 235, 228),
                                  outline=(150, 150, 150), width=4)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


# ---------------------------------------------------------------------------- the load


async def proxy_load(plan: Plan, url: str, key: str, photo: bytes,
                     meter: Meter) -> dict[str, Any]:
    """``POST /predict`` through the proxy; adds the server's own backend / proxy split.

    aiohttp, as tritonclient's asyncio client uses for the direct run: the same client
    stack on both sides of the comparison, and the multipart body built once, as the
    direct run's request is.
    """
    import aiohttp

    seen = Seen()
    connector = aiohttp.TCPConnector(limit=plan.concurrency)
    async with aiohttp.ClientSession(url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        send = proxy_sender(session, plan, key, photo, seen=seen)
        stats = await _warm_then_measure(send, plan, meter, before_measuring=seen.clear)
    # refusals are the admission queue at work, counted apart from the errors
    stats["refused"] = stats["error_types"].pop(f"503 {OVERLOADED}", 0)
    stats["errors"] -= stats["refused"]
    if seen.refused_ms:
        stats["refused_ms"] = {**percentiles(seen.refused_ms), "max": max(seen.refused_ms)}
    if seen.retry_after_s:
        stats["retry_after_s"] = {"min": min(seen.retry_after_s),
                                  "max": max(seen.retry_after_s)}
    for name in ("backend", "queue", "proxy"):
        samples = getattr(seen, f"{name}_ms")
        stats[f"server_{name}_ms"] = percentiles(samples) if samples else {}
    return stats


def proxy_sender(session: Any, plan: Plan, key: str, photo: bytes, *,
                 seen: Seen | None = None) -> Callable[[], Awaitable[None]]:
    """One ``POST /predict`` on an aiohttp session; records the server's timing split and
    refusals in ``seen``. A refused sender waits the Retry-After first (``plan.backoff``)."""
    body, content_type = multipart_body("image", "photo.jpg", photo)
    headers = {"X-API-Key": key, "Content-Type": content_type}
    params = {"pipeline": plan.pipeline, "top_k": str(TOP_K)}

    async def send() -> None:
        started = time.perf_counter()
        async with session.post("/predict", params=params, data=body,
                                headers=headers) as response:
            answer = await response.read()
            status, retry_after = response.status, response.headers.get("Retry-After", "")
        if status != 200:
            refused = Refused(status, _kind(answer))
            if refused.kind == OVERLOADED:
                wait = int(retry_after) if retry_after.isdigit() else 0
                if seen is not None:
                    seen.refused_ms.append((time.perf_counter() - started) * 1000)
                    if wait:
                        seen.retry_after_s.append(wait)
                if plan.backoff:
                    await asyncio.sleep(wait)
            raise refused
        if seen is not None:
            timing = json.loads(answer)["timing_ms"]
            queue = timing.get("queue", 0.0)  # a proxy from before admission control has none
            seen.backend_ms.append(timing["backend"])
            seen.queue_ms.append(queue)
            seen.proxy_ms.append(timing["total"] - timing["backend"] - queue)

    return send


def _kind(answer: bytes) -> str | None:
    """The ``kind`` of the proxy's JSON error body (None for any other body)."""
    try:
        body = json.loads(answer)
    except ValueError:
        return None
    return body.get("kind") if isinstance(body, dict) else None


def multipart_body(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its Content-Type."""
    boundary = secrets.token_hex(16)
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    return (head.encode() + data + f"\r\n--{boundary}--\r\n".encode(),
            f"multipart/form-data; boundary={boundary}")


async def direct_load(plan: Plan, host: str, photo: bytes, meter: Meter) -> dict[str, Any]:
    """The same request straight to Triton's HTTP endpoint (tritonclient, asyncio)."""
    import tritonclient.http.aio as aioclient

    from pillsnap.bench.serve import triton_inputs

    client = aioclient.InferenceServerClient(host, conn_limit=plan.concurrency)
    inputs = triton_inputs(aioclient, photo, TOP_K)
    model = ENSEMBLE_OF[plan.pipeline]
    try:
        return await _warm_then_measure(lambda: client.infer(model, inputs), plan, meter)
    finally:
        await client.close()  # Triton's stop waits for open connections


async def paired(plan: Plan, url: str, key: str, host: str, photo: bytes) -> dict[str, Any]:
    """``plan.pairs`` requests through the proxy and as many straight to Triton, alternating
    one by one at concurrency 1 (which goes first alternates too); a failure raises."""
    import aiohttp
    import tritonclient.http.aio as aioclient

    from pillsnap.bench.serve import triton_inputs

    client = aioclient.InferenceServerClient(host, conn_limit=1)
    inputs = triton_inputs(aioclient, photo, TOP_K)
    model = ENSEMBLE_OF[plan.pipeline]
    times: dict[str, list[float]] = {"proxy": [], "direct": []}
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=60)) as session:
        sends = {"proxy": proxy_sender(session, plan, key, photo),
                 "direct": lambda: client.infer(model, inputs)}
        try:
            for i in range(-WARMUP_PAIRS, plan.pairs):
                for name in ("proxy", "direct") if i % 2 == 0 else ("direct", "proxy"):
                    started = time.perf_counter()
                    await sends[name]()
                    if i >= 0:
                        times[name].append((time.perf_counter() - started) * 1000)
        finally:
            await client.close()
    differences = [p - d for p, d in zip(times["proxy"], times["direct"], strict=True)]
    return {"pairs": plan.pairs, "proxy": percentiles(times["proxy"]),
            "direct": percentiles(times["direct"]), "difference": percentiles(differences)}


async def _warm_then_measure(send: Any, plan: Plan, meter: Meter,
                             before_measuring: Callable[[], None] | None = None) -> dict[str, Any]:
    # warm-up: one request per client (connections, threads, the first inference)
    await closed_loop(send, total=plan.concurrency, concurrency=plan.concurrency,
                      max_seconds=plan.max_seconds, error_key=_error_key)
    if before_measuring is not None:
        before_measuring()
    before = meter()
    stats = await closed_loop(send, total=plan.requests, concurrency=plan.concurrency,
                              max_seconds=plan.max_seconds, error_key=_error_key)
    after, ok = meter(), max(1, stats["ok"])
    stats["cpu_ms_per_request"] = {name: round((after[name] - start) * 1000 / ok, 2)
                                   for name, start in before.items()
                                   if start is not None and after[name] is not None}
    return stats


# ---------------------------------------------------------------------------- the servers


@contextmanager
def _proxy(plan: Plan, triton_host: str | None) -> Iterator[tuple[str, str, int | None]]:
    """The proxy's URL, key and process ID: the one given (no ID), or a child started here."""
    if plan.url:
        yield plan.url.rstrip("/"), plan.api_key or os.environ.get("API_KEY", ""), None
        return
    key = secrets.token_urlsafe(24)
    backend = (["--backend", "triton", "--triton-url", triton_host] if triton_host else
               ["--backend", "embedded", "--model-path", str(Path(plan.model_path or
                                                                  ".").resolve())])
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "API_KEY": key}  # INFO: the access log is part of the cost
        command = [sys.executable, "-m", "pillsnap.serve", "api", "--port", "0", "--env-file",
                   str(Path(work) / "none.env"), *backend, *plan.server_overrides]
        with Child.start(command, name="the server", log=Path(work) / "server.log", cwd=work,
                         env=env, grace_s=30) as server:
            try:
                url = server.wait_for_output(API_READY_LINE, timeout_s=120)[1]
            except NotReady:
                raise SystemExit(f"the server did not start:\n{server.log_text()}") from None
            yield url, key, server.pid


def _triton(plan: Plan, stack: ExitStack) -> tuple[str | None, int | None]:
    """host:port of Triton's HTTP endpoint (the one given, one started here, or None) and,
    when started here, its process group (tritonserver and its python backend stubs)."""
    if plan.triton_url:
        return plan.triton_url.removeprefix("http://").rstrip("/"), None
    if plan.repository is None:
        return None, None
    from pillsnap.serve.triton_server import TritonLaunch, TritonServer, free_ports

    server = stack.enter_context(TritonServer(TritonLaunch(plan.repository, free_ports())))
    assert server.child is not None  # its own session: the group ID is its PID
    return server.url.removeprefix("http://"), server.child.pid


def _meter(proxy_pid: int | None, triton_group: int | None) -> Meter:
    def read() -> dict[str, float | None]:
        return {"load generator": time.process_time(),
                "proxy": cpu_seconds(proxy_pid) if proxy_pid else None,
                "tritonserver": cpu_seconds(triton_group, group=True) if triton_group else None}
    return read


# ---------------------------------------------------------------------------- the report


def run(plan: Plan, json_path: Path | None = None) -> dict[str, Any]:
    plan.check()
    photo = plan.image.read_bytes() if plan.image else demo_photo()
    with ExitStack() as stack:  # closes the proxy first: Triton's stop waits for its pool
        triton_host, triton_group = _triton(plan, stack)
        url, key, proxy_pid = stack.enter_context(_proxy(plan, triton_host))
        meter = _meter(proxy_pid, triton_group)
        proxy = asyncio.run(proxy_load(plan, url, key, photo, meter))
        direct = pairs = None
        if triton_host:
            direct = asyncio.run(direct_load(plan, triton_host, photo, meter))
            if plan.pairs > 0:
                pairs = asyncio.run(paired(plan, url, key, triton_host, photo))
    figures: dict[str, Any] = {
        "backend": plan.backend, "pipeline": plan.pipeline, "requests": plan.requests,
        "concurrency": plan.concurrency, "top_k": TOP_K, "photo_bytes": len(photo),
        "server_overrides": list(plan.server_overrides), "backoff": plan.backoff,
        "proxy": proxy, "direct_triton": direct, "paired_c1": pairs, "machine": describe(),
        "refused": proxy["refused"], "errors": proxy["errors"] + proxy["not_sent"]
        + (direct["errors"] + direct["not_sent"] if direct else 0)}
    if direct is not None and proxy["ok"] and direct["ok"]:
        figures["proxy_overhead_ms"] = {q: proxy[q] - direct[q] for q in ("p50", "p95", "p99")}
    print_report(figures)
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _row(name: str, plan: dict[str, Any], s: dict[str, Any]) -> tuple[str, ...]:
    def ms(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    retry = s.get("retry_after_s")
    retry_text = "-" if not retry else (str(retry["min"]) if retry["min"] == retry["max"]
                                        else f"{retry['min']}-{retry['max']}")
    return (name, plan["pipeline"], str(s["requests"]), str(s["concurrency"]), str(s["ok"]),
            str(s["refused"]) if "refused" in s else "-", str(s["errors"] + s["not_sent"]),
            f"{s['rps']:.1f}", ms(s.get("p50")), ms(s.get("p95")), ms(s.get("p99")),
            ms(s.get("max")), ms(s.get("refused_ms", {}).get("p50")), retry_text,
            ms(s.get("server_queue_ms", {}).get("p50")),
            ms(s.get("server_backend_ms", {}).get("p50")),
            ms(s.get("server_proxy_ms", {}).get("p50"), 2))


def print_report(figures: dict[str, Any]) -> None:
    """The table (latency of the answered requests; refusals apart), then the details."""
    rows = [("path", "pipeline", "requests", "concurrency", "ok", "refused", "errors", "req/s",
             "p50 ms", "p95 ms", "p99 ms", "max ms", "refusal p50 ms", "Retry-After s",
             "queue p50 ms", "backend p50 ms", "proxy p50 ms"),
            _row(f"proxy ({figures['backend']} backend)", figures, figures["proxy"])]
    if figures["direct_triton"] is not None:
        rows.append(_row("Triton HTTP, direct", figures, figures["direct_triton"]))
    print(markdown_table(rows))
    overhead = figures.get("proxy_overhead_ms")
    if overhead:
        print("proxy overhead over a direct Triton call: " + ", ".join(
            f"{q} {v:+.1f} ms" for q, v in overhead.items()) + "; throughput "
            f"{figures['proxy']['rps']:.1f} vs {figures['direct_triton']['rps']:.1f} req/s")
    pairs = figures.get("paired_c1")
    if pairs:
        p, d, diff = pairs["proxy"], pairs["direct"], pairs["difference"]
        print(f"{pairs['pairs']} pairs alternating at concurrency 1: proxy p50 {p['p50']:.1f} / "
              f"p95 {p['p95']:.1f} ms, direct p50 {d['p50']:.1f} / p95 {d['p95']:.1f} ms; "
              f"proxy minus direct, per pair: p50 {diff['p50']:+.1f} ms, p95 "
              f"{diff['p95']:+.1f} ms, mean {diff['mean']:+.1f} ms")
    for name, label in (("proxy", "through the proxy"), ("direct_triton", "direct")):
        s = figures[name]
        if s is not None and s["cpu_ms_per_request"]:
            print(f"CPU ms per request, {label}: " + ", ".join(
                f"{who} {ms:.1f}" for who, ms in s["cpu_ms_per_request"].items()))
    if figures["server_overrides"]:
        print(f"server started with: {' '.join(figures['server_overrides'])}")
    if figures["refused"]:
        backoff = "waited the Retry-After" if figures["backoff"] else "retried at once"
        print(f"refused (503 overloaded, the admission queue full): {figures['refused']}; "
              f"refused clients {backoff}")
    print(f"machine: {json.dumps(figures['machine'])}")
    for name in ("proxy", "direct_triton"):
        s = figures[name]
        if s is not None and (s["errors"] or s["not_sent"]):
            print(f"{name} errors: {json.dumps(s['error_types'])}; not sent (time limit): "
                  f"{s['not_sent']}")


def add_parser(sub: Any) -> None:
    api = sub.add_parser("api", help="HTTP load test of /predict on loopback (bounded); with "
                         "Triton, also the proxy's overhead over a direct Triton call")
    api.add_argument("--requests", type=int, default=2000)
    api.add_argument("--concurrency", type=int, default=32)
    api.add_argument("--pipeline", choices=["single", "combo"], default="single")
    api.add_argument("--model-path", type=Path, help="export folder: start a proxy on it "
                     "(embedded backend)")
    api.add_argument("--repository", type=Path, help="Triton model repository: start "
                     "tritonserver on it (CPU) and a proxy in front (Triton backend)")
    api.add_argument("--triton-url", help="host:port of a running tritonserver: start a proxy "
                     "in front of it, or with --url, the Triton behind that proxy")
    api.add_argument("--url", help="a running proxy instead (with --api-key or API_KEY)")
    api.add_argument("--api-key")
    api.add_argument("--image", type=Path, help="the photo to send (default: a generated "
                     "976x1280 JPEG)")
    api.add_argument("--max-seconds", type=float, default=600.0,
                     help="per run: requests not sent by then count as errors")
    api.add_argument("--pairs", type=int, default=100,
                     help="with Triton: then this many requests each way, alternating at "
                     "concurrency 1 (0: skip)")
    api.add_argument("--no-backoff", dest="backoff", action="store_false",
                     help="a refused client sends its next request at once instead of "
                     "waiting the Retry-After")
    api.add_argument("--json", type=Path, help="write the figures as JSON")
    api.add_argument("overrides", nargs="*", metavar="serve.KEY=VALUE",
                     help="settings of the server started here, e.g. serve.max_queue=4 "
                     "serve.max_concurrent=2 (admission control)")


def main(args: argparse.Namespace) -> int:
    """Runs the plan; exit status 1 when a request failed (refusals are not failures)."""
    from pillsnap.config.cli import is_override

    wrong = [o for o in args.overrides if not is_override(o)]
    if wrong:
        raise SystemExit(f"not a section.key=value setting: {' '.join(wrong)}")
    figures = run(Plan(requests=args.requests, concurrency=args.concurrency,
                       pipeline=args.pipeline, url=args.url, api_key=args.api_key,
                       model_path=args.model_path, repository=args.repository,
                       triton_url=args.triton_url, image=args.image,
                       max_seconds=args.max_seconds, pairs=args.pairs,
                       server_overrides=tuple(args.overrides), backoff=args.backoff),
                  args.json)
    return 1 if figures["errors"] else 0

