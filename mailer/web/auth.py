"""Access rules for staff pages (one decorator, used on every /admin view), the audit log's
view of who is acting, and the sign-in state kept in the session.

A session names its user as ``<id>.<session version>`` (``User.get_id``); the loader refuses
a session whose version is older than the account's (``users.user_for_session``), so ending
sessions is one UPDATE and needs no server-side session store.
"""

import time
from functools import wraps

from flask import abort, current_app, g, make_response, request, session
from flask_login import current_user, login_required, login_user
from werkzeug.local import LocalProxy

from .. import audit, two_factor, users
from ..extensions import db_session, limiter
from ..models import Role, User


def staff_required(role: Role | None = None):
    """Require a logged-in, active staff member; with ``role=Role.ADMIN``, an admin."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if role is not None and current_user.role != role:
                abort(403)
            return view(*args, **kwargs)

        wrapped.staff_role = role or "staff"  # type: ignore[attr-defined]  # read by the url_map tests
        return wrapped

    return decorator


def actor() -> audit.Actor:
    """Who is acting in this request: the API token's owner, or the signed-in staff member."""
    ip = request.remote_addr or ""
    api_user = g.get("api_user")
    if api_user is not None:
        return audit.Actor(api_user.id, api_user.email, "api", ip, {"token_id": g.api_token.id})
    if current_user.is_authenticated:
        return audit.Actor(current_user.id, current_user.email, "web", ip)
    return audit.Actor(None, "", "web", ip)


def audited(action: str, target: str | None = None, **static):
    """Record ``action`` in the audit log when the view succeeds (an answer under 400 that was
    not discarded), in the request's transaction. ``target`` names a view argument (its value
    becomes the entry's target); ``action`` may name view arguments too ("campaign.{action}")."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            response = make_response(view(*args, **kwargs))
            if response.status_code < 400 and not g.get("discarded", False):
                audit.record(db_session, actor(), action.format(**kwargs),
                             str(kwargs.get(target, "")) if target else "", **static)
            return response

        return wrapped

    return decorator


def _staff_key() -> str:
    return f"render-staff:{current_user.get_id() if current_user.is_authenticated else request.remote_addr}"


# Renders of staff templates per staff member (each may hold a web worker's thread for up to
# TEMPLATE_RENDER_SECONDS): a flood of previews is answered 429 at once, and so is every
# render of a staff member whose templates went past a limit a few times lately.
_renders = limiter.limit(lambda: current_app.config["TEMPLATE_PREVIEW_RATE_LIMIT"], key_func=_staff_key,
                         methods=["GET", "POST"])
_strikes = limiter.limit(lambda: current_app.config["TEMPLATE_LIMIT_STRIKES"], key_func=_staff_key,
                         methods=["GET", "POST"], scope="template-strikes",
                         deduct_when=lambda _response: bool(g.get("template_limit_hit")))


def render_limit(view):
    return _renders(_strikes(view))


def _fresh_session() -> None:
    """Nothing from before survives but the language (a planted session is worth nothing)."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def start_session(user: User) -> None:
    """Finish a sign-in: a fresh session, permanent so that it expires
    (PERMANENT_SESSION_LIFETIME)."""
    if isinstance(user, LocalProxy):  # current_user: the user itself, before the session is cleared
        user = user._get_current_object()
    _fresh_session()
    session.permanent = True
    login_user(user)
    users.signed_in(user)


# --- The second step of a sign-in ---------------------------------------------------------

PENDING = "2fa_pending"


def remember_pending(user: User) -> None:
    """Password right, second factor to come: remember who, for a few minutes."""
    _fresh_session()
    session[PENDING] = [user.id, user.session_version, int(time.time())]


def pending_user() -> User | None:
    value = session.get(PENDING)
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value)):
        return None
    user_id, version, since = value
    if time.time() - since > current_app.config["LOGIN_2FA_SECONDS"]:
        return None
    user = users.user_for_session(db_session, f"{user_id}.{version}")
    return user if user is not None and user.has_totp else None


def needs_enrolment() -> bool:
    """A signed-in staff member without two-factor sign-in while admins require it."""
    return (current_user.is_authenticated and not current_user.has_totp
            and two_factor.required(db_session))
