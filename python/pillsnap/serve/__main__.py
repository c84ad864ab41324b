"""Run the API server.

    python -m pillsnap.serve api [--host H] [--port P] [--model-path DIR] [--triton-url H:P]
                                 [--insecure-dev] [--cfg config.yaml] [--env-file .env]
                                 [serve.key=value ...]

Settings: CLI flags and overrides > config.yaml (serve section) > environment > .env.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pillsnap.config.cli import add_config_args, parse_args
from pillsnap.errors import ConfigError

logger = logging.getLogger("pillsnap.serve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["api"])
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--model-path", type=Path, help="export folder (embedded backend)")
    parser.add_argument("--triton-url", help="host:port of Triton's HTTP endpoint")
    parser.add_argument("--backend", choices=["auto", "embedded", "triton"])
    parser.add_argument("--insecure-dev", action="store_true", default=None,
                        help="run without an API key (local development only)")
    add_config_args(parser)
    args = parse_args(parser, argv)

    import uvicorn
    from pydantic import ValidationError

    from pillsnap.serve.app import create_app
    from pillsnap.serve.logs import setup_server_logging
    from pillsnap.serve.settings import load_settings

    try:
        settings = load_settings(args.cfg, args.overrides, env_file=args.env_file,
                                 host=args.host, port=args.port, model_path=args.model_path,
                                 triton_url=args.triton_url, backend=args.backend,
                                 insecure_dev=args.insecure_dev)
        setup_server_logging(settings.log_level)
        app = create_app(settings)
    except (ConfigError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=5,
                            server_header=False)
    server = uvicorn.Server(config)
    server.run()
    # uvicorn returns (not raises) when the lifespan failed: the backend could not start
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
