"""Staff accounts for people: the last admin refused on the staff page itself, confirmations
before drastic changes, passwords reset by an admin (typed or generated) and from the CLI."""

import html
import re

import pytest
from sqlalchemy import select

from mailer import users
from mailer.errors import Conflict
from mailer.models import AuditEntry, Role, User
from tests.helpers_staff import PASSWORD, login, login_as, make_list, make_subscriber, make_user, post


def test_the_last_admin_is_refused_on_the_staff_page(client, session, fresh):
    admin = login_as(client, session, Role.ADMIN)
    response = post(client, f"/admin/users/{admin.id}/role", {"role": "editor"}, "/admin/users")
    assert response.status_code == 409
    page = html.unescape(response.get_data(as_text=True))
    assert "<h1>Personel</h1>" in page  # the staff page, not a bare error page
    assert f"Konto {admin.email} to ostatni aktywny administrator" in page
    # with a second admin deactivated, demoting oneself is still refused
    other = make_user(session, Role.ADMIN)
    assert post(client, f"/admin/users/{other.id}/active", {"active": "0"}, "/admin/users").status_code == 302
    response = post(client, f"/admin/users/{admin.id}/role", {"role": "editor"}, "/admin/users")
    assert response.status_code == 409
    check = fresh().get(User, admin.id)
    assert check.role == Role.ADMIN and check.active
    assert fresh().scalar(select(AuditEntry.id).where(AuditEntry.action == "user.role")) is None


def test_deactivating_the_last_admin_from_the_domain_names_them(session):
    admin = make_user(session, Role.ADMIN, "jedyny@example.org")
    with pytest.raises(Conflict, match="jedyny@example.org is the last active administrator"):
        users.set_active(session, admin.id, False)


def test_drastic_changes_ask_first(client, session):
    admin = login_as(client, session, Role.ADMIN)
    make_user(session, Role.EDITOR, "redaktor@example.org")
    page = html.unescape(client.get("/admin/users").get_data(as_text=True))
    assert "data-confirm=\"Zmienić rolę redaktor@example.org?" in page
    assert "data-confirm=\"Dezaktywować konto redaktor@example.org?" in page
    assert f"Dezaktywować konto {admin.email}" not in page  # no button to deactivate oneself
    item = make_list(session, "Koncerty")
    person = make_subscriber(session, "osoba@example.org", lists=[item])
    page = html.unescape(client.get(f"/admin/subscribers/{person.id}").get_data(as_text=True))
    assert "data-confirm=\"Wypisać osoba@example.org ze wszystkich list?" in page
    assert "data-confirm=\"Wypisać osoba@example.org z listy „Koncerty”?\"" in page


def test_an_admin_generates_a_password_shown_once(app, client, session, fresh):
    login_as(client, session, Role.ADMIN)
    target = make_user(session, Role.EDITOR, "zapominalska@example.org")
    theirs = app.test_client()
    assert login(theirs, target.email).status_code == 302
    assert theirs.get("/admin/").status_code == 200
    response = post(client, f"/admin/users/{target.id}/password", {"generate": "1"}, "/admin/users")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    shown = re.search(r'id="generated-password">.*?<code>([^<]+)</code>', page, re.S).group(1)
    assert len(shown) >= 16
    assert theirs.get("/admin/").status_code == 302  # their session ended
    assert users.authenticate(fresh(), target.email, shown) is not None
    assert users.authenticate(fresh(), target.email, PASSWORD) is None
    entry = fresh().scalar(select(AuditEntry).where(AuditEntry.action == "password.reset"))
    assert entry.target == str(target.id) and entry.detail["generated"] is True
    assert shown not in client.get("/admin/users").get_data(as_text=True)  # once


def test_an_admin_types_a_new_password_and_a_short_one_is_refused(client, session, fresh):
    login_as(client, session, Role.ADMIN)
    target = make_user(session, Role.EDITOR)
    response = post(client, f"/admin/users/{target.id}/password", {"password": "krótkie"}, "/admin/users")
    assert response.status_code == 400 and "<h1>Personel</h1>" in response.get_data(as_text=True)
    response = post(client, f"/admin/users/{target.id}/password", {"password": "nowe długie hasło"}, "/admin/users")
    assert response.status_code == 302
    assert users.authenticate(fresh(), target.email, "nowe długie hasło") is not None


def test_editors_cannot_reset_passwords(client, session):
    login_as(client, session, Role.EDITOR)
    target = make_user(session, Role.EDITOR)
    assert post(client, f"/admin/users/{target.id}/password", {"generate": "1"}).status_code == 403


def test_cli_set_password_generated_and_prompted(app, session, fresh):
    target = make_user(session, Role.EDITOR, "cli@example.org")
    version = target.session_version
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "set-password", "cli@example.org", "--generate"], env={"MAILER_PASSWORD": ""})
    assert result.exit_code == 0, result.output
    shown = result.output.strip().splitlines()[-1].rsplit(" ", 1)[1]
    assert users.authenticate(fresh(), "cli@example.org", shown) is not None
    assert fresh().get(User, target.id).session_version > version
    result = runner.invoke(args=["users", "set-password", "cli@example.org"], env={"MAILER_PASSWORD": ""},
                           input="hasło z konsoli\nhasło z konsoli\n")
    assert result.exit_code == 0, result.output
    assert users.authenticate(fresh(), "cli@example.org", "hasło z konsoli") is not None
    result = runner.invoke(args=["users", "set-password", "nikt@example.org", "--generate"])
    assert result.exit_code != 0 and "No staff member" in result.output
