"""The training time cap cuts a plan that would overrun, never extends it.

    PYTHONPATH=python python -m pytest tests/train/test_timecap.py -q
"""

from __future__ import annotations

from pillsnap.train.timecap import epochs_that_fit


def test_a_plan_that_fits_is_kept() -> None:
    assert epochs_that_fit(elapsed_s=30, epochs_run=1, epochs_done=1, planned=16,
                           max_minutes=10) == 16


def test_a_plan_that_would_overrun_is_cut_to_what_fits() -> None:
    # 95 s per epoch: 505 s are left after the first, room for 5 more
    assert epochs_that_fit(elapsed_s=95, epochs_run=1, epochs_done=1, planned=16,
                           max_minutes=10) == 6


def test_never_fewer_epochs_than_are_done() -> None:
    assert epochs_that_fit(elapsed_s=900, epochs_run=1, epochs_done=1, planned=16,
                           max_minutes=10) == 1
    # a resumed run: 4 epochs were done before, this process ran one in 100 s
    assert epochs_that_fit(elapsed_s=100, epochs_run=1, epochs_done=5, planned=16,
                           max_minutes=5) == 7
