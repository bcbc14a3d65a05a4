"""Staff accounts: argon2id password hashes, roles, API tokens."""

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .errors import Conflict, InvalidInput, NotFound
from .lookups import get_or_404
from .models import ApiToken, Role, User, utcnow
from .subscribers import normalize_email

MIN_PASSWORD = 10
TOKEN_USE_RESOLUTION = timedelta(minutes=5)


@lru_cache(maxsize=4)
def _argon2(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def _hasher() -> PasswordHasher:
    """argon2id with the configured costs (PASSWORD_TIME_COST, _MEMORY_KIB, _PARALLELISM); a
    hash made with other costs still verifies and is redone at the next login."""
    config = current_app.config
    return _argon2(config["PASSWORD_TIME_COST"], config["PASSWORD_MEMORY_KIB"],
                   config["PASSWORD_PARALLELISM"])


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("The password must have at least %(n)s characters.", "password",
                           n=MIN_PASSWORD)


def create_user(session: Session, email: str, password: str, role: Role | str) -> User:
    """Add a staff member; raises InvalidInput (address, password, role) or Conflict (taken)."""
    email = normalize_email(email)
    _check_password(password)
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput("Unknown role.", "role") from exc
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict("A staff member with this address exists.", "email")
    user = User(email=email, password_hash=_hasher().hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    hasher = _hasher()
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        hasher.hash(password)  # same work whether or not the account exists
        return None
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str = "") -> str:
    """A new API token for ``user``; only its hash is stored, so it is shown once."""
    token = "mlr_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, name=name, token_hash=_token_hash(token)))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user owning an unrevoked ``token``, or None. The token's last use is
    updated at most once per TOKEN_USE_RESOLUTION (a busy client does not write a row per
    request); the caller commits it."""
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                      ApiToken.revoked_at.is_(None)))
    if api_token is None or not api_token.user.active:
        return None
    now = utcnow()
    if api_token.last_used_at is None or api_token.last_used_at < now - TOKEN_USE_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == api_token.id)
                        .values(last_used_at=now).execution_options(synchronize_session=False))
    return api_token.user


def set_password(user: User, password: str) -> None:
    """Raises InvalidInput when the password is too short."""
    _check_password(password)
    user.password_hash = _hasher().hash(password)


# --- Staff administration (admin pages and CLI) ---

def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def user_by_email(session: Session, email: str) -> User:
    """Raises NotFound when no staff member has this address."""
    user = session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        raise NotFound("No staff member has this address.")
    return user


def _other_active_admins(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count(User.id)).where(
        User.role == Role.ADMIN, User.active.is_(True), User.id != user_id)) or 0


def set_role(session: Session, user_id: int, role: Role | str) -> User:
    """Change a role; raises InvalidInput (unknown role), NotFound, Conflict (last admin)."""
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput("Unknown role.", "role") from exc
    user = get_or_404(session, User, user_id)
    if user.role == Role.ADMIN and role != Role.ADMIN and not _other_active_admins(session, user_id):
        raise Conflict("At least one active admin must remain.")
    user.role = role
    return user


def set_active(session: Session, user_id: int, active: bool) -> User:
    """(De)activate an account; raises NotFound, Conflict (the last active admin)."""
    user = get_or_404(session, User, user_id)
    if not active and user.role == Role.ADMIN and not _other_active_admins(session, user_id):
        raise Conflict("At least one active admin must remain.")
    user.active = active  # API tokens of an inactive user stop working (user_for_token)
    return user
