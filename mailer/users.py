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
from .lookups import MAX_ID, get_or_404
from .models import ApiToken, Role, Scope, User, utcnow
from .subscribers import address_key, normalize_email

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
    """The active user with these credentials, or None. The caller finishes the sign-in
    (``signed_in``) once any second factor is checked."""
    hasher = _hasher()
    user = session.scalar(select(User).where(User.email == address_key(email)))
    if user is None or not user.active:
        hasher.hash(password)  # same work whether or not the account exists
        return None
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


def signed_in(user: User) -> None:
    """Record a completed sign-in."""
    user.last_login_at = utcnow()


def end_sessions(user: User) -> None:
    """End every session of ``user`` made so far (the session version goes up; a session
    carrying an older one is refused by the user loader)."""
    user.session_version = (user.session_version or 0) + 1


def user_for_session(session: Session, session_id: str) -> User | None:
    """The user of a session identifier made by ``User.get_id`` ("<id>.<version>"), or None
    when the account is unknown, inactive or the session was ended since."""
    user_id, _sep, version = (session_id or "").partition(".")
    if not (user_id.isdigit() and version.isdigit()) or len(user_id) > 10 or len(version) > 10:
        return None
    user = session.get(User, int(user_id)) if int(user_id) <= MAX_ID else None
    if user is None or not user.active or str(user.session_version) != version:
        return None
    return user


def set_password(user: User, password: str) -> None:
    """Set a new password and end every session of the account. Raises InvalidInput when
    the password is too short."""
    _check_password(password)
    user.password_hash = _hasher().hash(password)
    user.password_changed_at = utcnow()
    end_sessions(user)


def change_own_password(session: Session, user: User, current: str, new: str) -> None:
    """A staff member's own change; raises InvalidInput (wrong current password, too short,
    the same as before)."""
    try:
        _hasher().verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError):
        raise InvalidInput("The current password is wrong.", "current_password") from None
    if current == new:
        raise InvalidInput("Choose a password different from the current one.", "new_password")
    set_password(user, new)
    session.flush()


def generate_password() -> str:
    """A new random password (20 characters, about 120 bits), to be shown once."""
    return secrets.token_urlsafe(15)


def reset_password(session: Session, user_id: int, password: str) -> User:
    """An admin sets another staff member's password; raises NotFound, InvalidInput."""
    user = get_or_404(session, User, user_id)
    set_password(user, password)
    session.flush()
    return user


# --- API tokens ---------------------------------------------------------------------

TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 366
MAX_TOKEN_NAME = 120


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def max_scope(user: User) -> Scope:
    return Scope.ADMIN if user.role == Role.ADMIN else Scope.WRITE


def allowed_scopes(user: User) -> list[Scope]:
    """The scopes ``user`` may give a token, narrowest first."""
    return [Scope.READ, Scope.WRITE, *([Scope.ADMIN] if user.role == Role.ADMIN else [])]


def create_token(session: Session, user: User, name: str = "", scope: Scope | str | None = None,
                 days: int | None = TOKEN_DAYS) -> str:
    """``issue_token``'s token alone."""
    return issue_token(session, user, name, scope, days)[1]


def issue_token(session: Session, user: User, name: str = "", scope: Scope | str | None = None,
                days: int | None = TOKEN_DAYS, *, limit: Scope | None = None) -> tuple[ApiToken, str]:
    """A new API token for ``user`` (scope: the widest allowed when None; expires in ``days``):
    its row and the token itself, shown once (only its hash is stored). ``limit``: the scope of
    the token asking for it, which a new token cannot exceed. Raises InvalidInput (name,
    scope, days, a deactivated account)."""
    if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME or any(ord(ch) < 32 for ch in name):
        raise InvalidInput("The name must be a single line of at most 120 characters.", "name")
    allowed = allowed_scopes(user)
    if limit is not None:
        allowed = allowed[:allowed.index(limit) + 1] if limit in allowed else allowed[:1]
    try:
        chosen = Scope(scope) if scope is not None else allowed[-1]
    except ValueError:
        raise InvalidInput("Unknown scope.", "scope") from None
    if chosen not in allowed:
        raise InvalidInput("This account cannot give a token this scope.", "scope")
    if days is None or isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput("A token lasts from 1 to %(days)s days.", "days", days=MAX_TOKEN_DAYS)
    if not user.active:
        raise InvalidInput("This account is deactivated.")
    token = "mlr_" + secrets.token_urlsafe(32)
    item = ApiToken(user=user, name=name.strip(), token_hash=_token_hash(token), prefix=token[:10],
                    scope=chosen, expires_at=utcnow() + timedelta(days=days))
    session.add(item)
    session.flush()
    return item, token


def token_for(session: Session, token: str) -> ApiToken | None:
    """The unrevoked, unexpired token of an active user, or None. Its last use is updated
    at most once per TOKEN_USE_RESOLUTION (a busy client does not write a row per request);
    the caller commits it."""
    now = utcnow()
    api_token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                      ApiToken.revoked_at.is_(None)))
    if api_token is None or not api_token.user.active:
        return None
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    if api_token.last_used_at is None or api_token.last_used_at < now - TOKEN_USE_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == api_token.id)
                        .values(last_used_at=now).execution_options(synchronize_session=False))
    return api_token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user owning a valid ``token``, or None (see ``token_for``)."""
    api_token = token_for(session, token)
    return api_token.user if api_token else None


def list_tokens(session: Session, user_id: int | None = None) -> list[ApiToken]:
    """Tokens of one staff member (None: everyone's), the newest first, revoked ones too."""
    statement = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        statement = statement.where(ApiToken.user_id == user_id)
    return list(session.scalars(statement))


def revoke_token(session: Session, token_id: int, by: User | None = None) -> ApiToken:
    """Revoke a token (idempotent). ``by``: the staff member asking, who may revoke their own
    tokens, or anyone's when an admin (None: the command line). Raises NotFound."""
    api_token = session.get(ApiToken, token_id) if 0 < token_id <= MAX_ID else None
    if api_token is None or (by is not None and by.role != Role.ADMIN and api_token.user_id != by.id):
        raise NotFound("This token does not exist.")
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        session.flush()
    return api_token


# --- Staff administration (admin pages and CLI) ---

def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.email)))


def user_by_email(session: Session, email: str) -> User:
    """Raises NotFound when no staff member has this address."""
    user = session.scalar(select(User).where(User.email == address_key(email)))
    if user is None:
        raise NotFound("No staff member has this address.")
    return user


LAST_ADMIN = ("%(email)s is the last active administrator: make another staff member an administrator "
              "first. At least one active administrator must remain.")


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
        raise Conflict(LAST_ADMIN, "role", email=user.email)
    if user.role != role:
        user.role = role
        end_sessions(user)
        if role != Role.ADMIN:  # an admin token of a former admin would outrank its owner
            session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.scope == Scope.ADMIN,
                                                   ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
    return user


def set_active(session: Session, user_id: int, active: bool) -> User:
    """(De)activate an account; raises NotFound, Conflict (the last active admin)."""
    user = get_or_404(session, User, user_id)
    if not active and user.role == Role.ADMIN and not _other_active_admins(session, user_id):
        raise Conflict(LAST_ADMIN, "active", email=user.email)
    if user.active != active:
        user.active = active  # API tokens of an inactive user stop working (token_for)
        end_sessions(user)
    return user
