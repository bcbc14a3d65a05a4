"""The audit log: staff actions (sign-ins, sends, exports, erasures, role and token changes)
are appended in the action's own transaction, never changed, readable and exportable by
admins only; an erased subscriber's address is not left behind in it."""

import csv
import io

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from mailer import audit, campaigns
from mailer.extensions import db
from mailer.models import AuditEntry, Role
from tests.helpers_content import make_event
from tests.helpers_staff import csrf, login_as, make_list, make_subscriber, make_user, post


def actions(fresh) -> list[str]:
    with fresh() as reader:
        return [e.action for e in reader.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_staff_actions_are_recorded_by_whom_and_from_where(app, client, session, fresh, celery_worker):
    admin = login_as(client, session, Role.ADMIN)
    other = make_user(session, Role.EDITOR)
    mailing_list = make_list(session)
    anna = make_subscriber(session, "anna@example.org", "Anna", [mailing_list])
    campaign = campaigns.create_campaign(session, event_ids=[make_event(session).id], list_ids=[mailing_list.id])
    session.commit()
    post(client, f"/admin/users/{other.id}/role", {"role": "admin"}, "/admin/users")
    post(client, "/admin/account/tokens", {"name": "CMS", "scope": "read", "days": "30"}, "/admin/account")
    post(client, "/admin/subscribers/export.csv", {}, "/admin/subscribers")
    post(client, f"/admin/subscribers/{anna.id}/export.json", {}, "/admin/subscribers")
    page = f"/admin/campaigns/{campaign.id}"
    post(client, f"{page}/test", {"addresses": "t@example.org"}, page)
    post(client, f"{page}/send", {}, page)
    post(client, f"/admin/subscribers/{anna.id}/erase", {"confirm": "yes"}, f"/admin/subscribers/{anna.id}/erase")
    assert actions(fresh) == ["login", "user.role", "token.create", "subscribers.export", "subscriber.export",
                              "campaign.test", "campaign.send", "subscriber.erase"]
    with fresh() as reader:
        entries = list(reader.scalars(select(AuditEntry)))
    assert {e.actor for e in entries} == {admin.email} and {e.ip for e in entries} == {"127.0.0.1"}
    assert all("anna@example.org" not in str(e.detail) + e.target for e in entries)  # erased means erased


def test_refused_actions_leave_no_entry(client, session, fresh):
    login_as(client, session, Role.ADMIN)
    campaign_id = 999999
    post(client, f"/admin/campaigns/{campaign_id}/send", {}, "/admin/")
    post(client, "/admin/users/999999/role", {"role": "admin"}, "/admin/users")
    assert actions(fresh) == ["login"]


def test_the_log_is_append_only(session):
    entry = audit.record(session, audit.Actor(None, "cli:test", "cli"), "user.create", "1")
    session.commit()
    entry.target = "2"
    with pytest.raises(RuntimeError, match="append-only"):
        session.commit()
    session.rollback()
    session.delete(session.get(AuditEntry, entry.id))
    with pytest.raises(RuntimeError, match="append-only"):
        session.commit()
    session.rollback()
    with pytest.raises(ValueError):
        audit.record(session, audit.Actor(None, "x"), "not.an.action")


def test_the_migrated_database_refuses_changes_to_the_log_too(app_instance, database_url, tmp_path):
    """The triggers of migration 0007, on the database under test."""
    from flask_migrate import upgrade

    from mailer import create_app
    from tests.test_migrations import fresh_database

    url, drop = fresh_database(database_url, tmp_path)
    settings = {key: value for key, value in app_instance.config.items() if key.isupper()}
    migrated = create_app("test", {**settings, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with migrated.app_context():
            upgrade()
            with db.engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO audit_log (created_at, actor, via, action, target, detail, ip) "
                                     "VALUES (CURRENT_TIMESTAMP, 'a', 'cli', 'login', '', '{}', '')"))
            for statement in ("UPDATE audit_log SET actor = 'b'", "DELETE FROM audit_log"):
                with pytest.raises(sa.exc.DBAPIError), db.engine.begin() as conn:
                    conn.execute(sa.text(statement))
            with db.engine.connect() as conn:
                assert conn.execute(sa.text("SELECT actor FROM audit_log")).scalar_one() == "a"
            db.engine.dispose()
    finally:
        if drop:
            drop()


def test_admins_read_filter_and_export_the_log(app, client, session, fresh):
    admin = login_as(client, session, Role.ADMIN)
    editor = app.test_client()
    editor_user = login_as(editor, session, Role.EDITOR)
    page = client.get("/admin/audit", query_string={"actor": editor_user.email})
    assert page.status_code == 200 and editor_user.email in page.get_data(as_text=True)
    assert client.get("/admin/audit", query_string={"action": "nonsense"}).status_code == 400
    export = client.post("/admin/audit/export.csv", data={"csrf_token": csrf(client, "/admin/audit"),
                                                          "action": "login"})
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == audit.EXPORT_HEADER
    assert {row[2] for row in rows[1:]} == {admin.email, editor_user.email}
    assert {row[4] for row in rows[1:]} == {"login"}
    assert actions(fresh)[-1] == "audit.export"
    assert editor.get("/admin/audit").status_code == 403
    assert editor.post("/admin/audit/export.csv", data={"csrf_token": csrf(editor, "/admin/")}).status_code == 403


def test_command_line_actions_are_recorded(app, session, fresh):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "create", "nowy@example.org", "--role", "editor"],
                  env={"MAILER_PASSWORD": "bardzo tajne hasło"})
    runner.invoke(args=["tokens", "create", "nowy@example.org", "--name", "CMS"])
    with fresh() as reader:
        entries = list(reader.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(e.action, e.via) for e in entries] == [("user.create", "cli"), ("token.create", "cli")]


def test_the_log_pages_by_keyset_and_counts_exactly_only_up_to_a_limit(client, session, monkeypatch):
    """A log of millions (an API client's writes are each an entry) is read a page at a time
    by id, newest first, at any depth; counted exactly up to COUNT_LIMIT, past it "more than"
    or the database's estimate ("about")."""
    login_as(client, session, Role.ADMIN)
    actor = audit.Actor(None, "api-token:7", "api")
    for n in range(7):
        audit.record(session, actor, "subscriber.create", str(n))
    session.commit()
    mine = list(session.scalars(select(AuditEntry.id).where(AuditEntry.actor == "api-token:7")
                                .order_by(AuditEntry.id.desc())))
    seen, after = [], None
    while True:
        found = audit.search(session, actor="api-token:7", after=after, per_page=3)
        assert found.total == 7 and found.total_exact
        seen += [entry.id for entry in found.rows]
        if found.next_after is None:
            break
        after = found.next_after
    assert seen == mine
    newer = audit.search(session, actor="api-token:7", before=mine[-1], per_page=3)
    assert [entry.id for entry in newer.rows] == mine[-4:-1] and newer.prev_before == mine[-4]
    page = client.get("/admin/audit", query_string={"actor": "api-token:7", "after": mine[2], "lang": "pl"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'rel="prev"' in text and f"before={mine[3]}" in text
    assert client.get("/admin/audit", query_string={"after": "1e9", "before": "-1"}).status_code == 200
    monkeypatch.setattr(audit, "COUNT_LIMIT", 5)
    found = audit.search(session, actor="api-token:7")
    assert not found.total_exact and found.total >= 5
    shown = client.get("/admin/audit", query_string={"actor": "api-token:7", "lang": "pl"}).get_data(as_text=True)
    assert ("znaleziono ponad 5" in shown or "znaleziono około" in shown) and "Znaleziono: 7" not in shown
