"""The OpenAPI document: valid, complete for every collection, with examples that validate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from closedloop.settings import Settings

from .conftest import Api

# DESIGN.md's collections: each is created by POST, listed, read one by one, and has a history.
COLLECTIONS = (
    "/units",
    "/people",
    "/cycles",
    "/targets",
    "/problems",
    "/measures",
    "/duties",
    "/meetings",
    "/rectifications",
    "/awards",
)
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def ref_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    root = {key: value for key, value in schema.items() if key != "examples"}
    return OAS31Validator({**root, "components": doc["components"]})


def test_the_document_validates_and_describes_every_collection(
    api: Api, store_settings: Settings, document: dict[str, Any]
) -> None:
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "closedloop"
    assert "problem+json" in document["info"]["description"]
    check_collections(document)
    check_security(document)
    check_write_headers(document)
    check_present_examples(document)
    check_health(api, store_settings)


def check_collections(document: dict[str, Any]) -> None:
    """Each collection: POST create, GET list, GET one (at a version), GET history."""
    paths = document["paths"]
    for collection in COLLECTIONS:
        create = paths[collection]["post"]
        assert "201" in create["responses"], collection
        written = create["responses"]["201"]["content"]["application/json"]["schema"]
        assert ref_name(written) == "WriteResult"
        assert create["requestBody"]["required"] is True

        listing = paths[collection]["get"]
        page = listing["responses"]["200"]["content"]["application/json"]["schema"]
        assert ref_name(page) == "Page"
        params = {p["name"] for p in listing["parameters"]}
        assert {"cycle", "unit", "status", "after", "limit", "min_position"} <= params

        one = paths[f"{collection}/{{item_id}}"]["get"]
        assert "version" in {p["name"] for p in one["parameters"]}, collection

        history = paths[f"{collection}/{{item_id}}/history"]["get"]
        entries = history["responses"]["200"]["content"]["application/json"]["schema"]
        assert ref_name(entries["items"]) == "HistoryItem"


def check_security(document: dict[str, Any]) -> None:
    """Every operation on the collections needs a bearer token; the health check does not."""
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    for path, method, operation in operations(document):
        if path != "/health" and f"/{path.split('/')[1]}" not in COLLECTIONS:
            continue
        if path == "/health":
            assert not operation.get("security"), operation
        else:
            assert operation.get("security") == [{"HTTPBearer": []}], (method, path)


def check_write_headers(document: dict[str, Any]) -> None:
    """Every write on the collections documents If-Match and Idempotency-Key."""
    for path, method, operation in operations(document):
        if method != "post" or f"/{path.split('/')[1]}" not in COLLECTIONS:
            continue
        headers = {p["name"].lower() for p in operation["parameters"] if p["in"] == "header"}
        assert {"if-match", "idempotency-key"} <= headers, path


def check_present_examples(document: dict[str, Any]) -> None:
    """The field examples the document has validate against their own schemas."""
    checked = 0
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            for example in prop.get("examples", []):
                errors = list(validator(document, prop).iter_errors(example))
                assert not errors, (name, field, example, errors)
                checked += 1
    assert checked >= 10


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    missing = []
    for path, method, operation in operations(document):
        body = operation.get("requestBody")
        if body is None:
            continue
        media = body["content"]["application/json"]
        examples = [media["example"]] if "example" in media else []
        examples += [e["value"] for e in media.get("examples", {}).values()]
        examples += schemas[ref_name(media["schema"])].get("examples", [])
        if not examples:
            missing.append(f"{method.upper()} {path}")
        for example in examples:
            errors = list(validator(document, media["schema"]).iter_errors(example))
            assert not errors, (path, example, errors)
    assert missing == []


def test_error_responses_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if path == "/health":
            continue
        responses = operation["responses"]
        expected = {"401", "422"} | ({"403", "409", "412"} if method == "post" else set())
        for status in sorted(expected):
            assert status in responses, (method, path, status)
            assert PROBLEM_JSON in responses[status]["content"], (method, path, status)


def check_health(api: Api, store_settings: Settings) -> None:
    """The health check answers without authentication; everything else asks for a token."""
    response = api.client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"] == store_settings.store_kind
    assert isinstance(body["head_position"], int) and body["head_position"] >= 0
    assert isinstance(body["catalogue_position"], int)
    assert response.headers["X-Request-ID"]
    assert api.client.get("/units").status_code == 401
