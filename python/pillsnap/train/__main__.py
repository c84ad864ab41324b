"""``python -m pillsnap.train [--cfg config.yaml] [section.key=value ...]``

Dispatches on ``train.task``: ``cls`` trains the classifier here; ``det`` and ``both`` hand
over to ``pillsnap.train.detect.train_detector`` (the detection trainer, imported only then).
"""

from __future__ import annotations

import argparse
import logging
import sys

from pillsnap.config.cli import add_config_args, config_from_args, parse_args
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import ConfigError, PillsnapError

logger = logging.getLogger("pillsnap.train")


def dispatch(cfg: PillsnapConfig) -> None:
    """The one place that maps ``train.task`` to a trainer."""
    task = cfg.train.task
    detector = None
    if task in ("det", "both"):
        try:
            from pillsnap.train.detect import train_detector as detector
        except ModuleNotFoundError as exc:
            if exc.name != "pillsnap.train.detect":
                raise
            raise ConfigError(f"train.task={task}: detection training is not in this build "
                              "(pillsnap.train.detect is missing); use train.task=cls") from None
    if task in ("cls", "both"):
        from pillsnap.train.classifier import train_classifier

        train_classifier(cfg)
    if detector is not None:
        detector(cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    args = parse_args(parser, argv)
    try:
        dispatch(config_from_args(args))
    except PillsnapError as exc:
        logging.basicConfig()
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
