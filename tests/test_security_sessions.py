"""Sessions end when they must (STANDARDS 36): logout, deactivation, role and password changes
end every older session of the account, whoever holds a copy of its cookie; staff change their
own password and admins reset another's (web and CLI); the login throttles per account too;
redirects after login stay on this site whatever ``next=`` holds."""

import pytest

from mailer import audit, users
from mailer.models import AuditEntry, Role
from mailer.web.admin.accounts import safe_next
from tests.helpers_security import cookie_of, fresh_user, opens_admin, with_cookie
from tests.helpers_staff import PASSWORD, csrf, login, login_as, make_user, post


def test_logout_ends_a_copied_session(app, client, session):
    login_as(client, session, Role.EDITOR)
    stolen = cookie_of(client)
    assert opens_admin(with_cookie(app, stolen))
    assert post(client, "/admin/logout").status_code == 302
    assert not opens_admin(with_cookie(app, stolen))
    assert not opens_admin(client)


def test_logout_ends_the_other_sessions_of_the_account_too(app, session):
    user = make_user(session, Role.EDITOR)
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, user.email)
    login(phone, user.email)
    assert opens_admin(laptop) and opens_admin(phone)
    post(laptop, "/admin/logout")
    assert not opens_admin(phone)


@pytest.mark.parametrize("change", ["deactivate", "role", "password", "password-cli", "2fa-off"])
def test_account_changes_end_every_older_session(app, session, change):
    admin = app.test_client()
    login_as(admin, session, Role.ADMIN)
    make_user(session, Role.ADMIN)  # so the editor may be promoted and the admin demoted
    victim_user = make_user(session, Role.EDITOR)
    victim = app.test_client()
    login(victim, victim_user.email)
    stolen = cookie_of(victim)
    assert opens_admin(with_cookie(app, stolen))
    if change == "deactivate":
        response = post(admin, f"/admin/users/{victim_user.id}/active", {"active": "0"}, "/admin/users")
    elif change == "role":
        response = post(admin, f"/admin/users/{victim_user.id}/role", {"role": "admin"}, "/admin/users")
    elif change == "password":
        response = post(admin, f"/admin/users/{victim_user.id}/password", {"password": "nowe hasło 12345"},
                        "/admin/users")
    elif change == "2fa-off":
        response = post(admin, f"/admin/users/{victim_user.id}/2fa/disable", {}, "/admin/users")
    else:
        result = app.test_cli_runner().invoke(args=["users", "set-password", victim_user.email],
                                              env={"MAILER_PASSWORD": "nowe hasło 12345"})
        assert result.exit_code == 0, result.output
        response = None
    assert response is None or response.status_code == 302
    assert not opens_admin(with_cookie(app, stolen))
    assert not opens_admin(victim)


def test_changing_ones_own_password_keeps_this_session_and_ends_the_others(app, client, session):
    user = make_user(session, Role.EDITOR)
    login(client, user.email)
    other = app.test_client()
    login(other, user.email)
    page = client.get("/admin/account")
    assert page.status_code == 200 and b"current_password" in page.data
    wrong = post(client, "/admin/account/password", {"current_password": "not it at all",
                                                     "new_password": "zupełnie nowe hasło"}, "/admin/account")
    assert wrong.status_code == 400 and opens_admin(other)
    short = post(client, "/admin/account/password", {"current_password": PASSWORD, "new_password": "krótkie"},
                 "/admin/account")
    assert short.status_code == 400
    done = post(client, "/admin/account/password", {"current_password": PASSWORD,
                                                    "new_password": "zupełnie nowe hasło"}, "/admin/account")
    assert done.status_code == 302
    assert opens_admin(client) and not opens_admin(other)
    session.rollback()
    assert users.authenticate(session, user.email, "zupełnie nowe hasło") is not None
    assert users.authenticate(session, user.email, PASSWORD) is None
    actions = [e.action for e in audit.search(session, actor=user.email).rows]
    assert "password.change" in actions


def test_a_session_of_a_deleted_version_or_malformed_id_is_anonymous(app, session):
    user = make_user(session, Role.ADMIN)
    for forged in (str(user.id), f"{user.id}.0", f"{user.id}.999", "x.1", f"{2**70}.1", "", "1.1.1", "\x00"):
        client = app.test_client()
        with client.session_transaction() as sess:
            sess["_user_id"] = forged
        assert not opens_admin(client), forged


def test_staff_session_cookie_expires(app, client, session):
    login_as(client, session, Role.EDITOR)
    cookie = client.get_cookie("session")
    assert cookie.expires is not None  # a permanent session: PERMANENT_SESSION_LIFETIME bounds it
    assert app.permanent_session_lifetime.total_seconds() == app.config["PERMANENT_SESSION_LIFETIME"]


# --- Per-account throttle ---------------------------------------------------------------------

def test_failed_logins_are_limited_per_account_from_any_address(app, session):
    make_user(session, Role.ADMIN, "szef@example.org")
    limit = int(app.config["LOGIN_ACCOUNT_RATE_LIMIT"].split()[0])
    codes = []
    for n in range(limit + 4):  # each attempt from a different address (a botnet)
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"
        codes.append(login(client, "SZEF@example.org " if n % 2 else "szef@example.org", "zgaduję").status_code)
        if codes[-1] == 429:
            break
    assert codes[:limit] == [401] * limit and codes[-1] == 429
    # Another account is not affected, and successful logins do not count.
    make_user(session, Role.EDITOR, "inna@example.org")
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert login(other, "inna@example.org").status_code == 302


# --- Redirects after login ---------------------------------------------------------------------

EVIL = ["//evil.example/x", "///evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example",
        "/%09/evil.example", "https://evil.example/admin/", "http:evil.example", "\\\\evil.example",
        "/ /evil.example", "javascript:alert(1)", "/admin\r\nLocation: //evil.example", "//", "/\x00/evil",
        "／／evil.example", "/\u3000/evil.example", "evil.example", "/archive", "", " /admin/"]


@pytest.mark.parametrize("target", EVIL)
def test_next_never_leaves_the_staff_pages(client, session, target):
    make_user(session, Role.ADMIN, "a@example.org")
    token = csrf(client)
    response = client.post("/admin/login", query_string={"next": target},
                           data={"csrf_token": token, "email": "a@example.org", "password": PASSWORD})
    if "\x00" in target:  # control characters anywhere in a request: refused outright
        assert response.status_code == 400
        return
    assert response.status_code == 302
    assert response.headers["Location"] in ("/admin/", "http://localhost/admin/")


@pytest.mark.parametrize("target, kept", [("/admin/campaigns", "/admin/campaigns"),
                                          ("/admin/subscribers?q=anna", "/admin/subscribers?q=anna")])
def test_next_keeps_a_staff_page(client, session, target, kept):
    make_user(session, Role.ADMIN, "a@example.org")
    token = csrf(client)
    response = client.post("/admin/login", query_string={"next": target},
                           data={"csrf_token": token, "email": "a@example.org", "password": PASSWORD})
    assert response.headers["Location"].endswith(kept)


def test_safe_next_property():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @given(st.text(max_size=40))
    @settings(max_examples=500, deadline=None, database=None)
    def check(target):
        kept = safe_next(target)
        if kept is not None:
            assert kept.startswith("/admin") and not kept.startswith("//")
            assert all(0x21 <= ord(ch) < 0x7F for ch in kept)

    check()


def test_sign_ins_and_logouts_are_audited(client, session, fresh):
    user = login_as(client, session, Role.EDITOR)
    post(client, "/admin/logout")
    with fresh() as reader:
        actions = [e.action for e in reader.query(AuditEntry).filter(AuditEntry.actor == user.email)
                   .order_by(AuditEntry.id)]
    assert actions == ["login", "logout"]


def test_the_user_loader_reads_the_current_version(session):
    user = make_user(session, Role.EDITOR)
    sid = user.get_id()
    assert users.user_for_session(session, sid).id == user.id
    users.end_sessions(user)
    session.commit()
    assert users.user_for_session(session, sid) is None
    assert fresh_user(session, user.id).get_id() != sid
