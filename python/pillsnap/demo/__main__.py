"""PillSnap's main job end to end on small generated data, each stage timed.

    python -m pillsnap.demo                      # demo_run/: build, train, export, serve
    python -m pillsnap.demo --triton             # the API in front of a tritonserver
    python -m pillsnap.demo --stop               # stop the servers after the predictions
    python -m pillsnap.demo --profile quick      # CI's reduced size (a few minutes)
    python -m pillsnap.demo --profile lookalike  # drugs told apart by imprint alone (longer)
    python -m pillsnap.demo --profile openset    # 30 held-out look-alikes of known drugs

Stages: a synthetic dataset in the exact AIHub layout -> scan -> packs and the YOLO view ->
the classifier and the detector trained with the demo configs (a few drugs held out with
``data.exclude_k_codes``) -> ONNX export with parity checks and the Triton repository -> the
API (embedded ONNX Runtime by default) -> a real ``/predict`` for a validation single-pill
photo, a combination photo and a photo of a held-out drug, printed next to their true
K-codes -> the evaluation of every validation photo (with drugs enrolled from 1, 5 and 10
photos in copies of the export) -> the held-out drug enrolled from its training photos with
``python -m pillsnap.enroll`` while the server runs, and its photo asked about again. The
server then keeps running (the web page's URL and the one-off API key are printed) until
Ctrl-C, unless ``--stop``. ``<out>/demo_result.json`` keeps the answers and the stage times.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
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
                           lambda: _evaluate(cfg, servers.triton_url,
                                             PROFILES[args.profile].enroll))
        enrolled = stage("enroll the held-out drug from its training photos, ask again",
                         lambda: _enroll_and_ask(cfg, out, servers, results.get("unknown"),
                                                 triton=args.triton, env=env))
        record = {"profile": args.profile, "backend": "triton" if args.triton else "embedded",
                  "stages_s": stage.times, "data": data, "training": trained,
                  "export": exported, "predictions": results, "evaluation": evaluation,
                  "enrollment": enrolled}
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


def _evaluate(cfg: Any, triton_url: str | None, enroll: tuple[int, ...]) -> dict[str, Any]:
    """``python -m pillsnap.eval`` on the validation split (held-out drugs included), through
    the backend the demo serves with (Triton when ``triton_url``), and the held-out drugs
    enrolled from ``enroll`` photos each (in copies of the export); prints its summary."""
    from pillsnap.eval.__main__ import evaluate
    from pillsnap.eval.output import summary_text

    export = Path(cfg.export.out_dir)
    reports = evaluate(cfg, export=None if triton_url else export, triton_url=triton_url,
                       progress=False, enroll=enroll if not triton_url else None)
    report = next(iter(reports.values()))
    if triton_url:  # the enrollment measure needs the export folder: in-process, apart
        from pillsnap.eval.enrolled import enrolled_report
        from pillsnap.eval.report import enrolled_targets
        from pillsnap.eval.samples import load_samples

        known, _ = _served(cfg)
        samples = load_samples(Path(cfg.data.manifest_dir), Path(cfg.data.root), "val",
                               known=set(known))
        report["enrolled"] = enrolled_report(cfg, export, samples, shots=enroll)
        report["targets"] += enrolled_targets(report["enrolled"], cfg.targets)
    print("   " + summary_text(report).replace("\n", "\n   "))
    keep = ("single", "combo", "pills", "targets", "enrolled")
    return {k: report[k] for k in keep if k in report} | {
        "open_set": {k: v for k, v in report["open_set"].items() if k != "scores"}}


def _served(cfg: Any) -> tuple[tuple[str, ...], Any]:
    from pillsnap.eval.__main__ import _served_classes

    return _served_classes(cfg, Path(cfg.export.out_dir))


def _enroll_and_ask(cfg: Any, out: Path, servers: Servers, unknown: dict[str, Any] | None, *,
                    triton: bool, env: dict[str, str]) -> dict[str, Any]:
    """A held-out drug enrolled from its training photos with ``python -m pillsnap.enroll``
    (the export and, with ``--triton``, the repository) while the API runs: its validation
    photo (never used to enroll) asked about before and after. The drug of the ``unknown``
    prediction first; when the detector finds no pill in its photos (the command says so),
    the next held-out drug."""
    from pillsnap.demo import live

    if unknown is None:
        print("   no photo of a held-out drug in the validation split: nothing to enroll")
        return {}
    first = unknown["truth"][0]
    codes = [first, *(c for c in cfg.data.exclude_k_codes if c != first)]
    refused = []
    for code in codes:
        photo = live.first_validation_photo(cfg, code)
        if photo is None:
            continue
        before = live.compare(live.predict(servers.url, servers.key, photo, "single"), [code],
                              unknown=True)
        done, command = _enroll(cfg, out, code, triton=triton, env=env)
        if done.returncode != 0:
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
            print(f"   enrollment of {code} refused: {reason.split('pillsnap.enroll: ')[-1]}")
            refused.append({"k_code": code, "error": reason})
            continue
        report = json.loads(done.stdout)
        print(f"   $ {command}")
        for note in report["notes"]:
            print(f"   note: {note}")
        answer = live.compare(live.predict(servers.url, servers.key, photo, "single"), [code])
        named = answer["match"] and not any(p["unknown"] for p in answer["pills"])
        print(f"   [{'OK ' if before['match'] else 'MISS'}] before: {photo.name} "
              f"{'flagged unknown' if before['match'] else 'named ' + str(before['predicted'])}")
        print(f"   [{'OK ' if named else 'MISS'}] after:  {photo.name} (the same validation "
              "photo, not one it was enrolled from)")
        for pill in answer["pills"]:
            state = "unknown drug (nearest known)" if pill["unknown"] else "predicted"
            print(f"          {state} {pill['k_code']} {pill['name']} (EDI {pill['edi_code']},"
                  f" confidence {pill['confidence']:.2f})")
        return {"k_code": code, "enrolled": True, "photos": report["photos"],
                "gallery_version": report["version"], "notes": report["notes"],
                "before": before, "answer": answer, "refused": refused}
    return {"enrolled": False, "refused": refused}


def _enroll(cfg: Any, out: Path, code: str, *, triton: bool,
            env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], str]:
    """``python -m pillsnap.enroll`` for ``code`` from its training photos, as a user runs it."""
    from pillsnap.demo import live

    photos = live.training_photos(cfg, code)
    args = ["--export", str(cfg.export.out_dir), "--k-code", code, "--drugs",
            str(Path(cfg.data.manifest_dir) / "drugs.json"), "--skip-unusable",
            *(["--triton-repo", str(cfg.triton.repository)] if triton else [])]
    command = [sys.executable, "-m", "pillsnap.enroll", "--cfg", str(out / "config.yaml"),
               *args, *map(str, photos)]
    shown = f"python -m pillsnap.enroll {' '.join(args)} ({len(photos)} training photos)"
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                          timeout=600), shown


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
    parser.add_argument("--profile", choices=["full", "lookalike", "openset", "quick"],
                        default="full",
                        help="full: about 10 minutes on 2 cores; lookalike: drugs told apart "
                        "by imprint only (much longer); openset: 30 held-out look-alikes of "
                        "known drugs (about an hour on 2 cores); quick: CI's few minutes")
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
