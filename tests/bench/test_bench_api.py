"""``python -m pillsnap.bench api``: the HTTP load test through both backends (tiny models, a
few dozen requests: the figures in docs/benchmarks.md come from the full runs).

Through Triton it starts the real tritonserver and a proxy child itself, and measures the
same request sent straight to Triton (the same load, then pairs alternating); refusals are
counted by status code, and the admission queue's 503 ``overloaded`` apart from errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api_helpers import KEY, Photos, ServerProcess
from pillsnap.bench import api
from pillsnap.bench.__main__ import main as bench_main

pytestmark = pytest.mark.slow


def test_triton_backend_and_the_proxy_overhead(many_repo: Path, pill_photos: Photos,
                                               tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    figures = api.run(api.Plan(requests=24, concurrency=4, pipeline="combo",
                               repository=many_repo, image=pill_photos["combo"],
                               max_seconds=120, pairs=4), out)
    assert figures["backend"] == "triton" and figures["errors"] == 0
    for path in ("proxy", "direct_triton"):
        stats = figures[path]
        assert (stats["ok"], stats["requests"], stats["concurrency"]) == (24, 24, 4)
        assert 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
        assert stats["rps"] > 0
    assert figures["proxy"]["server_backend_ms"]["p50"] > 0
    assert figures["proxy_overhead_ms"] == pytest.approx(
        {q: figures["proxy"][q] - figures["direct_triton"][q] for q in ("p50", "p95", "p99")})
    pairs = figures["paired_c1"]
    assert pairs["pairs"] == 4 and pairs["proxy"]["p50"] > 0 and pairs["direct"]["p50"] > 0
    assert json.loads(out.read_text())["proxy"]["ok"] == 24


def test_a_running_proxy_and_refusals_by_status(api_server: ServerProcess,
                                                pill_photos: Photos, tmp_path: Path) -> None:
    photo = str(pill_photos["single"])
    out = tmp_path / "ok.json"
    assert bench_main(["api", "--url", api_server.url, "--api-key", KEY, "--image", photo,
                       "--requests", "16", "--concurrency", "4", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["proxy"]["ok"] == 16 and figures["direct_triton"] is None
    wrong = api.run(api.Plan(requests=8, concurrency=2, url=api_server.url,
                             api_key=KEY[:-1] + "X", image=pill_photos["single"]))
    assert wrong["errors"] == 8 and wrong["proxy"]["error_types"] == {"403": 8}
    assert wrong["proxy"]["ok"] == 0 and "p50" not in wrong["proxy"]


def test_admission_refusals_are_reported_apart_from_errors(exported: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    out = tmp_path / "refused.json"
    code = bench_main(["api", "--model-path", str(exported), "--requests", "32",
                       "--concurrency", "8", "--no-backoff", "--json", str(out),
                       "serve.max_concurrent=1", "serve.max_queue=1"])
    assert code == 0  # refusals are the server working as configured, not failures
    figures = json.loads(out.read_text())
    proxy = figures["proxy"]
    assert figures["server_overrides"] == ["serve.max_concurrent=1", "serve.max_queue=1"]
    assert proxy["refused"] > 0 and proxy["errors"] == 0 and figures["errors"] == 0
    assert proxy["ok"] + proxy["refused"] == 32 and proxy["error_types"] == {}
    assert proxy["retry_after_s"]["min"] >= 1 and proxy["refused_ms"]["p50"] > 0
    assert proxy["server_queue_ms"]["p50"] >= 0
    header, _, row = ([c.strip() for c in line.strip().strip("|").split("|")]
                      for line in capsys.readouterr().out.splitlines()[:3])
    cells = dict(zip(header, row, strict=True))
    assert (cells["refused"], cells["errors"]) == (str(proxy["refused"]), "0")
    assert int(cells["Retry-After s"].split("-")[0]) >= 1
    with pytest.raises(SystemExit, match="server started here"):
        api.run(api.Plan(url="http://127.0.0.1:1", server_overrides=("serve.max_queue=1",)))
