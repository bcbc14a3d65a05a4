"""Staff login and logout, the login rate limit, and the staff accounts page."""

from sqlalchemy import select

from mailer import users
from mailer.models import Role, User
from tests.helpers_staff import PASSWORD, csrf, login, login_as, make_user, post


def test_login_and_logout(client, session):
    user = make_user(session, Role.EDITOR, "redaktorka@example.org")
    page = client.get("/admin/login")
    assert page.status_code == 200 and b"csrf_token" in page.data
    response = login(client, "Redaktorka@Example.org")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    cookie = response.headers.getlist("Set-Cookie")
    assert any("HttpOnly" in c and "SameSite=Lax" in c for c in cookie)
    assert client.get("/admin/").status_code == 200
    assert session.get(User, user.id).last_login_at is not None
    response = post(client, "/admin/logout")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert client.get("/admin/").status_code == 302


def test_wrong_password_and_inactive_account_are_refused(client, session):
    make_user(session, Role.ADMIN, "szef@example.org")
    response = login(client, "szef@example.org", "wrong password!")
    assert response.status_code == 401
    assert client.get("/admin/").status_code == 302
    other = make_user(session, Role.EDITOR, "byly@example.org")
    users.set_active(session, other.id, False)
    session.commit()
    assert login(client, "byly@example.org").status_code == 401


def test_login_without_csrf_or_fields_is_a_4xx(client, session):
    make_user(session, Role.ADMIN, "a@example.org")
    assert client.post("/admin/login", data={"email": "a@example.org", "password": PASSWORD}).status_code == 400
    token = csrf(client)
    assert client.post("/admin/login", data={"csrf_token": token}).status_code == 400


def test_login_is_rate_limited(app, client, session, monkeypatch):
    """Per client address (the per-account limit: tests/test_security_sessions.py)."""
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_RATE_LIMIT", "1000 per minute")
    make_user(session, Role.ADMIN, "a@example.org")
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    codes = [login(client, "a@example.org", "not the password").status_code for _ in range(limit)]
    assert codes == [401] * limit
    # Other test runs sharing this Redis may reset the limiter's keys (limiter.reset() clears
    # every LIMITS:* key), so allow a few more attempts before the refusal shows.
    for _ in range(3 * limit):
        response = login(client, "a@example.org", "still not the password")
        if response.status_code == 429:
            break
    assert response.status_code == 429
    assert login(client, "a@example.org").status_code == 429  # even the right password waits


def test_open_redirect_after_login_is_refused(client, session):
    make_user(session, Role.ADMIN, "a@example.org")
    token = csrf(client)
    response = client.post("/admin/login?next=//evil.example/x",
                           data={"csrf_token": token, "email": "a@example.org", "password": PASSWORD})
    assert response.headers["Location"].endswith("/admin/")


def test_session_is_regenerated_on_login(client, session):
    make_user(session, Role.ADMIN, "a@example.org")
    client.get("/admin/login")
    with client.session_transaction() as before:
        before["planted"] = "by an attacker"
    login(client, "a@example.org")
    with client.session_transaction() as after:
        assert "planted" not in after and "_user_id" in after


def test_admin_manages_staff(client, session):
    admin = login_as(client, session, Role.ADMIN)
    page = client.get("/admin/users")
    assert page.status_code == 200 and admin.email.encode() in page.data
    response = post(client, "/admin/users", {"email": "nowa@example.org", "role": "editor",
                                              "password": "długie hasło 123"}, page="/admin/users")
    assert response.status_code == 302
    new = session.scalar(select(User).where(User.email == "nowa@example.org"))
    assert new.role == Role.EDITOR
    assert post(client, f"/admin/users/{new.id}/role", {"role": "root"}, "/admin/users").status_code == 400
    assert post(client, f"/admin/users/{new.id}/role", {"role": "admin"}, "/admin/users").status_code == 302
    session.refresh(new)
    assert new.role == Role.ADMIN
    assert post(client, f"/admin/users/{new.id}/active", {"active": "0"}, "/admin/users").status_code == 302
    session.refresh(new)
    assert not new.active


def test_bad_staff_input_is_a_4xx_and_nothing_is_written(client, session):
    login_as(client, session, Role.ADMIN)
    count = len(users.list_users(session))
    for data in ({"email": "nie-adres", "role": "editor", "password": "długie hasło 123"},
                 {"email": "x@example.org", "role": "editor", "password": "krótkie"},
                 {"email": "x@example.org", "role": "root", "password": "długie hasło 123"},
                 {"email": "x@example.org\r\nBcc: y@example.org", "role": "editor", "password": "długie hasło 123"},
                 {"email": "x" * 400 + "@example.org", "role": "editor", "password": "długie hasło 123"}):
        response = post(client, "/admin/users", data, "/admin/users")
        assert response.status_code == 400, data
    assert len(users.list_users(session)) == count
    response = post(client, "/admin/users", {"email": "nowy@example.org", "role": "editor",
                                              "password": "krótkie"}, "/admin/users")
    assert b"10" in response.data


def test_the_last_admin_cannot_be_demoted_or_deactivated(client, session):
    admin = login_as(client, session, Role.ADMIN)
    response = post(client, f"/admin/users/{admin.id}/role", {"role": "editor"}, "/admin/users")
    assert response.status_code == 409
    response = post(client, f"/admin/users/{admin.id}/active", {"active": "0"}, "/admin/users",
                    follow_redirects=True)
    session.refresh(admin)
    assert admin.active and admin.role == Role.ADMIN


def test_pages_in_english(client, session):
    login_as(client, session, Role.ADMIN)
    assert b"Personel" in client.get("/admin/users?lang=pl").data
    assert b"Staff" in client.get("/admin/users?lang=en").data
