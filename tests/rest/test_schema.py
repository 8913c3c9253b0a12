"""The OpenAPI schema at /api/v1/schema/ is valid and describes every /api/v1/ route and
method; the docs page is Swagger UI from the sidecar's static files, its script a file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.test import Client
from openapi_spec_validator import validate

from tests.routes import every_route

SELF = ("rest-schema", "rest-docs")  # the schema and its page describe the others
API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def v1_routes() -> list[tuple[str, Any]]:
    """(schema path, view class) of every /api/v1/ route, from the resolver."""
    return [("/" + re.sub(r"<\w+:(\w+)>", lambda m: "{id}" if m[1] == "pk" else f"{{{m[1]}}}",
                          text), pattern.callback.view_class)
            for text, pattern in every_route()
            if text.startswith("api/v1/") and pattern.name not in SELF]


def test_the_schema_is_valid_openapi_with_every_route_and_method(api):
    response = api.get("schema/", {"format": "json"})

    schema = response.json()
    validate(schema)  # raises on any violation of OpenAPI 3
    routes = v1_routes()
    assert len(routes) >= 7
    for path, view in routes:
        methods = {m for m in view.http_method_names if hasattr(view, m)} - {"options", "head"}
        assert path in schema["paths"], path
        assert set(schema["paths"][path]) == methods, path
    assert set(schema["paths"]) == {path for path, _ in routes}
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"


def test_docs_api_md_has_a_row_for_every_route_and_method_and_no_other():
    # a row's first cell: `GET /api/v1/runs/{id}/` or `GET` / `PUT /api/v1/...` (the
    # placeholders' names are the page's own: {id}, {user id}, {hook})
    documented = set()
    for methods, path in re.findall(r"^\| `((?:[A-Z]+` / `)*[A-Z]+) (/api/v1/[^`?]*)",
                                    API_PAGE.read_text(), re.MULTILINE):
        documented |= {(method, re.sub(r"\{[^}]*\}", "{}", path))
                       for method in methods.split("` / `")}
    served = {(method.upper(), re.sub(r"\{[^}]*\}", "{}", path))
              for path, view in v1_routes() for method in view.http_method_names
              if hasattr(view, method) and method not in ("options", "head")}

    assert len(served) >= 40
    assert sorted(served - documented) == [], "served, not in docs/api.md"
    assert sorted(documented - served) == [], "in docs/api.md, not served"


def test_the_docs_page_serves_swagger_ui_and_its_script_from_our_own_files(owner):
    client = Client()
    client.force_login(owner)

    page = client.get("/api/v1/docs/")
    script = client.get("/api/v1/docs/", {"script": ""})

    html = page.content.decode()
    assert page.status_code == 200
    sources = re.findall(r'<script src="([^"]+)"', html)
    assert sources and all(src.startswith("/") for src in sources), sources  # no CDN
    assert "<script>" not in html  # nothing inline: the CSP would refuse it
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert script.status_code == 200 and "/api/v1/schema/" in script.content.decode()
