"""The REST API against its own OpenAPI schema: schemathesis generates requests for every operation
of a real `opsmith serve` (over the sandbox MCP servers) and checks each answer.

The schema is read from the live server, as a client would read it. The stateless phases run
(examples, coverage, fuzzing), each operation with at most MAX_EXAMPLES generated cases, as the
admin whose token the first start prints, so refusals of a role do not hide the rest. Asserted for
every answer: no 5xx; its status code is one the schema documents for that operation; its
content type is the documented one; its body validates against the documented schema.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG
from tests.served import Served, serving

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("api-schema")
    state = root / "state"
    shutil.copytree(seeded_template, state)
    # The generated cases include wrong tokens; with the default limit the client would soon get only
    # 429s, and the operations behind authentication would go untested.
    settings = "api: {auth_failures: 1000}"
    (root / "opsmith.yaml").write_text(f"{CONFIG}\n{settings}\nmcpServers:\n{sandbox_servers(state)}\n")
    with serving(root) as server:
        assert server.token is not None, "the first start prints an admin token"
        yield server


@pytest.fixture(scope="module")
def api_schema(served: Served) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            "phases": {"stateful": {"enabled": False}},  # the stateless phases only
        }
    )
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json", config=config, timeout=30)


schema = (
    schemathesis.pytest.from_fixture("api_schema")
    # Starts real runs of whatever plan it is given: the sandbox would be changed under the other
    # operations, and runs go on in the background past the answer. test_api.py runs plans.
    .exclude(method="POST", path="/api/v1/plans/{plan_id}/runs")
    # Stops an MCP server, so every later tool call and plan would meet a server that is down.
    .exclude(method="POST", path="/api/v1/servers/{name}/stop")
)


@pytest.mark.timeout(300)
@schema.parametrize()
def test_every_operation_answers_as_its_schema_says(case: schemathesis.Case, served: Served) -> None:
    assert served.token is not None
    own_id = served.token.split("_")[1]
    if case.path_parameters and case.path_parameters.get("token_id") == own_id:
        # Revoking the token this test sends would turn every later answer into a 401; the id can
        # be learnt from GET /api/v1/tokens, whose answers feed generation. Any other id is sent.
        case.path_parameters["token_id"] = "0" * 12
    case.call_and_validate(headers={"Authorization": f"Bearer {served.token}"}, checks=CHECKS, timeout=60)
