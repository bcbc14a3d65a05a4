"""Staff accounts: argon2id password hashes, roles, API tokens."""

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import Conflict, InvalidInput
from .models import ApiToken, Role, User, utcnow
from .subscribers import normalize_email

_hasher = PasswordHasher()  # argon2id with the library's current parameters
MIN_PASSWORD = 10


def create_user(session: Session, email: str, password: str, role: Role | str) -> User:
    """Add a staff member; raises InvalidInput (address, password, role) or Conflict (taken)."""
    email = normalize_email(email)
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD} characters.", "password")
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput("Unknown role.", "role") from exc
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict("A staff member with this address exists.", "email")
    user = User(email=email, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        _hasher.hash(password)  # same work whether or not the account exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return user


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str = "") -> str:
    """A new API token for ``user``; only its hash is stored, so it is shown once."""
    token = "mlr_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, name=name, token_hash=_token_hash(token)))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user owning an unrevoked ``token``, or None."""
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                      ApiToken.revoked_at.is_(None)))
    if api_token is None or not api_token.user.active:
        return None
    api_token.last_used_at = utcnow()
    return api_token.user


def set_password(session: Session, user: User, password: str) -> None:
    """Raises InvalidInput when the password is too short."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"The password must have at least {MIN_PASSWORD} characters.", "password")
    user.password_hash = _hasher.hash(password)
