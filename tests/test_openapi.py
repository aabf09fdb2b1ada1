"""Both OpenAPI documents say what a real ``podium serve`` answers (schemathesis).

Every operation of each document is called with a few generated requests, and every
answer is checked against the document: its status is listed, its content type is one the
document gives for that status, its body fits that status's schema, and its headers
(``Retry-After``, ``WWW-Authenticate``) are the documented ones.

Choices, and why:

- The server runs the ``echo`` test handler, which accepts any body: schemathesis's
  ``negative_data_rejection`` and ``positive_data_acceptance`` checks judge the handler,
  not the document, and are left out on the inference port. The management port's
  parameters are checked by FastAPI, so there invalid data (negative mode) must be refused
  (400, as documented), and is.
- A handler may fail (500 is documented on the inference routes and the echo handler
  raises on request), so ``not_a_server_error`` applies only where no handler runs.
- Generated model names are almost never served ones: besides the document's own examples
  (the served names, the archive's example body), each operation also gets cases with its
  ``model`` (and ``version``) fixed to the served ``echo`` 1.0, so 200 answers are checked
  too. On the management port only reads are pinned: scaling echo to 64 workers, or
  unregistering it, would test the machine more than the document.
- ``POST /token`` is left out: it rotates the token the other calls carry.
- Few examples per operation (``EXAMPLES``) keep the test under a minute; the explicit
  examples always run.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from podium.errors import ErrorBody
from tests.conftest import TOKEN, MakeArchive, Server, StartServer

EXAMPLES = 6
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PINNED = {"model": "echo", "version": "1.0"}


@pytest.fixture
def server(make_archive: MakeArchive, start_server: StartServer) -> Server:
    make_archive("echo", example={"text": "an example from the archive"})
    return start_server()


def check_document(
    url: str,
    headers: dict[str, str],
    *,
    skip: set[tuple[str, str]],
    pin: set[str],
    modes: list[GenerationMode],
    handler_routes: tuple[str, ...],
) -> int:
    """Run every operation of the document at ``url`` and return how many were called."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
    called = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # every operation of the document loads
        operation = result.ok()
        if (operation.method.upper(), operation.path) in skip:
            continue
        names = {parameter.name for parameter in operation.path_parameters}
        strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
        if names & PINNED.keys() and operation.method.upper() in pin:
            pinned = {name: PINNED[name] for name in names}
            strategies.append(operation.as_strategy(path_parameters=pinned))
        strategies += schema.get_strategies_from_examples(operation)
        checks = list(CONFORMANCE)
        if GenerationMode.NEGATIVE in modes:
            checks.append(negative_data_rejection)
        if not operation.path.startswith(handler_routes):
            checks.append(not_a_server_error)
        run(st.one_of(strategies), url, headers, checks)
        called += 1
    return called


def run(strategy: Any, url: str, headers: dict[str, str], checks: list[Any]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        case.call_and_validate(base_url=url, headers=headers, checks=checks)

    call()


def test_the_inference_document_matches_the_server(server: Server) -> None:
    called = check_document(
        server.url,
        {},
        skip=set(),
        pin={"GET", "POST", "PUT"},
        modes=[GenerationMode.POSITIVE],
        handler_routes=("/predict", "/explanations/", "/v2/models/"),
    )
    assert called >= 20  # ping, metrics, 9 inference and 9 V2 operations


def test_the_management_document_matches_the_server(server: Server) -> None:
    called = check_document(
        server.management_url,
        {"Authorization": f"Bearer {TOKEN}"},
        skip={("POST", "/token")},
        pin={"GET"},
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        handler_routes=("/models/",),  # describe?customized=true asks the handler
    )
    assert called >= 8
    # The document still matches once a model is gone: echo is described, then absent.
    assert server.management.get("/models/echo").status_code == 200


def test_the_documents_are_honest_about_errors(server: Server) -> None:
    inference = server.http.get("/openapi.json").json()
    management = server.management.get("/openapi.json").json()
    for document in (inference, management):
        text = str(document)
        assert "'422'" not in text and "HTTPValidationError" not in text
        assert set(document["components"]["schemas"]["ErrorBody"]["properties"]) == set(
            ErrorBody.__annotations__
        )
    paths = inference["paths"]
    assert {"post", "put"} <= set(paths["/predictions/{model}"])
    assert {"post", "put"} <= set(paths["/explanations/{model}/{version}"])
    busy = paths["/predictions/{model}"]["post"]["responses"]["503"]
    assert "Retry-After" in busy["headers"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert [media.split(";")[0] for media in metrics] == ["text/plain"]
    body = paths["/predictions/{model}"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["echo"]["value"] == {"text": "an example from the archive"}
    v2_error = paths["/v2/models/{model}/infer"]["post"]["responses"]["400"]
    assert v2_error["content"]["application/json"]["schema"]["$ref"].endswith("/V2Error")
    assert management["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert management["paths"]["/models"]["get"]["responses"]["400"]
