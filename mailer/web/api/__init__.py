"""JSON API under /api/v1: Bearer-token authentication, JSON errors, a rate limit per token.

Views live in one module per noun (lists, subscribers, events, campaigns); each names the
pydantic models of its body, query and answers (``schemas``), from which ``spec`` validates
the request and makes the OpenAPI document; it makes one domain call and answers with a
serializer (the request's transaction is committed after it, see ``mailer.web.transaction``).
"""

import hashlib
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import DataError

from ... import users
from ...extensions import csrf, db_session, limiter
from ...models import Role, Scope
from ..errors import error_body

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # token-authenticated, no cookies: nothing for a cross-site form to ride on

MAX_TOKEN = 200


def token_key() -> str:
    """Rate-limit key: the presented token's hash, or the caller's address when there is none."""
    token = bearer_token()
    if token:
        return "api-token:" + hashlib.sha256(token.encode()).hexdigest()
    return "api-ip:" + (get_remote_address() or "")


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=token_key)(bp)


def bearer_token() -> str:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def error(status: int, message: str, **headers):
    return jsonify(error_body(message)), status, headers


def unauthorized(message: str, code: str = ""):
    challenge = 'Bearer realm="api"' + (f', error="{code}"' if code else "")
    return error(401, message, **{"WWW-Authenticate": challenge})


def public(view):
    """Mark a view as open without a token (the OpenAPI document)."""
    view.api_role = "public"
    return view


def admin_only(view):
    """Refuse (403) callers whose token belongs to an editor, or is not an admin-scope token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.api_user.role != Role.ADMIN or g.api_token.scope != Scope.ADMIN:
            return error(403, _("Only an administrator may do this."))
        return view(*args, **kwargs)

    wrapped.api_role = "admin"  # type: ignore[attr-defined]
    return wrapped


@bp.before_request
def authenticate():
    """Answer 401 unless a valid token is presented; the token's user goes to ``g.api_user``."""
    request.max_content_length = current_app.config["API_MAX_BODY"]
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "api_role", None) == "public":
        return None
    token = bearer_token()
    if not token:
        return unauthorized(_("Send an API token in the header Authorization: Bearer <token>."))
    api_token = users.token_for(db_session, token) if len(token) <= MAX_TOKEN else None
    if api_token is None:
        return unauthorized(_("This API token is not valid."), "invalid_token")
    # The token's bookkeeping is committed apart from the request's work, before it begins:
    # it holds whatever the answer, and a read stays a read (mailer.web.transaction).
    db_session.commit()
    g.api_user, g.api_token = api_token.user, api_token
    if api_token.scope == Scope.READ and request.method not in {"GET", "HEAD", "OPTIONS"}:
        return error(403, _("This token may only read."))
    return None


@bp.errorhandler(DataError)
def data_error(exc: DataError):
    """A value the database refuses (out of range for its column): the client's mistake."""
    return error(400, _("A value is out of range."))


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


from . import campaigns, categories, docs, events, lists, segments, subscribers, tokens  # noqa: E402,F401  (routes)
