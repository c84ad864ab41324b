"""PillSnap's main job end to end on small generated data, each stage timed.

    python -m pillsnap.demo                      # demo_run/: build, train, export, serve
    python -m pillsnap.demo --triton             # the API in front of a tritonserver
    python -m pillsnap.demo --stop               # stop the servers after the predictions
    python -m pillsnap.demo --profile quick      # CI's reduced size (a few minutes)
    python -m pillsnap.demo --profile lookalike  # drugs told apart by imprint alone (longer)

Stages: a synthetic dataset in the exact AIHub layout -> scan -> packs and the YOLO view ->
the classifier and the detector trained with the demo configs -> ONNX export with parity
checks and the Triton repository -> the API (embedded ONNX Runtime by default) -> a real
``/predict`` for a validation single-pill photo and a combination photo, printed next to
their true K-codes. The server then keeps running (the web page's URL and the one-off API
key are printed) until Ctrl-C, unless ``--stop``. ``<out>/demo_result.json`` keeps the
answers and the stage times.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pillsnap.cli import run_main
from pillsnap.config.paths import windows_path_hint
from pillsnap.logs import setup_logging

if TYPE_CHECKING:
    from pillsnap.demo.live import Servers

logger = logging.getLogger("pillsnap.demo")


class Stages:
    """Runs named stages, printing and recording how long each took."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        result = fn()
        self.times[name] = round(time.perf_counter() - started, 1)
        print(f"   done in {self.times[name]:.1f} s", flush=True)
        return result


def run(args: argparse.Namespace) -> int:
    from pillsnap.demo import live, stages
    from pillsnap.demo.profile import PROFILES, demo_config

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)  # the demo folder is the demo's own: start clean every time
    cfg = demo_config(out, args.profile, tuple(args.overrides))
    stage = Stages()
    data = stage("synthetic AIHub dataset -> scan -> packs + YOLO view",
                 lambda: stages.make_data(cfg, PROFILES[args.profile].synth, args.workers))
    print(f"   {data['images']} photos, {data['pills']} pills, {data['classes']} drugs; "
          f"pack records {data['pack_records']}; YOLO view {data['yolo_images']}")
    trained = stage("train the classifier, then the detector", lambda: stages.train_both(cfg))
    print(f"   classifier {trained['classifier']}, detector {trained['detector']}")
    exported = stage("export ONNX (parity checked) + Triton repository",
                     lambda: stages.export_both(cfg, trained["det_best"]))
    print(f"   {exported}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    servers = stage("start the API" + (" and tritonserver" if args.triton else ""),
                    lambda: live.start_servers(cfg, out, port=args.port, triton=args.triton,
                                               env=env))
    try:
        results = stage("POST /predict for validation photos",
                        lambda: _predictions(cfg, servers.url, servers.key))
        evaluation = stage("evaluate the served pipeline on every validation photo",
                           lambda: _evaluate(cfg, servers.triton_url))
        record = {"profile": args.profile, "backend": "triton" if args.triton else "embedded",
                  "stages_s": stage.times, "data": data, "training": trained,
                  "export": exported, "predictions": results, "evaluation": evaluation}
        (out / "demo_result.json").write_text(json.dumps(record, indent=2, ensure_ascii=False)
                                              + "\n", encoding="utf-8")
        print("== stage times: " + ", ".join(f"{n} {t:.1f} s" for n, t in stage.times.items()))
        if not args.stop:
            _serve_until_interrupted(servers)
    finally:
        servers.stop()
    return 0


def _predictions(cfg: Any, url: str, key: str) -> dict[str, Any]:
    from pillsnap.demo import live

    results = {}
    for kind, (photo, truth) in live.validation_photos(cfg).items():
        pipeline = "combo" if kind == "combo" else "single"
        result = live.compare(live.predict(url, key, photo, pipeline), truth,
                              unknown=kind == "unknown")
        results[kind] = {"photo": str(photo), **result}
        mark = "OK " if result["match"] else "MISS"
        print(f"   [{mark}] {pipeline:6s} {photo.name}")
        print(f"          true      {', '.join(truth)}"
              + (" (a drug the model never learnt)" if kind == "unknown" else ""))
        for pill in result["pills"]:
            if pill["unknown"]:
                print(f"          answered  unknown drug (nearest known: {pill['k_code']} "
                      f"{pill['name']}, confidence {pill['confidence']:.2f})")
                continue
            print(f"          predicted {pill['k_code']} {pill['name']} (EDI {pill['edi_code']},"
                  f" confidence {pill['confidence']:.2f})")
    return results


def _evaluate(cfg: Any, triton_url: str | None) -> dict[str, Any]:
    """``python -m pillsnap.eval`` on the validation split (held-out drugs included), through
    the backend the demo serves with (Triton when ``triton_url``); prints its summary."""
    from pillsnap.eval.__main__ import evaluate
    from pillsnap.eval.output import summary_text

    reports = evaluate(cfg, export=None if triton_url else Path(cfg.export.out_dir),
                       triton_url=triton_url, progress=False)
    report = next(iter(reports.values()))
    print("   " + summary_text(report).replace("\n", "\n   "))
    return {k: report[k] for k in ("single", "combo", "targets")} | {
        "open_set": {k: v for k, v in report["open_set"].items() if k != "scores"}}


def _serve_until_interrupted(servers: Servers) -> None:
    url, key = servers.url, servers.key
    print(f"\nThe API is running: web page {url}/ (API key for this run: {key})")
    print("Try:  curl -s -H 'X-API-Key: " + key + f"' -F image=@PHOTO.png '{url}/predict'")
    print("Ctrl-C stops it.", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and all(c.running for c in servers.children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo_run"))
    parser.add_argument("--profile", choices=["full", "lookalike", "quick"], default="full",
                        help="full: about 10 minutes on 2 cores; lookalike: drugs told apart "
                        "by imprint only (much longer); quick: CI's few minutes")
    parser.add_argument("--triton", action="store_true",
                        help="serve through tritonserver (the bundled CPU binary)")
    parser.add_argument("--stop", action="store_true",
                        help="stop the servers after the predictions")
    parser.add_argument("--port", type=int, default=8000, help="the API's port (0: any free)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="config overrides on top of the demo configs")
    args = parser.parse_args(argv)
    hint = windows_path_hint(str(args.out))
    if hint:
        parser.error(hint)
    setup_logging("WARNING")
    return run_main(lambda: run(args), logger)


if __name__ == "__main__":
    sys.exit(main())
