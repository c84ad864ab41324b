"""Server logging: PillSnap's format plus the request ID on every line."""

from __future__ import annotations

import logging

from pillsnap.logs import DATEFMT, setup_logging
from pillsnap.serve.context import RequestIdFilter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s]: %(message)s"


def setup_server_logging(level: str) -> None:
    setup_logging(level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    logging.getLogger("uvicorn.access").disabled = True  # Observe logs each request, with its ID
