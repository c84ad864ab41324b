"""A time cap on training (``train.max_minutes``, ``train.det.max_minutes``).

    epochs_that_fit(elapsed_s=95.0, epochs_run=1, epochs_done=1, planned=16,
                    max_minutes=10)                                   # -> 6

After an epoch the pace so far says how many epochs fit in the budget; a plan that would
overrun is cut (never extended), and the trainer's learning-rate schedule is rebuilt for the
new length, so a capped run still anneals instead of stopping mid-schedule. It is what
makes the demo finish in the same time on a laptop and on a workstation (the fast machine
simply runs every planned epoch). Used by ``pillsnap.train.classifier.fit`` and the
detector's ``pillsnap.train.detect``.
"""

from __future__ import annotations

import logging

from pillsnap.logs import log_decision


def epochs_that_fit(*, elapsed_s: float, epochs_run: float, epochs_done: int, planned: int,
                    max_minutes: float) -> int:
    """``planned``, or fewer when ``epochs_run`` epochs in ``elapsed_s`` (this process) set a
    pace that would overrun ``max_minutes``; never fewer than ``epochs_done`` (all epochs
    finished, a resumed run's earlier ones included)."""
    if epochs_run <= 0 or elapsed_s <= 0:
        return planned
    per_epoch = elapsed_s / epochs_run
    more = int(max(max_minutes * 60.0 - elapsed_s, 0.0) // per_epoch)
    return max(min(planned, epochs_done + more), epochs_done)


def log_cap(logger: logging.Logger, key: str, total: int, *, planned: int,
            per_epoch_s: float, max_minutes: float) -> None:
    """The one decision line of a cut plan."""
    log_decision(logger, key, total, f"{planned} planned epochs take about "
                 f"{planned * per_epoch_s / 60:.1f} min at {per_epoch_s:.1f} s per epoch; "
                 f"the time cap is {max_minutes:g} min")
