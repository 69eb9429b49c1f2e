"""Property-based tests of the OpenAPI schema (schemathesis): requests generated from the
schema of a running server, valid and invalid, are answered within the schema: no 5xx,
only documented statuses, bodies, headers and content types as documented, invalid
data refused, and a request without its key refused.

The server is the bundle server (no store: a generated move cannot move a channel).
Each request carries a key with every scope; the server has no rate limit.

The operations are listed here, and a test checks the list against the served schema:
schemathesis's lazy `from_fixture` loader does not run on this pytest (it sets
`Function._nodeid`, which pytest 9 no longer has), so each operation's strategy is
drawn inside an ordinary parametrised test instead.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis not installed (requirements/dev.txt)")
from hypothesis import HealthCheck, given, settings  # noqa: E402 (schemathesis brings hypothesis)
from schemathesis import GenerationMode, checks  # noqa: E402

from tests.api.conftest import MODEL, Server  # noqa: E402

OPERATIONS = [
    ("POST", "/v1/predict"),
    ("POST", "/v1/predict/batch"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/log"),
    ("DELETE", "/v1/jobs/{job_id}"),
    ("POST", "/v1/datasets"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/{dataset}"),
    ("DELETE", "/v1/datasets/{dataset}"),
    ("GET", "/v1/monitoring/drift"),
    ("GET", "/v1/monitoring/drift/history"),
    ("GET", "/v1/monitoring/reports"),
    ("GET", "/v1/live"),
    ("GET", "/v1/me"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}"),
    ("GET", "/v1/models/{name}/versions/{version}"),
    ("POST", "/v1/models/{name}/promote"),
    ("POST", "/v1/models/{name}/rollback"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
]
EXAMPLES = 25  # per operation and mode: the whole module takes about 10 s on 2 cores


@pytest.fixture(scope="module")
def api_schema(bundle_server: Server) -> Any:
    return schemathesis.openapi.from_url(f"{bundle_server.url}/openapi.json")


@pytest.fixture(scope="module")
def auth(bundle_server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {bundle_server.key()}"}


def test_the_list_names_every_operation_in_the_schema(api_schema: Any):
    served = {(op.method.upper(), op.path) for op in (result.ok() for result in api_schema.get_all_operations())}
    assert served == set(OPERATIONS)


# Routes whose only input is the key, which every case carries: nothing to make invalid.
NO_INPUT = {
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2"),
    ("GET", "/v1/models"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/monitoring/drift"),
    ("GET", "/v1/monitoring/drift/history"),
    ("GET", "/v1/monitoring/reports"),
    ("GET", "/v1/live"),
    ("GET", "/v1/me"),
}
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in GenerationMode
    if not (mode is GenerationMode.NEGATIVE and (method, path) in NO_INPUT)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_operation_answers_within_its_schema(
    api_schema: Any, auth: dict[str, str], method: str, path: str, mode: GenerationMode
):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_within_schema(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, timeout=60)

    answers_within_schema()


def test_the_served_model_s_own_routes_answer_200_within_their_schema(api_schema: Any, auth: dict[str, str]):
    """Generated names almost never hit the served model: its routes once with its name."""
    for path in ("/v2/models/{name}", "/v2/models/{name}/ready", "/v1/models/{name}"):
        case = api_schema[path]["GET"].Case(path_parameters={"name": MODEL})
        response = case.call_and_validate(headers=auth, checks=CHECKS, timeout=60)
        assert response.status_code == 200, path
