"""Every staff and API route, found by walking app.url_map, refuses anonymous callers and,
where admins only are allowed, editors. Routes added later are covered automatically."""

import re

import pytest

from mailer.models import Role
from tests.helpers_staff import csrf, login_as

PUBLIC_ADMIN = {"admin.login", "admin.login_2fa"}
PUBLIC_API = {"api.openapi_document"}
SAMPLE = {"int": "1", "default": "x", "string": "x", "path": "x", "any": None}


def build_path(rule) -> str:
    """The rule's URL with a plausible value in each argument (the first choice of an any())."""
    def value(match):
        converter, name = match.group(1), match.group(3)
        if converter == "any":
            return re.split(r"[,\s]+", match.group(2).strip(" ()"))[0]
        return SAMPLE.get(converter or "default", "x")
    return re.sub(r"<(?:(\w+)(\([^)]*\))?:)?(\w+)>", value, rule.rule)


def routes(app, prefix: str):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(prefix):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_there_are_routes_to_check(app):
    admin = list(routes(app, "/admin"))
    assert len(admin) >= 10 and any(r.endpoint == "admin.users" for r, _ in admin)


def test_every_admin_view_declares_its_role(app):
    missing = [rule.endpoint for rule, _ in routes(app, "/admin")
               if rule.endpoint not in PUBLIC_ADMIN
               and not hasattr(app.view_functions[rule.endpoint], "staff_role")]
    assert not missing, f"views without @staff_required: {missing}"


def test_anonymous_is_sent_to_login_on_every_admin_route(app):
    anonymous = app.test_client()
    token = csrf(anonymous)  # so a POST is refused for the login, not for a missing token
    refused = []
    for rule, method in routes(app, "/admin"):
        if rule.endpoint in PUBLIC_ADMIN:
            continue
        response = anonymous.open(build_path(rule), method=method, data={"csrf_token": token})
        if response.status_code != 302 or "/admin/login" not in response.headers.get("Location", ""):
            refused.append((method, rule.rule, response.status_code))
    assert not refused, f"routes that did not redirect to the login: {refused}"


def test_anonymous_gets_401_json_on_every_api_route(app):
    anonymous = app.test_client()
    wrong = []
    for rule, method in routes(app, "/api/v1"):
        if rule.endpoint in PUBLIC_API:
            continue
        response = anonymous.open(build_path(rule), method=method, json={})
        if response.status_code != 401 or not (response.is_json and "error" in response.get_json()):
            wrong.append((method, rule.rule, response.status_code))
    assert not wrong, f"API routes that did not answer 401 JSON: {wrong}"


def test_a_bad_api_token_gets_401(app):
    anonymous = app.test_client()
    for rule, method in routes(app, "/api/v1"):
        if rule.endpoint in PUBLIC_API:
            continue
        response = anonymous.open(build_path(rule), method=method, json={},
                                  headers={"Authorization": "Bearer mlr_forged"})
        assert response.status_code == 401, (method, rule.rule)


def test_editor_is_refused_every_admin_only_route(app, session):
    editor = app.test_client()
    login_as(editor, session, Role.EDITOR)
    token = csrf(editor, "/admin/")
    admin_only = [(rule, method) for rule, method in routes(app, "/admin")
                  if getattr(app.view_functions[rule.endpoint], "staff_role", None) == Role.ADMIN]
    assert any(rule.endpoint == "admin.users" for rule, _ in admin_only)
    allowed = [(method, rule.rule, editor.open(build_path(rule), method=method,
                                                data={"csrf_token": token}).status_code)
               for rule, method in admin_only]
    assert all(code == 403 for *_, code in allowed), [a for a in allowed if a[2] != 403]


@pytest.mark.parametrize("path", ["/admin/", "/admin/subscribers", "/admin/lists"])
def test_editor_reads_staff_pages(app, session, path):
    editor = app.test_client()
    login_as(editor, session, Role.EDITOR)
    assert editor.get(path).status_code == 200


def test_editor_sees_no_admin_only_links(app, session):
    editor = app.test_client()
    login_as(editor, session, Role.EDITOR)
    page = editor.get("/admin/subscribers").data
    assert b"/admin/users" not in page and b"export.csv" not in page
