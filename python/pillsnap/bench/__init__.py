"""Benchmarks that print a table with the machine, the baseline from the same run, and ratios.

    python -m pillsnap.bench loader [--images 200] [--json results.json]

Results are recorded in ``docs/benchmarks.md`` with the command that produced them.
"""

from __future__ import annotations
