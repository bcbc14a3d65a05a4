"""Malformed input of any shape is a 4xx on every route, and nothing is half-written
(STANDARDS 38). Property-based: Hypothesis draws a route from the url_map (so routes added
later are covered), values for its arguments, its query string and its body (arbitrary Unicode,
lone surrogates, NUL, deep nesting, huge and out-of-range numbers, missing fields), and sends
them as an anonymous visitor, an editor, an admin and an API token. Never a 500; and a refused
write leaves every table as it was."""

import json
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.extensions import db
from mailer.models import Role
from tests.helpers_api import token_for
from tests.helpers_security import row_counts
from tests.helpers_staff import csrf, login, make_user
from tests.test_transactions import seed

EXAMPLES = 150
PARAM_NAMES = ["q", "page", "list_id", "status", "as", "part", "id", "next", "lang", "kind", "reason", "actor",
               "action", "event_ids", "list_ids", "template_id", "_external", "_scheme", "_anchor", "_method",
               "upcoming", "per_page", "query", "email", "name", "consent", "lists", "locale", "html", "text",
               "addresses", "scheduled_at", "role", "active", "password", "code", "confirm", "scope", "days",
               "required", "subject", "preheader", "title", "starts_at", "website", "choose_lists",
               "List-Unsubscribe"]

# Text as attackers send it: any code point (no lone surrogates: they cannot be sent as UTF-8
# in a URL or form; JSON bodies get them below), with control characters and NUL likely.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\x00\x01\x1b\r\n\t\x7f\u2028\ufffd\u202e%/\\'\"<>&;:=+-@ aZ0"), max_size=20),
    st.sampled_from(["", " ", "0", "-1", str(2**31), str(2**63), str(2**64 + 1), str(-(2**80)), "1e309", "NaN",
                     "١٢٣", "²", "9" * 400, "x" * 5000, "../../etc/passwd", "%00", "javascript:alert(1)",
                     "//evil.example", "true", "null", "[]", "{}"]),
)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**31, 2**63, 2**64]))
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.floats(allow_nan=False), nasty_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=8), inner,
                                                 max_size=5)), max_leaves=12)


def json_body(value) -> bytes:
    return json.dumps(value).encode()


raw_json = st.one_of(
    json_values.map(json_body),
    st.dictionaries(st.sampled_from(PARAM_NAMES), json_values, max_size=8).map(json_body),
    st.sampled_from([b'{"email": "\\ud800@example.org", "consent": true, "name": "\\udfff"}',
                     b'{"name": "\\ud83d", "title": "\\udc00x"}', b'[' * 5000 + b']' * 5000,
                     b'{"a":' * 3000 + b'1' + b'}' * 3000, b'{"list_ids": [' + str(2**64).encode() + b']}',
                     b'{"event_ids": [1e400]}', b'\xff\xfe{', b'{"email": "a@b.pl", "consent": NaN}', b'',
                     b'{"email": "x\\u0000y@example.org", "consent": true}', b'"just a string"']),
)


def rule_url(rule, draw) -> str:
    def value(match):
        converter, args = match.group(1) or "default", match.group(2) or ""
        if converter == "int":
            return str(draw(st.one_of(st.integers(0, 5), st.sampled_from([2**31, 2**63, 2**64, 10**30]))))
        if converter == "any":
            return draw(st.sampled_from(re.split(r"[,\s]+", args.strip(" ()"))))
        text = draw(st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1,
                                      max_size=30), st.sampled_from(["x", "a.eml", "%00", "..", "css/app.css"])))
        return text.replace("/", "%2F") if converter != "path" else text
    return re.sub(r"<(?:(\w+)(\([^)]*\))?:)?(\w+)>", value, rule.rule)


def routes(app, prefixes):
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.rule.startswith(prefixes):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule, method))
    return found


class Staff:
    """The staff callers, put back as they were when a drawn request changed them (garbage may
    well log them out, demote them, deactivate them or require two-factor sign-in)."""

    def __init__(self, app, session):
        self.app, self.session = app, session
        self.users = {role: make_user(session, role) for role in (Role.EDITOR, Role.ADMIN)}
        self.clients = {role: app.test_client() for role in self.users}
        self.csrf: dict[str, str] = {}
        for role in self.users:
            login(self.clients[role], self.users[role].email)

    def restore(self) -> None:
        with db.engine.begin() as conn:
            changed = conn.execute(sa.text("DELETE FROM staff_settings")).rowcount
            for role, user in self.users.items():
                changed += conn.execute(sa.text(
                    "UPDATE users SET role = :role, active = :yes, totp_enabled_at = NULL, totp_secret = NULL "
                    "WHERE id = :id AND (role != :role OR active != :yes OR totp_enabled_at IS NOT NULL)"),
                    {"role": str(role), "yes": True, "id": user.id}).rowcount
        for role, client in self.clients.items():
            if changed or client.get("/admin/account").status_code != 200:
                client._cookies.clear()
                login(client, self.users[role].email)
                self.csrf[str(role)] = csrf(client, "/admin/login")


@pytest.fixture
def callers(app, session):
    seed(session)
    anonymous = app.test_client()
    anonymous.environ_base["HTTP_ORIGIN"] = "http://localhost"
    staff = Staff(app, session)
    editor, admin = staff.clients[Role.EDITOR], staff.clients[Role.ADMIN]
    tokens = {"editor": token_for(Role.EDITOR, "api-editor@example.org"),
              "admin": token_for(Role.ADMIN, "api-admin@example.org")}
    for key in ("SUBSCRIBE_RATE_LIMIT", "SUBSCRIBE_ADDRESS_RATE_LIMIT", "API_RATE_LIMIT", "LOGIN_RATE_LIMIT",
                "LOGIN_ACCOUNT_RATE_LIMIT", "TEMPLATE_PREVIEW_RATE_LIMIT", "TEMPLATE_LIMIT_STRIKES"):
        app.config[key + "_SAVED"] = app.config[key]
        app.config[key] = "100000 per minute"
    app.config["SUBSCRIBE_ANSWER_SECONDS_SAVED"] = app.config["SUBSCRIBE_ANSWER_SECONDS"]
    app.config["SUBSCRIBE_ANSWER_SECONDS"] = 0
    staff.csrf.update({name: csrf(client, "/admin/login") for name, client in
                       (("anonymous", anonymous), ("editor", editor), ("admin", admin))})
    yield {"anonymous": anonymous, "editor": editor, "admin": admin, "tokens": tokens, "staff": staff,
           "csrf": staff.csrf}
    for key in [k for k in app.config if k.endswith("_SAVED")]:
        app.config[key.removesuffix("_SAVED")] = app.config.pop(key)


def check(response, before, method, what, staff=None):
    assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:500])
    if response.status_code >= 400 and method != "GET":
        assert row_counts() == before, ("half-written", what, response.status_code)
    if staff is not None and method != "GET":
        staff.restore()


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("who", ["anonymous", "editor", "admin"])
def test_pages_answer_garbage_with_4xx(app, callers, who):
    client = callers[who]
    candidates = routes(app, ("/admin", "/", ))
    candidates = [(r, m) for r, m in candidates if not r.rule.startswith("/api/")]

    @given(st.data())
    @SETTINGS
    def attack(data):
        rule, method = data.draw(st.sampled_from(candidates))
        url = rule_url(rule, data.draw)
        query = data.draw(st.dictionaries(st.sampled_from(PARAM_NAMES), nasty_text, max_size=4))
        before = row_counts() if method != "GET" else None
        if method == "GET":
            response = client.open(url, method=method, query_string=query)
        elif data.draw(st.booleans()):
            form = data.draw(st.dictionaries(st.sampled_from(PARAM_NAMES), nasty_text, max_size=8))
            form["csrf_token"] = callers["csrf"][who]
            response = client.open(url, method=method, query_string=query, data=form)
        else:
            response = client.open(url, method=method, query_string=query, data=data.draw(raw_json),
                                   content_type="application/json")
        check(response, before, method, (who, method, url, query), callers["staff"])
        if who != "anonymous":
            assert client.get("/admin/account").status_code == 200  # still signed in: coverage holds

    attack()


@pytest.mark.parametrize("who", ["editor", "admin"])
def test_the_api_answers_garbage_with_4xx(app, callers, who):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {callers['tokens'][who]}"}
    candidates = routes(app, ("/api/",))

    @given(st.data())
    @SETTINGS
    def attack(data):
        rule, method = data.draw(st.sampled_from(candidates))
        url = rule_url(rule, data.draw)
        query = data.draw(st.dictionaries(st.sampled_from(PARAM_NAMES), nasty_text, max_size=4))
        before = row_counts() if method != "GET" else None
        body = data.draw(raw_json) if method != "GET" else None
        response = client.open(url, method=method, query_string=query, data=body, headers=headers,
                               content_type="application/json")
        check(response, before, method, (who, method, url, query, body[:200] if body else None))

    attack()


def test_the_known_shapes_on_every_route(app, callers):
    """The findings' own examples, on every route and every int argument: ids past 64 bits,
    a NUL in a search, lone surrogates and deep nesting in JSON, a missing parameter."""
    huge = str(2**64 + 7)
    bodies = [b'{"email": "\\ud800@example.org", "consent": true}', b"[" * 10000 + b"]" * 10000, b"{}"]
    for rule, method in routes(app, ("/",)):
        url = re.sub(r"<int(?:\([^)]*\))?:\w+>", huge, rule.rule)
        url = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", lambda m: "x", url)
        for who in ("anonymous", "editor", "admin"):
            client = callers[who]
            headers = {"Authorization": f"Bearer {callers['tokens']['admin']}"} if url.startswith("/api/") else {}
            for query in ({"q": "a\x00b"}, {"list_id": huge}, {"page": huge}, {"as": huge}, {"id": huge}):
                if method == "GET":
                    check(client.get(url, query_string=query, headers=headers), None, method, (who, url, query))
                    if who != "anonymous":
                        assert client.get("/admin/account").status_code == 200
            if method != "GET":
                before = row_counts()
                for body in bodies:
                    check(client.open(url, method=method, data=body, content_type="application/json",
                                      headers=headers), before, method, (who, method, url, body[:40]))
                check(client.open(url, method=method, data={"csrf_token": callers["csrf"][who]}, headers=headers),
                      before, method, (who, method, url, "missing fields"), callers["staff"])
