"""``docs/openapi.yaml`` is what ``infra/openapi.py`` generates from the code today, and covers every route."""

from __future__ import annotations

from typing import Any

import yaml

from infra import openapi


def test_the_committed_openapi_document_is_current() -> None:
    assert openapi.TARGET.exists(), f"docs/openapi.yaml is missing: run {openapi.REFRESH}"
    assert openapi.TARGET.read_text("utf-8") == openapi.render(), (
        f"docs/openapi.yaml is not current: run {openapi.REFRESH}"
    )


def test_every_route_that_serves_is_an_operation_and_every_platform_has_its_webhook() -> None:
    import app as app_module
    from chalicelib.webhooks import PLATFORMS

    doc: dict[str, Any] = yaml.safe_load(openapi.TARGET.read_text("utf-8"))
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    for path, methods in app_module.app.routes.items():
        for method, entry in methods.items():
            if entry.view_name.startswith(openapi.REFUSING_VIEWS):
                continue
            if entry.view_name == openapi.WEBHOOK_VIEW:
                assert {(path.replace("{platform}", p), method) for p in PLATFORMS} <= documented
            else:
                assert (path, method) in documented, (path, method)
    for path, ops in doc["paths"].items():
        for operation in ops.values():
            assert operation["responses"], (path, operation)
            assert not any(code.startswith("5") and code not in ("500", "503") for code in operation["responses"])


def test_every_json_error_answer_is_the_projects_error_shape() -> None:
    """…except a tax platform's callback, answered in that platform's own envelope (Nuonuo's)."""
    doc: dict[str, Any] = yaml.safe_load(openapi.TARGET.read_text("utf-8"))
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    violation = doc["components"]["schemas"]["Violation"]
    assert set(violation["required"]) == {"field", "code", "message", "message_en"}  # from the pydantic model
    for path, ops in doc["paths"].items():
        for operation in ops.values():
            for code, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if code.startswith(("4", "5")) and schema is not None and not path.startswith("/callbacks/"):
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, code)
