"""The JSON API's frame: authentication, roles, JSON errors, rate limit, the OpenAPI document
(checked against the url_map), and the lists resource."""

import re

import pytest

from mailer.extensions import db
from mailer.models import ApiToken, MailingList, utcnow
from tests.helpers_api import Api, admin_token, anonymous, api, assert_error, editor_api, editor_token, make_list  # noqa: F401

# --- The OpenAPI document and the url_map ------------------------------------------------


def api_rules(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def test_openapi_document_is_public_and_lists_every_route(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    assert documented == api_rules(app)


def test_openapi_references_resolve_and_path_parameters_are_declared(client):
    document = client.get("/api/v1/openapi.json").get_json()
    text = repr(document)
    for ref in re.findall(r"'\$ref': '#/components/(\w+)/(\w+)'", text):
        assert ref[1] in document["components"][ref[0]], ref
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in item.get("parameters", []) + operation["parameters"]
                        if p["in"] == "path"}
            assert names == declared, (path, method)
            assert operation["responses"], (path, method)
            assert {"400", "401", "429"} <= set(operation["responses"]) or path.endswith("openapi.json")


def test_every_route_but_the_document_refuses_anonymous_and_bad_tokens(app, client, admin_token):
    for path, method in sorted(api_rules(app)):
        url = re.sub(r"{\w+}", "1", path)
        if path == "/api/v1/openapi.json":
            continue
        for headers in ({}, {"Authorization": "Bearer mlr_forged"}, {"Authorization": "Basic eDp5"},
                        {"Authorization": "Bearer " + "x" * 5000}):
            response = client.open(url, method=method.upper(), headers=headers, json={})
            assert_error(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_and_inactive_user_are_refused(api, admin_token, session):
    assert api.get("/lists").status_code == 200
    token = session.query(ApiToken).one()
    token.revoked_at = utcnow()
    session.commit()
    assert_error(api.get("/lists"), 401)
    token.revoked_at = None
    token.user.active = False
    session.commit()
    assert_error(api.get("/lists"), 401)


def test_token_use_is_recorded(api, session):
    assert api.get("/lists").status_code == 200
    db.session.expire_all()
    assert session.query(ApiToken).one().last_used_at is not None


def admin_only_rules(app) -> list[tuple[str, str]]:
    return [(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
            and getattr(app.view_functions[rule.endpoint], "api_role", None) == "admin"
            for method in rule.methods - {"HEAD", "OPTIONS"}]


def test_admin_only_views_are_the_expected_ones(app):
    marked = {endpoint for endpoint, view in app.view_functions.items()
              if endpoint.startswith("api.") and getattr(view, "api_role", None) == "admin"}
    assert marked == {"api.create_list", "api.update_list", "api.delete_list", "api.add_subscriber", "api.erase_subscriber", "api.update_subscriber",
                      "api.bulk_action", "api.create_segment", "api.update_segment", "api.delete_segment"}


def test_editors_get_403_on_every_admin_only_route(app, client, editor_token):
    item = make_list("Kultura")
    for rule, method in admin_only_rules(app):
        url = re.sub(r"<[^>]+>", str(item.id), rule)
        response = client.open(url, method=method, json={"name": "Sport"},
                               headers={"Authorization": f"Bearer {editor_token}"})
        assert_error(response, 403)
    db.session.expire_all()
    assert [(m.name, m.id) for m in db.session.query(MailingList)] == [("Kultura", item.id)]
    assert Api(client, editor_token).get("/lists").status_code == 200


# --- Errors are JSON and 4xx --------------------------------------------------------------

@pytest.mark.parametrize("raw, content_type", [
    (b"{not json", "application/json"),
    (b"\xff\xfe{\"name\": \"x\"}", "application/json"),
    (b'{"name": "Zaz\xf3\xb3\xe6"}', "application/json"),       # Latin-2, not UTF-8
    (b"[1, 2]", "application/json"),
    (b'"name"', "application/json"),
    (b"", "application/json"),
    (b'{"name": NaN}', "application/json"),
    (b"[" * 100000 + b"]" * 100000, "application/json"),
    (b"name=Sport", "application/x-www-form-urlencoded"),
    (b'{"name": "Sport"}', "text/plain"),
])
def test_malformed_bodies_get_400(api, raw, content_type):
    assert_error(api.post("/lists", raw=raw, content_type=content_type), 400)
    assert db.session.query(MailingList).count() == 0


def test_oversized_body_gets_413(app, api):
    body = {"name": "Sport", "description": "x" * (app.config["API_MAX_BODY"] + 10)}
    assert_error(api.post("/lists", body), 413)


def test_unknown_routes_methods_and_ids_are_json(api):
    assert_error(api.get("/nothing-here"), 404)
    assert_error(api.delete("/lists"), 405)
    assert_error(api.patch("/lists/99999999999999999999", {"name": "x"}), 404)
    assert_error(api.patch("/lists/0", {"name": "x"}), 404)
    assert_error(api.patch("/lists/123", {"name": "x"}), 404)


def test_rate_limit_per_token(app, client, admin_token, editor_token):
    original, app.config["API_RATE_LIMIT"] = app.config["API_RATE_LIMIT"], "3 per minute"
    try:
        admin, editor = Api(client, admin_token), Api(client, editor_token)
        for _ in range(3):
            assert admin.get("/lists").status_code == 200
        assert_error(admin.get("/lists"), 429)
        assert editor.get("/lists").status_code == 200  # another token, its own allowance
    finally:
        app.config["API_RATE_LIMIT"] = original


def test_errors_follow_the_language(api):
    polish = assert_error(api.post("/lists", {"name": 5}), 400, "name")["error"]
    assert polish == "To pole musi być tekstem."
    english = assert_error(api.post("/lists?lang=en", {"name": 5}), 400, "name")["error"]
    assert english == "This field must be a string."
    assert polish != english


# --- Lists ----------------------------------------------------------------------------------

def test_lists_create_read_update(api):
    response = api.post("/lists", {"name": "Wydarzenia kulturalne", "description": "Koncerty i wystawy",
                                   "public": False})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["name"] == "Wydarzenia kulturalne" and created["public"] is False
    assert created["slug"]
    listed = api.get("/lists").get_json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]

    response = api.patch(f"/lists/{created['id']}", {"public": True})
    assert response.status_code == 200
    changed = response.get_json()
    assert changed["public"] is True
    assert changed["name"] == "Wydarzenia kulturalne" and changed["description"] == "Koncerty i wystawy"
    response = api.patch(f"/lists/{created['id']}", {"name": "Kultura"})
    assert response.get_json()["name"] == "Kultura"


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 121}, "name"),
    ({"name": None}, "name"),
    ({"name": ["Sport"]}, "name"),
    ({"name": "Sport", "public": "yes"}, "public"),
    ({"name": "Sport", "description": "x" * 2001}, "description"),
    ({"name": "Sport", "colour": "red"}, "colour"),
    ({"name": "Sport", "slug": "!!!"}, "slug"),
])
def test_list_create_refuses_bad_input(api, body, field):
    assert_error(api.post("/lists", body), 400, field)
    assert db.session.query(MailingList).count() == 0


def test_list_slug_conflict_is_409(api):
    make_list("Sport", slug="sport")
    assert_error(api.post("/lists", {"name": "Sport 2", "slug": "sport"}), 409, "slug")


def test_list_update_refuses_bad_input(api):
    item = make_list("Sport")
    assert_error(api.patch(f"/lists/{item.id}", {}), 400)
    assert_error(api.patch(f"/lists/{item.id}", {"name": "x" * 500}), 400, "name")
    assert_error(api.patch(f"/lists/{item.id}", {"slug": "other"}), 400, "slug")
    assert_error(api.patch(f"/lists/{item.id}", {"public": 1}), 400, "public")
    db.session.expire_all()
    assert db.session.get(MailingList, item.id).name == "Sport"
