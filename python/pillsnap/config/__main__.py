"""Show or check the resolved config.

    python -m pillsnap.config show [--cfg config.yaml] [train.lr=1e-4 ...]
    python -m pillsnap.config check --cfg configs/rtx5080-wsl.yaml
"""

from __future__ import annotations

import argparse
import sys

from pillsnap.cli import run_main
from pillsnap.config.cli import add_config_args, config_from_args, parse_args
from pillsnap.config.loader import config_hash, to_yaml
from pillsnap.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.config", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["show", "check"])
    add_config_args(parser)
    args = parse_args(parser, argv)
    return run_main(lambda: _run(args), catch=(ConfigError,))


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.command == "show":
        sys.stdout.write(to_yaml(cfg))
    else:
        print(f"config OK (hash {config_hash(cfg)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
