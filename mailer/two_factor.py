"""Two-factor sign-in for staff: TOTP (RFC 6238, pyotp) with single-use recovery codes, and the
admins' switch that requires it of everyone.

Enrolment is two steps: ``begin`` makes a secret that the staff member's app scans (a QR
code of ``provisioning_uri``), and ``enable`` stores it once a code from the app proves the
scan worked, returning fresh recovery codes (shown once; only their hashes are kept). A
code is accepted once: the time step it belongs to is remembered.
"""

import hashlib
import hmac
import io
import secrets

import pyotp
import segno
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .errors import InvalidInput
from .models import RecoveryCode, StaffSetting, User, utcnow
from .users import end_sessions

ISSUER = "Newsletter"
RECOVERY_CODES = 10
REQUIRED = "require_2fa"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as an inline SVG (no image request, no third party)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
                                    title="QR", dark="#000", light="#fff")
    return out.getvalue().decode()


def _code(raw: str) -> str:
    return "".join((raw or "").split()).replace("-", "").lower()


def _matching_step(secret: str, code: str) -> int | None:
    """The time step (now, or one either side for clock drift) whose code is ``code``."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(utcnow())
    for step in (now_step, now_step - 1, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(b"mailer.recovery:" + code.encode()).hexdigest()


def _new_recovery_codes(session: Session, user: User) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(code)) for code in codes)
    session.flush()
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def enable(session: Session, user: User, secret: str, code: str) -> list[str]:
    """Turn two-factor sign-in on with ``secret`` once ``code`` proves the app has it; return
    the recovery codes. Other sessions of the account end. Raises InvalidInput."""
    if not secret or len(secret) > 64 or any(ch not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for ch in secret):
        raise InvalidInput("Start the set-up again.", "code")
    step = _matching_step(secret, _code(code))
    if step is None:
        raise InvalidInput("This code is not right. Check the time on your phone and try again.", "code")
    user.totp_secret, user.totp_enabled_at, user.totp_last_step = secret, utcnow(), step
    end_sessions(user)
    return _new_recovery_codes(session, user)


def disable(session: Session, user: User) -> None:
    """Turn it off (by its owner with a code, or by an admin for a lost phone)."""
    user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_sessions(user)
    session.flush()


def regenerate_recovery_codes(session: Session, user: User) -> list[str]:
    if not user.has_totp:
        raise InvalidInput("Two-factor sign-in is not on for this account.")
    return _new_recovery_codes(session, user)


def verify(session: Session, user: User, code: str) -> str | None:
    """Check a TOTP code or a recovery code; return "totp" or "recovery" (the recovery code
    is used up), None when neither is right. A TOTP code is good once."""
    if not user.has_totp or not user.totp_secret:
        return None
    cleaned = _code(code)
    step = _matching_step(user.totp_secret, cleaned)
    if step is not None:
        if user.totp_last_step is not None and step <= user.totp_last_step:
            return None  # replayed
        user.totp_last_step = step
        return "totp"
    if len(cleaned) == 10 and cleaned.isascii() and cleaned.isalnum():
        entry = session.scalar(select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _recovery_hash(cleaned),
            RecoveryCode.used_at.is_(None)))
        if entry is not None:
            entry.used_at = utcnow()
            return "recovery"
    return None


def recovery_codes_left(session: Session, user: User) -> int:
    return len([c for c in user.recovery_codes if c.used_at is None])


def required(session: Session) -> bool:
    """Whether admins require two-factor sign-in of every staff member."""
    setting = session.get(StaffSetting, REQUIRED)
    return bool(setting and setting.value)


def set_required(session: Session, value: bool) -> None:
    setting = session.get(StaffSetting, REQUIRED)
    if setting is None:
        session.add(StaffSetting(key=REQUIRED, value=bool(value)))
    else:
        setting.value = bool(value)
    session.flush()
