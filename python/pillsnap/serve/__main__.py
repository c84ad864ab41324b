"""Serving commands: the API proxy and tritonserver.

    python -m pillsnap.serve api [--host H] [--port P] [--model-path DIR] [--triton-url H:P]
                                 [--backend auto|embedded|triton] [--insecure-dev]
                                 [--cfg config.yaml] [--env-file .env] [serve.key=value ...]
    python -m pillsnap.serve triton                          # bundled binary, CPU configs
    python -m pillsnap.serve triton --repository triton_models triton.http_port=9100
    python -m pillsnap.serve triton --docker                 # print the GPU image's docker run
    python -m pillsnap.serve triton --gpu                    # a full tritonserver on PATH

api: the FastAPI proxy (uvicorn). Settings: CLI flags and overrides > config.yaml (serve
section) > environment > .env. It refuses to start without an API key unless
``--insecure-dev`` is given.

triton: waits until pill_single and pill_combo are ready, prints the ports, and stops the server
cleanly on Ctrl-C or SIGTERM. Ports come from ``triton.*_port``; the restricted admin APIs
need the header ``triton.admin_header`` with the value of TRITON_ADMIN_KEY (a random key is
made and printed when it is unset). A server that dies is reaped (its python stubs and shm)
and, with ``triton.restart=on-failure`` (the default), started again up to
``triton.restart_max`` times in a row (``pillsnap.serve.triton_supervise``). Exits 2 with the
reason and the server log's tail when the server cannot start or no restart is left.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path

from pillsnap.cli import run_main
from pillsnap.config import PillsnapConfig
from pillsnap.config.cli import add_config_args, parse_args, run_with_config
from pillsnap.errors import ConfigError, ServerError
from pillsnap.serve.triton_server import (
    Ports,
    TritonLaunch,
    TritonServer,
    docker_build,
    docker_command,
    host_command,
)
from pillsnap.serve.triton_supervise import Restarts, supervise

logger = logging.getLogger("pillsnap.serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    triton = sub.add_parser("triton", help="run tritonserver on the model repository")
    triton.add_argument("--repository", type=Path, default=None,
                        help="model repository (default: triton.repository)")
    device = triton.add_mutually_exclusive_group()
    device.add_argument("--cpu", dest="cpu", action="store_true", default=True,
                        help="CPU configs (--model-config-name=cpu; the default)")
    device.add_argument("--gpu", dest="cpu", action="store_false",
                        help="GPU configs: needs a tritonserver with the onnxruntime backend "
                        "on PATH (the NGC image); see --docker")
    triton.add_argument("--docker", action="store_true",
                        help="print the docker run command for the GPU image (and, on stderr, "
                        "how to build it) and exit")
    add_config_args(triton)
    api = sub.add_parser("api", help="run the API proxy (FastAPI + uvicorn)")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--model-path", type=Path, help="export folder (embedded backend)")
    api.add_argument("--triton-url", help="host:port of Triton's HTTP endpoint")
    api.add_argument("--backend", choices=["auto", "embedded", "triton"])
    api.add_argument("--insecure-dev", action="store_true", default=None,
                     help="run without an API key (local development only)")
    add_config_args(api)
    return parser


def run_api(args: argparse.Namespace) -> int:
    """The proxy until it stops; settings it refuses end it with ``error: ...`` and code 2."""
    from pydantic import ValidationError

    return run_main(lambda: _serve_api(args), catch=(ConfigError, ValidationError))


def _serve_api(args: argparse.Namespace) -> int:
    import uvicorn

    from pillsnap.serve.app import create_app
    from pillsnap.serve.logs import setup_server_logging
    from pillsnap.serve.settings import load_settings

    settings = load_settings(args.cfg, args.overrides, env_file=args.env_file,
                             host=args.host, port=args.port, model_path=args.model_path,
                             triton_url=args.triton_url, backend=args.backend,
                             insecure_dev=args.insecure_dev)
    setup_server_logging(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=5,
                            server_header=False)
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns (not raises) when the lifespan failed: the backend could not start
    return 0 if server.started else 3


def launch_from(cfg: PillsnapConfig, args: argparse.Namespace) -> TritonLaunch:
    t = cfg.triton
    key = os.environ.get("TRITON_ADMIN_KEY")
    extra = {"admin_key": key} if key else {}
    return TritonLaunch(repository=args.repository or Path(t.repository),
                        ports=Ports(t.http_port, t.grpc_port, t.metrics_port),
                        cpu=args.cpu and not args.docker, startup_timeout_s=t.startup_timeout_s,
                        exit_timeout_s=t.exit_timeout_s,
                        admin_header=t.admin_header, **extra)


def run_triton(cfg: PillsnapConfig, args: argparse.Namespace) -> int:
    launch = launch_from(cfg, args)
    if args.docker:
        t = cfg.triton
        # stderr: stdout stays the one command, for $(...) and scripts
        print(f"# the image, built once (online) in the repository's root: "
              f"{shlex.join(docker_build(t.docker_image, t.base_image))}", file=sys.stderr)
        print(shlex.join(docker_command(launch, t.docker_image)))
        return 0
    server = TritonServer(launch, **_full_server(launch) if not launch.cpu else {})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def announce() -> None:
        p = launch.ports
        print(f"tritonserver ready: {', '.join(launch.ensembles())} | http {p.http} | grpc "
              f"{p.grpc} | metrics {p.metrics} | log {server.log_file}", flush=True)

    restarts = Restarts(cfg.triton.restart_max if cfg.triton.restart == "on-failure" else 0)
    with server:
        announce()
        if not os.environ.get("TRITON_ADMIN_KEY"):
            print(f"admin APIs: header {launch.admin_header}: {launch.admin_key}", flush=True)
        supervise(server, stop, restarts, on_ready=announce)
    print("tritonserver stopped", flush=True)
    return 0


def _full_server(launch: TritonLaunch) -> dict[str, object]:
    """GPU configs need the onnxruntime backend, which only a full install or the NGC image
    has (the wheel's binary has the python backend only)."""
    binary = shutil.which("tritonserver")
    if binary is None:
        raise ServerError("--gpu needs a tritonserver with the onnxruntime backend on PATH "
                          "(inside the NGC image); without one run: python -m pillsnap.serve "
                          "triton --docker")
    return {"command": host_command(launch, binary), "env": dict(os.environ)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if args.command == "api":
        return run_api(args)
    return run_with_config(args, lambda cfg: run_triton(cfg, args), logger)


if __name__ == "__main__":
    sys.exit(main())
