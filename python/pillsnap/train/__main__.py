"""``python -m pillsnap.train [--cfg config.yaml] [section.key=value ...]``

Dispatches on ``train.task``: ``cls`` trains the classifier, ``det`` the detector
(``pillsnap.train.detect``, the only module that imports ultralytics), ``both`` one after
the other.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pillsnap.cli import run_main
from pillsnap.config.cli import add_config_args, config_from_args, parse_args
from pillsnap.config.schema import PillsnapConfig
from pillsnap.errors import ConfigError

logger = logging.getLogger("pillsnap.train")


def dispatch(cfg: PillsnapConfig) -> None:
    """The one place that maps ``train.task`` to a trainer; ``both`` runs them in sequence."""
    task = cfg.train.task
    if task in ("det", "both") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every rank would train its own copy of the detector on cuda:0.
        raise ConfigError(f"train.task={task} under torchrun: the detector trains in one "
                          "process (ultralytics); run the classifier with torchrun "
                          "(train.task=cls) and the detector without it "
                          "(python -m pillsnap.train.detect)")
    if task in ("cls", "both"):
        from pillsnap.train import classifier

        classifier.train_classifier(cfg)
    if task in ("det", "both"):
        from pillsnap.train import detect  # ultralytics is imported only for detection

        detect.train_detector(cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pillsnap.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser)
    args = parse_args(parser, argv)

    def run() -> int:
        dispatch(config_from_args(args))
        return 0

    return run_main(run, logger)


if __name__ == "__main__":
    sys.exit(main())
