"""X-API-Key: missing 401, wrong 403, compared in constant time against every valid key.

Several keys may be valid at once (API_KEY=new,old) so a key can be rotated without
downtime. Without any key the app refuses to start unless ``insecure_dev`` is set, which
opens every endpoint and says so loudly in the log.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import Request
from fastapi.security import APIKeyHeader

from pillsnap.errors import ConfigError
from pillsnap.serve.errors import ApiError
from pillsnap.serve.settings import Settings

logger = logging.getLogger(__name__)

HEADER = "X-API-Key"
# auto_error off: a missing key is our 401 with our JSON body, not FastAPI's 403
api_key_header = APIKeyHeader(name=HEADER, auto_error=False,
                              description="One of the server's API keys (API_KEY)")


def check_startup(settings: Settings) -> None:
    """Refuse to run without keys unless the insecure development mode is explicit."""
    if settings.auth_enabled:
        return
    if not settings.insecure_dev:
        raise ConfigError("no API key configured: set API_KEY in the environment or .env "
                          "(comma-separated for rotation), or pass --insecure-dev for a "
                          "local development server without authentication")
    banner = "!" * 72
    for line in (banner, "INSECURE DEVELOPMENT MODE: no API key, every endpoint is open.",
                 "Never expose this server beyond localhost.", banner):
        logger.warning(line)


def key_matches(given: str, keys: list[str]) -> bool:
    """True if ``given`` equals one of ``keys``; every key is compared, whatever matches."""
    given_b = given.encode("utf-8", "surrogateescape")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_b, key.encode("utf-8"))
    return found


def require_key(request: Request, settings: Settings, given: str | None) -> None:
    if not settings.auth_enabled:
        return
    if not given:
        raise ApiError(401, "unauthorized", f"missing {HEADER} header",
                       headers={"WWW-Authenticate": HEADER})
    if not key_matches(given, settings.api_keys):
        logger.warning("wrong API key from %s", request.client.host if request.client else "?")
        raise ApiError(403, "forbidden", f"wrong {HEADER}")
