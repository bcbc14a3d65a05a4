"""Security headers on every answer (STANDARDS 35), walked over every GET route as every role:
nosniff and a Referrer-Policy everywhere; a Content-Security-Policy on HTML; staff pages not
framed (their previews only by the staff pages) and not stored; HSTS over https."""

import pytest

from mailer.models import Role
from tests.helpers_api import Api
from tests.helpers_staff import login_as
from tests.test_transactions import get_routes, seed


@pytest.fixture
def walked(app, session):
    values = seed(session)
    paths = get_routes(app, values)
    anonymous, editor, admin = app.test_client(), app.test_client(), app.test_client()
    login_as(editor, session, Role.EDITOR)
    login_as(admin, session, Role.ADMIN)
    from tests.helpers_api import token_for

    api = Api(app.test_client(), token_for(Role.ADMIN, "api-admin@example.org"))
    answers = []
    for path in paths:
        for who, caller in (("anonymous", anonymous), ("editor", editor), ("admin", admin)):
            answers.append((who, path, caller.get(path)))
        if path.startswith("/api/"):
            answers.append(("api", path, api.get(path.removeprefix("/api/v1"))))
    return answers


def test_every_answer_has_nosniff_and_a_referrer_policy(walked):
    missing = [(who, path, r.status_code) for who, path, r in walked
               if r.headers.get("X-Content-Type-Options") != "nosniff" or "Referrer-Policy" not in r.headers]
    assert not missing, missing


def test_every_html_page_has_a_csp_that_allows_no_inline_script(walked):
    pages = [(who, path, r) for who, path, r in walked if r.mimetype == "text/html"]
    assert len(pages) > 30
    for who, path, response in pages:
        policy = response.headers.get("Content-Security-Policy", "")
        assert policy, (who, path)
        script = next((p for p in policy.split(";") if p.strip().startswith(("script-src", "default-src"))), "")
        assert "'unsafe-inline'" not in script, (who, path, policy)
        assert "frame-ancestors" in policy, (who, path)


def test_staff_pages_deny_framing_and_are_not_stored(walked):
    staff = [(who, path, r) for who, path, r in walked if path.startswith("/admin")]
    assert staff
    for who, path, response in staff:
        assert response.headers.get("Cache-Control") == "no-store", (who, path)
        if path.endswith("/preview"):  # shown in the staff pages' own frames
            assert response.headers["X-Frame-Options"] == "SAMEORIGIN", (who, path)
        else:
            assert response.headers["X-Frame-Options"] == "DENY", (who, path)
            if response.mimetype == "text/html":
                assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], (who, path)


def test_api_answers_are_not_stored(walked):
    assert all(r.headers.get("Cache-Control") == "no-store" for _w, p, r in walked if p.startswith("/api/"))


def test_pages_with_scripts_carry_the_nonce_of_their_policy(app, client, session):
    page = client.get("/embed")
    policy = page.headers["Content-Security-Policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'nonce="{nonce}"' in page.get_data(as_text=True)
    assert "nonce=" not in page.get_data(as_text=True).split("<pre", 1)[1].split("</pre>", 1)[0]  # the copy


def test_hsts_only_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/").headers
    secure = client.get("/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" in client.get("/api/v1/openapi.json", base_url="https://localhost").headers


def test_errors_carry_the_headers_too(client):
    for response in (client.get("/no-such-page"), client.post("/admin/login"), client.get("/m/forged")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" in response.headers


def test_no_template_holds_an_inline_script_handler():
    """The CSP allows no inline handlers: a template that used one would silently lose it (a
    confirmation dialog that never asks). Forms ask with data-confirm (static/js/confirm.js)."""
    import re
    from pathlib import Path

    handler = re.compile(r"""[\s"'}]on[a-z]+\s*=\s*["']""", re.IGNORECASE)
    found = [str(path) for path in Path("templates").rglob("*.html") if handler.search(path.read_text())
             and not str(path).startswith("templates/email/")]
    assert not found, found
    scripts = [str(path) for path in Path("templates/web").rglob("*.html")
               if re.search(r"<script(?![^>]*\b(src|nonce)=)[^>]*>", path.read_text())]
    assert not scripts, f"inline scripts without the page's nonce: {scripts}"
