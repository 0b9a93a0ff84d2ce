"""The OpenAPI document is complete: every operation says who may call it, what it answers and every error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

METHODS = ("get", "put", "post", "patch", "delete")
ERROR_MODELS = {"#/components/schemas/ErrorBody", "#/components/schemas/InvalidInputBody"}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def _schema_refs(schema: dict[str, Any], doc: dict[str, Any]) -> set[str]:
    """The model references a response schema names, following one level of allOf/anyOf."""
    if "$ref" in schema:
        return {schema["$ref"]}
    refs: set[str] = set()
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            refs |= _schema_refs(part, doc)
    return refs


def _is_error_model(ref: str, doc: dict[str, Any]) -> bool:
    """ErrorBody, or a model that extends it (every error field plus its own)."""
    if ref in ERROR_MODELS:
        return True
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return {"code", "message"} <= set(schema.get("required", []))


async def test_every_operation_documents_auth_input_and_error_shapes(document: dict[str, Any]) -> None:
    ops = dict(operations(document))
    assert len(ops) > 100
    problems: list[str] = []
    for label, op in ops.items():
        responses = op["responses"]
        secured = bool(op.get("security"))
        takes_input = bool(op.get("parameters") or op.get("requestBody"))
        if secured and "401" not in responses:
            problems.append(f"{label}: authenticated, but no 401")
        if secured and "429" not in responses:
            problems.append(f"{label}: authenticated (rate-limited), but no 429")
        if takes_input and "422" not in responses:
            problems.append(f"{label}: takes input, but no 422")
        if not any(code.startswith("2") for code in responses):
            problems.append(f"{label}: no success response")
        for code, response in responses.items():
            if code.startswith("2") and code != "204" and not response.get("content"):
                problems.append(f"{label}: {code} has no content")
            if code.startswith(("4", "5")):
                content = response.get("content", {})
                if list(content) != ["application/json"]:
                    problems.append(f"{label}: {code} is not documented as JSON ({list(content)})")
                    continue
                refs = _schema_refs(content["application/json"].get("schema", {}), document)
                if not refs or not all(_is_error_model(ref, document) for ref in refs):
                    problems.append(f"{label}: {code} does not reference the error model ({refs})")
        if "422" in responses:
            schema = responses["422"]["content"]["application/json"]["schema"]
            if schema != {"$ref": "#/components/schemas/InvalidInputBody"}:
                problems.append(f"{label}: 422 is not the validation error shape the app returns")
    assert not problems, "\n".join(problems)


async def test_every_success_response_declares_its_model(document: dict[str, Any]) -> None:
    loose = []
    for label, op in operations(document):
        for code, response in op["responses"].items():
            if not code.startswith("2") or code == "204":
                continue
            for media, body in response["content"].items():
                if media == "application/json" and not (body.get("schema") or {}).keys():
                    loose.append(f"{label} {code}")
    assert not loose, f"success responses without a model: {loose}"


async def test_security_schemes_say_which_credential(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert (schemes["TenantCredential"]["type"], schemes["TenantCredential"]["scheme"]) == ("http", "bearer")
    assert schemes["PlatformKey"]["scheme"] == "bearer"
    ops = dict(operations(document))
    assert ops["GET /v1/whoami"]["security"] == [{"TenantCredential": []}]
    assert ops["GET /v1/platform/tenants"]["security"] == [{"PlatformKey": []}]
    for label in (
        "GET /healthz",
        "POST /v1/webhooks/{provider}/{endpoint_id}",
        "GET /v1/artifact-urls/{tenant_id}/{artifact_id}",
    ):
        assert "security" not in ops[label], f"{label} takes no API credential"
    platform = [label for label, op in ops.items() if " /v1/platform/" in label]
    assert all(ops[label]["security"] == [{"PlatformKey": []}] for label in platform)


async def test_the_document_has_no_html_pages_and_no_framework_default_shapes(document: dict[str, Any]) -> None:
    paths = set(document["paths"])
    assert not [p for p in paths if p.startswith("/console")], "the console's HTML pages are not API operations"
    assert "/mcp" not in paths  # JSON-RPC, covered by tests/test_mcp.py
    assert "/metrics" not in paths
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas, "a route fell back to FastAPI's own 422 shape"
    assert set(schemas["InvalidInputBody"]["required"]) == {"code", "message"}
    assert schemas["FieldError"]["required"] == ["loc", "msg", "type"]
