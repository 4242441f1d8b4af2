"""openapi.yaml describes the real API: the same routes and methods as function_app.py, and the
bodies the running service returns validate against its schemas."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import Api, new_user

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text())


def _resolve(node):
    """Inline local $refs so jsonschema can check a response body on its own."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = SPEC
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(target)
        return {k: _resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return node


def _check(response, path: str, method: str) -> None:
    operation = SPEC["paths"][path][method]
    documented = operation["responses"]
    assert str(response.status_code) in documented, f"{method.upper()} {path} returned undocumented {response.status_code}"
    content = _resolve(documented[str(response.status_code)]).get("content")
    if content is None:
        assert not response.content
        return
    schema = content["application/json"]["schema"]
    jsonschema.validate(response.json(), schema)


def test_every_function_route_is_documented_and_nothing_else():
    import function_app

    routes = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger().get_dict_repr()
        if trigger["type"] == "httpTrigger":
            for method in trigger["methods"]:
                routes.add((f"/{trigger['route']}", str(getattr(method, "value", method)).lower()))
    documented = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes == documented


@pytest.mark.parametrize(
    "method, path, body, authenticated",
    [
        ("post", "/token", None, True),
        ("post", "/token", {"scopes": ["nope"]}, True),
        ("post", "/token", None, False),
        ("get", "/identity", None, True),
        ("delete", "/identity", None, True),
        ("post", "/token/revoke", None, True),
        ("post", "/teams/token", {"teamsToken": "x"}, True),
        ("post", "/manage/deleted-users", {"appUserIds": ["a"]}, True),
        ("get", "/health", None, False),
    ],
)
def test_responses_match_the_description(api: Api, method: str, path: str, body, authenticated: bool):
    user = new_user() if authenticated else None
    response = api.call(method.upper(), f"/api{path}", user, json=body)
    _check(response, path, method)


def test_identity_response_matches_the_description_once_created(api: Api):
    user = new_user()
    api.token(user)
    _check(api.call("GET", "/api/identity", user), "/identity", "get")
