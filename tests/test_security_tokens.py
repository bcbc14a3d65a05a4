"""API tokens: a name, a scope (read-only, read-write, admin), an expiry and a last use; made,
listed and revoked in the staff pages, on the command line and through the API itself. And
what an editor's token may read agrees with the staff pages (consent origins)."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer import users
from mailer.models import ApiToken, AuditEntry, Role, Scope, utcnow
from tests.helpers_api import Api, make_list
from tests.helpers_staff import login, login_as, make_subscriber, make_user, post


def token(session, role=Role.ADMIN, **kwargs) -> str:
    user = make_user(session, role)
    value = users.create_token(session, user, "tests", **kwargs)
    session.commit()
    return value


def test_scopes_limit_what_a_token_does(client, session):
    make_list("Wydarzenia")
    read = Api(client, token(session, Role.ADMIN, scope="read"))
    assert read.get("/lists").status_code == 200
    refused = read.post("/lists", {"name": "Sport"})
    assert refused.status_code == 403 and "error" in refused.get_json()
    write = Api(client, token(session, Role.ADMIN, scope="write"))
    assert write.post("/events", {"title": "Koncert", "starts_at": "2031-05-01T18:00:00+02:00"}).status_code == 201
    assert write.post("/lists", {"name": "Sport"}).status_code == 403  # admin-only needs admin scope
    admin = Api(client, token(session, Role.ADMIN, scope="admin"))
    assert admin.post("/lists", {"name": "Sport"}).status_code == 201


def test_an_editor_cannot_mint_an_admin_token_and_a_demoted_admin_loses_theirs(client, session):
    editor = make_user(session, Role.EDITOR)
    with pytest.raises(Exception, match="scope"):
        users.create_token(session, editor, "x", "admin")
    session.rollback()
    admin = make_user(session, Role.ADMIN)
    make_user(session, Role.ADMIN)
    value = users.create_token(session, admin, "cms", "admin")
    session.commit()
    users.set_role(session, admin.id, Role.EDITOR)
    session.commit()
    assert Api(client, value).get("/lists").status_code == 401


def test_expired_tokens_stop_working(client, session):
    value = token(session, Role.EDITOR, days=1)
    api = Api(client, value)
    assert api.get("/lists").status_code == 200
    item = session.scalar(select(ApiToken))
    item.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert api.get("/lists").status_code == 401
    for days in (0, 367, -1, True):
        with pytest.raises(Exception, match="days"):
            users.create_token(session, item.user, "x", days=days)


def test_tokens_through_the_api(client, session, fresh):
    admin_token = token(session, Role.ADMIN)
    api = Api(client, admin_token)
    created = api.post("/tokens", {"name": "CMS", "scope": "read", "days": 30})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["token"].startswith("mlr_") and body["scope"] == "read" and body["prefix"] == body["token"][:10]
    listed = api.get("/tokens").get_json()["items"]
    assert {item["name"] for item in listed} == {"tests", "CMS"} and all("token" not in item for item in listed)
    narrow = Api(client, body["token"])
    assert narrow.get("/tokens").status_code == 200
    assert narrow.post("/tokens", {"name": "wider"}).status_code == 403  # a read token writes nothing
    assert api.delete(f"/tokens/{body['id']}").status_code == 204
    assert narrow.get("/lists").status_code == 401
    assert api.delete("/tokens/999999").status_code == 404
    assert api.post("/tokens", {"name": "x", "days": 1000}).status_code == 400
    with fresh() as reader:
        actions = [e.action for e in reader.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions.count("token.create") == 1 and actions.count("token.revoke") == 1


def test_editors_token_sees_and_revokes_only_its_own(client, session):
    mine, other = token(session, Role.EDITOR), token(session, Role.EDITOR)
    other_id = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == users._token_hash(other)))
    api = Api(client, mine)
    assert len(api.get("/tokens").get_json()["items"]) == 1
    assert api.delete(f"/tokens/{other_id}").status_code == 404
    assert Api(client, other).get("/lists").status_code == 200
    created = api.post("/tokens", {"name": "second", "scope": "admin"})
    assert created.status_code == 400 and created.get_json()["field"] == "scope"


def test_tokens_in_the_staff_pages(app, client, session):
    user = login_as(client, session, Role.EDITOR)
    page = client.get("/admin/account")
    assert page.status_code == 200 and b'value="admin"' not in page.data  # an editor's scopes
    made = post(client, "/admin/account/tokens", {"name": "Strona miasta", "scope": "read", "days": "30"},
                "/admin/account")
    assert made.status_code == 200
    value = re.search(r'id="new-token">(mlr_[A-Za-z0-9_-]+)<', made.get_data(as_text=True)).group(1)
    assert Api(app.test_client(), value).get("/lists").status_code == 200
    listing = client.get("/admin/account").get_data(as_text=True)
    assert "Strona miasta" in listing and value not in listing  # shown once
    item = session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert item.last_used_at is not None and item.expires_at > utcnow() + timedelta(days=29)
    assert post(client, "/admin/account/tokens", {"name": "x", "scope": "admin", "days": "30"},
                "/admin/account").status_code == 400
    assert post(client, f"/admin/tokens/{item.id}/revoke", {}, "/admin/account").status_code == 302
    assert Api(app.test_client(), value).get("/lists").status_code == 401
    # Admins list and revoke everyone's.
    admin = app.test_client()
    login(admin, make_user(session, Role.ADMIN).email)
    other = token(session, Role.EDITOR)
    other_id = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == users._token_hash(other)))
    assert "Strona miasta" in admin.get("/admin/tokens").get_data(as_text=True)
    assert client.get("/admin/tokens").status_code == 403
    assert post(client, f"/admin/tokens/{other_id}/revoke", {}, "/admin/account").status_code == 404
    assert post(admin, f"/admin/tokens/{other_id}/revoke", {"back": "tokens"}, "/admin/tokens").status_code == 302
    assert Api(app.test_client(), other).get("/lists").status_code == 401


def test_tokens_on_the_command_line(app, session):
    user = make_user(session, Role.EDITOR, "cms@example.org")
    runner = app.test_cli_runner()
    made = runner.invoke(args=["tokens", "create", "cms@example.org", "--name", "CMS", "--scope", "read",
                               "--days", "10"])
    assert made.exit_code == 0, made.output
    assert runner.invoke(args=["tokens", "create", "cms@example.org", "--scope", "admin"]).exit_code != 0
    assert runner.invoke(args=["tokens", "create", "cms@example.org", "--days", "0"]).exit_code != 0
    listed = runner.invoke(args=["tokens", "list", "cms@example.org"])
    assert listed.exit_code == 0 and "CMS" in listed.output and "read" in listed.output
    assert made.output.strip() not in listed.output and "active" in listed.output
    token_id = session.scalar(select(ApiToken.id).where(ApiToken.user_id == user.id))
    revoked = runner.invoke(args=["tokens", "revoke", str(token_id)])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
    assert runner.invoke(args=["tokens", "revoke", "999999"]).exit_code != 0


# --- What an editor may see: the same answer in the staff pages and the API -------------------

def test_consent_origins_are_for_admins_in_the_api_as_in_the_pages(client, session):
    mailing_list = make_list("Koncerty")
    anna = make_subscriber(session, "anna@example.org", "Anna", [mailing_list])
    editor = Api(client, token(session, Role.EDITOR))
    shown = editor.get(f"/subscribers/{anna.id}").get_json()
    history = shown["consent_history"]
    assert history and all("ip" not in item and "user_agent" not in item for item in history)
    assert history[0]["action"] == "subscribe"
    admin = Api(client, token(session, Role.ADMIN, scope=Scope.ADMIN))
    assert admin.get(f"/subscribers/{anna.id}").get_json()["consent_history"][0]["ip"] == "203.0.113.5"
    admin_write = Api(client, token(session, Role.ADMIN, scope=Scope.WRITE))
    assert "ip" not in admin_write.get(f"/subscribers/{anna.id}").get_json()["consent_history"][0]
