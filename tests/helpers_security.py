"""Helpers for the security tests: a copied session cookie, TOTP codes, every table's rows."""

import pyotp
import sqlalchemy as sa

from mailer.extensions import db
from mailer.models import User, utcnow


def cookie_of(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return cookie.value


def with_cookie(app, value: str):
    """A new client carrying a copied session cookie (an attacker's browser)."""
    other = app.test_client()
    other.set_cookie("session", value, domain="localhost")
    return other


def opens_admin(client) -> bool:
    return client.get("/admin/").status_code == 200


def totp_now(secret: str, step_offset: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(utcnow()) + step_offset)


def row_counts() -> dict[str, int]:
    """Rows of every table, read on a new connection (what requests committed)."""
    with db.engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in db.metadata.sorted_tables}


def fresh_user(session, user_id: int) -> User:
    session.rollback()
    return session.get(User, user_id)
