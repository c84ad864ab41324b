"""Property-based requests generated from the app's own OpenAPI schema, with a valid key:
whatever schemathesis sends, the server answers without a 5xx.

Needs schemathesis 4 (a dev dependency).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api_helpers import AUTH, ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def api_schema(api_server: ServerProcess) -> object:
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: object) -> None:
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])  # type: ignore[attr-defined]
