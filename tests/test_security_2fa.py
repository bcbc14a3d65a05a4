"""Two-factor sign-in for staff: enrolment with a QR code, TOTP codes (once each), recovery
codes (once each), admins requiring it of everyone, and resets for a lost phone."""

import re

from sqlalchemy import select

from mailer import two_factor
from mailer.models import AuditEntry, RecoveryCode, Role
from tests.helpers_security import cookie_of, fresh_user, opens_admin, totp_now, with_cookie
from tests.helpers_staff import PASSWORD, csrf, login, make_user, post


def enrol(client) -> tuple[str, list[str]]:
    """Turn two-factor sign-in on for the signed-in client; returns the secret and codes."""
    page = client.get("/admin/account/2fa").get_data(as_text=True)
    assert "<svg" in page  # the QR code, inline
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    wrong = post(client, "/admin/account/2fa", {"code": "000000"}, "/admin/account/2fa")
    assert wrong.status_code == 400
    done = post(client, "/admin/account/2fa", {"code": totp_now(secret)}, "/admin/account/2fa")
    assert done.status_code == 200
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.get_data(as_text=True))
    assert len(codes) == two_factor.RECOVERY_CODES
    return secret, codes


def second_step(client, code: str):
    token = csrf(client, "/admin/login/2fa")
    return client.post("/admin/login/2fa", data={"csrf_token": token, "code": code})


def test_enrol_then_sign_in_with_a_code(app, client, session):
    user = make_user(session, Role.EDITOR)
    login(client, user.email)
    other = app.test_client()
    login(other, user.email)
    secret, _codes = enrol(client)
    assert opens_admin(client) and not opens_admin(other)  # enabling it ended the other sessions
    post(client, "/admin/logout")

    browser = app.test_client()
    first = login(browser, user.email)
    assert first.status_code == 302 and "/admin/login/2fa" in first.headers["Location"]
    assert not opens_admin(browser)  # the password alone is not a session
    assert second_step(browser, "123456").status_code == 401
    assert second_step(browser, totp_now(secret)).status_code == 401  # used to enrol: spent
    assert second_step(browser, totp_now(secret, 1)).status_code == 302  # the next one (clock drift)
    assert opens_admin(browser)
    # The same code does not work twice (another browser, same half-minute).
    again = app.test_client()
    login(again, user.email)
    assert second_step(again, totp_now(secret, 1)).status_code == 401


def test_recovery_codes_work_once(app, client, session, fresh):
    user = make_user(session, Role.ADMIN)
    login(client, user.email)
    _secret, codes = enrol(client)
    post(client, "/admin/logout")
    browser = app.test_client()
    login(browser, user.email)
    assert second_step(browser, codes[0].upper()).status_code == 302
    post(browser, "/admin/logout")
    login(browser, user.email)
    assert second_step(browser, codes[0]).status_code == 401
    with fresh() as reader:
        assert reader.scalar(select(RecoveryCode).where(RecoveryCode.used_at.is_not(None))) is not None
        assert "2fa.recovery_used" in [e.action for e in reader.scalars(select(AuditEntry))]


def test_the_second_step_expires_and_needs_the_first(app, client, session, monkeypatch):
    user = make_user(session, Role.EDITOR)
    login(client, user.email)
    secret, _ = enrol(client)
    anonymous = app.test_client()
    assert anonymous.get("/admin/login/2fa").status_code == 302  # no password given: back to login
    monkeypatch.setitem(app.config, "LOGIN_2FA_SECONDS", -1)
    browser = app.test_client()
    login(browser, user.email)
    assert browser.get("/admin/login/2fa").status_code == 302
    assert not opens_admin(browser)


def test_admins_require_it_of_everyone(app, session):
    admin_user = make_user(session, Role.ADMIN)
    admin = app.test_client()
    login(admin, admin_user.email)
    editor_user = make_user(session, Role.EDITOR)
    editor = app.test_client()
    login(editor, editor_user.email)
    assert editor.get("/admin/campaigns").status_code == 200
    assert post(admin, "/admin/users/require-2fa", {"required": "1"}, "/admin/users").status_code == 302
    forced = editor.get("/admin/campaigns")
    assert forced.status_code == 302 and forced.headers["Location"].endswith("/admin/account/2fa")
    assert editor.get("/admin/account/2fa").status_code == 200
    enrol(editor)
    assert editor.get("/admin/campaigns").status_code == 200
    # ... and it cannot be turned off while required.
    secret = fresh_user(session, editor_user.id).totp_secret
    post(editor, "/admin/account/2fa/disable", {"code": totp_now(secret, 1)}, "/admin/account/2fa")
    assert fresh_user(session, editor_user.id).has_totp


def test_turning_it_off_needs_a_code_and_admins_reset_a_lost_phone(app, client, session):
    user = make_user(session, Role.EDITOR)
    login(client, user.email)
    secret, _ = enrol(client)
    post(client, "/admin/account/2fa/disable", {"code": "111111"}, "/admin/account/2fa")
    assert fresh_user(session, user.id).has_totp
    post(client, "/admin/account/2fa/disable", {"code": totp_now(secret, 1)}, "/admin/account/2fa")
    assert not fresh_user(session, user.id).has_totp

    login(client, user.email)
    enrol(client)
    stolen = cookie_of(client)
    admin = app.test_client()
    login(admin, make_user(session, Role.ADMIN).email)
    assert post(admin, f"/admin/users/{user.id}/2fa/disable", {}, "/admin/users").status_code == 302
    assert not fresh_user(session, user.id).has_totp and not opens_admin(with_cookie(app, stolen))
    editor = app.test_client()
    login(editor, make_user(session, Role.EDITOR).email)
    assert post(editor, f"/admin/users/{user.id}/2fa/disable", {}, "/admin/").status_code == 403


def test_cli_resets_two_factor(app, session):
    user = make_user(session, Role.EDITOR)
    secret = two_factor.new_secret()
    two_factor.enable(session, user, secret, totp_now(secret))
    session.commit()
    result = app.test_cli_runner().invoke(args=["users", "reset-2fa", user.email])
    assert result.exit_code == 0, result.output
    assert not fresh_user(session, user.id).has_totp


def test_login_with_password_only_when_two_factor_is_off(client, session):
    user = make_user(session, Role.EDITOR)
    assert login(client, user.email, PASSWORD).headers["Location"].endswith("/admin/")
