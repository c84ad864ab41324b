"""``parity_report.json``: the numbers behind an export's pass or fail, next to the model.

    write_report(Path("artifacts/export/classifier"), report)   # raises ParityError on fail
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pillsnap.errors import ParityError

logger = logging.getLogger(__name__)

REPORT_FILE = "parity_report.json"


def write_report(folder: Path, report: dict[str, Any]) -> Path:
    """Write the report; a failed check raises ParityError naming what failed and the file."""
    path = folder / REPORT_FILE
    report = {**report, "checks": {k: bool(v) for k, v in report["checks"].items()}}
    report["passed"] = all(report["checks"].values())
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = [name for name, ok in report["checks"].items() if not ok]
    if failed:
        raise ParityError(f"{report['model']} parity failed ({', '.join(failed)}): "
                          f"{report['summary']}; details in {path}")
    logger.info("%s parity passed: %s (%s)", report["model"], report["summary"], path)
    return path
