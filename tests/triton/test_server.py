"""The repository in the real tritonserver (bundled binary, CPU configs), over real HTTP.

    PYTHONPATH=python python -m pytest tests/triton/test_server.py -q

pill_single and pill_combo must answer as the in-process OnnxPipeline does on the same
export: same pills (top-1, candidates, confidences), boxes within IoU 0.95, same reason and
recommend_combo; bad uploads fail with their kind; a broken model stops start-up with a
message that names it. Servers: see conftest.py (started once per module, about 2 s each).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

import pillsnap
from pillsnap.config.schema import TritonConfig
from pillsnap.contract import ops
from pillsnap.errors import ServerError
from pillsnap.infer.bundle import load_bundle
from pillsnap.infer.pipeline import OnnxPipeline
from pillsnap.infer.triton_contract import error_kind
from pillsnap.serve.triton_server import TritonLaunch, TritonServer

REPO = Path(__file__).resolve().parents[2]

TOP_K = 3


def ask(server: TritonServer, model: str, data: bytes, top_k: int = TOP_K) -> dict[str, Any]:
    image = httpclient.InferInput("IMAGE", [len(data)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
    k = httpclient.InferInput("TOP_K", [1], "INT32")
    k.set_data_from_numpy(np.array([top_k], dtype=np.int32))
    # closed after each call: Triton's stop waits for open keep-alive connections
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        result = client.infer(model, [image, k]).as_numpy("RESULT")
    finally:
        client.close()
    assert result.shape == (1,)
    return json.loads(result[0].decode("utf-8"))


def same_answer(triton: dict[str, Any], local: dict[str, Any]) -> None:
    assert triton.keys() == {"pills", "reason", "recommend_combo", "image"}
    assert (triton["reason"], triton["recommend_combo"], triton["image"]) == \
        (local["reason"], local["recommend_combo"], local["image"])
    assert len(triton["pills"]) == len(local["pills"])
    for ours, ref in zip(triton["pills"], local["pills"], strict=True):
        assert ours.keys() == ref.keys()
        assert ours["top1"]["k_code"] == ref["top1"]["k_code"]
        assert [c["k_code"] for c in ours["candidates"]] == \
            [c["k_code"] for c in ref["candidates"]]
        assert [c["confidence"] for c in ours["candidates"]] == pytest.approx(
            [c["confidence"] for c in ref["candidates"]], abs=1e-5)
        if "bbox" in ref:
            assert ops.box_iou(np.array(ours["bbox"]), np.array(ref["bbox"]))[0, 0] >= 0.95
    assert triton["pills"] == local["pills"]  # same code, same numbers: exactly equal here


@pytest.fixture(scope="module")
def test_photos(trained: dict[str, Path]) -> list[bytes]:
    aihub = trained["base"] / "aihub"
    picked = sorted(aihub.rglob("*_조합/*/*.png"))[:2] + sorted(aihub.rglob("*_단일/*/*.png"))[:1]
    return [p.read_bytes() for p in picked]


def test_no_pill_found(zero_server: TritonServer, exported: Path,
                       test_photos: list[bytes]) -> None:
    """At the exported threshold the tiny detector finds nothing: combo answers an empty
    list with a reason, single classifies the whole photo and says so."""
    pipe = OnnxPipeline.open(exported)
    for data in test_photos:
        combo = ask(zero_server, "pill_combo", data)
        same_answer(combo, pipe.predict(data, pipeline="combo", top_k=TOP_K))
        assert combo["pills"] == [] and combo["reason"] == ops.NO_PILL
        single = ask(zero_server, "pill_single", data)
        same_answer(single, pipe.predict(data, pipeline="single", top_k=TOP_K))
        assert len(single["pills"]) == 1 and single["reason"] == ops.WHOLE_PHOTO


def test_more_pills_than_the_classifier_s_max_batch(many_server: TritonServer,
                                                    many_export: Path,
                                                    test_photos: list[bytes],
                                                    classifier_max_batch: int) -> None:
    pipe = OnnxPipeline.open(many_export)
    for data in test_photos:
        combo = ask(many_server, "pill_combo", data)
        same_answer(combo, pipe.predict(data, pipeline="combo", top_k=TOP_K))
        assert len(combo["pills"]) > classifier_max_batch and combo["recommend_combo"] is False
        single = ask(many_server, "pill_single", data, top_k=1)
        same_answer(single, pipe.predict(data, pipeline="single", top_k=1))
        assert single["recommend_combo"] is True and len(single["pills"]) == 1
        assert single["pills"][0]["bbox"] == combo["pills"][0]["bbox"]  # the best box


def test_bad_uploads_fail_with_their_kind(zero_server: TritonServer,
                                          test_photos: list[bytes]) -> None:
    big = io.BytesIO()
    Image.new("RGB", (400, 300)).save(big, "PNG")  # 120,000 pixels; serve.max_pixels=100,000
    cases = {b"%PDF-1.4 not a photo": "unsupported", test_photos[0][:200]: "corrupt",
             b"": "unsupported", big.getvalue(): "too_large"}
    for data, kind in cases.items():
        for model in ("pill_single", "pill_combo"):
            with pytest.raises(InferenceServerException) as info:
                ask(zero_server, model, data)
            assert info.value.status() == "400", info.value
            assert error_kind(info.value.message()) == kind, info.value.message()


def test_version_readiness_and_restricted_admin_api(zero_server: TritonServer,
                                                    exported: Path) -> None:
    client = httpclient.InferenceServerClient(zero_server.url.removeprefix("http://"))
    version = load_bundle(exported).model_version
    for model in ("pill_single", "pill_combo"):
        assert client.is_model_ready(model)
        params = client.get_model_config(model)["parameters"]
        assert params["pillsnap_model_version"]["string_value"] == version
    client.close()
    index = f"{zero_server.url}/v2/repository/index"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(urllib.request.Request(index, data=b"{}"), timeout=5)
    assert denied.value.code == 403
    header = {zero_server.launch.admin_header: zero_server.launch.admin_key}
    with urllib.request.urlopen(urllib.request.Request(index, data=b"{}", headers=header),
                                timeout=5) as allowed:
        assert {m["name"] for m in json.load(allowed)} >= {"pill_single", "pill_combo"}


def test_a_broken_model_file_stops_start_up_with_a_clear_message(
        zero_repo: Path, tmp_path: Path, triton_launch: Callable[..., TritonLaunch]) -> None:
    broken = tmp_path / "triton_models"
    shutil.copytree(zero_repo, broken)
    model = broken / "classifier" / "1" / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ServerError) as info, TritonServer(triton_launch(broken)):
        pass
    message = str(info.value)
    assert "exited with code" in message and "classifier: " in message
    assert f"cannot load ONNX model {model}" in message
    assert "--- last lines of" in message


def test_the_cli_serves_until_sigint(zero_repo: Path,
                                    triton_launch: Callable[..., TritonLaunch]) -> None:
    ports = triton_launch(zero_repo).ports
    command = [sys.executable, "-m", "pillsnap.serve", "triton", "--repository", str(zero_repo),
               f"triton.http_port={ports.http}", f"triton.grpc_port={ports.grpc}",
               f"triton.metrics_port={ports.metrics}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        while ready and "ready" not in ready:
            ready = proc.stdout.readline()
        assert f"http {ports.http}" in ready and "pill_single, pill_combo" in ready, ready
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "tritonserver stopped" in rest, rest
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{ports.http}/v2/health/live", timeout=2)


def test_docker_command(zero_repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pillsnap.serve", "triton", "--docker",
                           "--repository", str(zero_repo)], capture_output=True, text=True,
                          check=True)
    t = TritonConfig()
    run = shlex.split(done.stdout)
    assert run[:4] == ["docker", "run", "--gpus", "all"]
    # the project's image runs tritonserver itself: nothing installed at start, no network
    assert run[run.index(t.docker_image) + 1] == "tritonserver"
    assert "pip" not in run and "bash" not in run
    for flag in ("--model-control-mode=none", "--disable-auto-complete-config",
                 "--strict-readiness=true", "-p8100:8100", f"{zero_repo}:/models:ro"):
        assert flag in run, flag
    assert "--model-config-name=cpu" not in done.stdout  # the GPU configs
    build = done.stderr.split(": ", 1)[1].strip()  # how to build that image, once
    assert build == (f"docker build -f deploy/triton/Dockerfile --build-arg "
                     f"BASE={t.base_image} -t {t.docker_image} .")


def test_gpu_server_on_the_host_gets_a_shm_prefix_of_its_own(zero_repo: Path,
                                                             tmp_path: Path) -> None:
    """``--gpu`` runs the tritonserver on PATH (the NGC image's, not here: a stand-in that
    records its arguments and exits); its python stubs' regions carry a prefix of its own,
    so two servers on one machine do not collide and reaping finds them."""
    fake = tmp_path / "tritonserver"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "args"}\nexit 1\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "pillsnap.serve", "triton", "--gpu",
                           "--repository", str(zero_repo), "triton.restart=never"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    args = (tmp_path / "args").read_text().splitlines()
    prefixes = [a for a in args if a.startswith("--backend-config=python,shm-region-prefix-")]
    assert len(prefixes) == 1 and prefixes[0].endswith("_")
    assert "--model-config-name=cpu" not in args  # the GPU configs


def test_the_gpu_image_s_dockerfile_matches_the_config() -> None:
    """deploy/triton/Dockerfile starts from triton.base_image, copies only what
    .dockerignore lets into the build context, and the image's tag is this version."""
    t = TritonConfig()
    text = (REPO / "deploy" / "triton" / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG BASE={t.base_image}\n" in text
    assert t.docker_image == f"pillsnap-triton:{pillsnap.__version__}"
    context = [line for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
                assert f"!{source}" in context or f"!{source}/" in context, source
