"""Subscribers: search and read them, sign visitors up (double opt-in), erase (admin)."""

import ipaddress

from flask import current_app, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from ... import audience, subscriptions
from ...extensions import db
from ...models import SubscriptionStatus
from .. import api_schemas as schemas
from .. import subscribe_limits
from . import admin_only, bp, serializers

ID = "<int(min=1, max=2147483647):subscriber_id>"
MAX_PER_PAGE = 200
MAX_QUERY = 200
MAX_PAGE = 100_000


@bp.get("/subscribers")
def search_subscribers():
    args = request.args
    query = schemas.query_text(args, "query", MAX_QUERY)
    status = schemas.query_choice(args, "status", [s.value for s in SubscriptionStatus])
    list_id = schemas.query_int(args, "list_id", None, schemas.MAX_ID)
    page = schemas.query_int(args, "page", 1, MAX_PAGE)
    per_page = schemas.query_int(args, "per_page", 50, MAX_PER_PAGE)
    rows, total = audience.search(db.session, query=query, list_id=list_id, status=status,
                                  page=page, per_page=per_page)
    return jsonify(serializers.page(rows, total, page, per_page, serializers.subscriber))


@bp.get(f"/subscribers/{ID}")
def get_subscriber(subscriber_id: int):
    """The subscriber's data with subscriptions and consent history."""
    return jsonify(serializers.subscriber_export(subscriber_id,
                                                 audience.export_subscriber(db.session, subscriber_id)))


@bp.delete(f"/subscribers/{ID}")
@admin_only
def erase_subscriber(subscriber_id: int):
    audience.erase_subscriber(db.session, subscriber_id)
    db.session.commit()
    return "", 204


def _payload() -> dict:
    """The body as the rate-limit keys see it (they run before the view, and before the API's
    body-size cap is in force: so an oversized body is not parsed here)."""
    if (request.content_length or 0) > current_app.config["API_MAX_BODY"]:
        return {}
    payload = request.get_json(silent=True)
    return payload if isinstance(payload, dict) else {}


def visitor_ip() -> str:
    """The visitor's address given by the caller (a CMS relaying its form), else the caller's."""
    given = _payload().get("ip")
    if isinstance(given, str) and given:
        try:
            return str(ipaddress.ip_address(given))
        except ValueError:
            pass
    return get_remote_address() or ""


@bp.post("/subscribers/subscribe")
@subscribe_limits.per_ip(key_func=visitor_ip)
@subscribe_limits.per_address(lambda: _payload().get("email"))
def subscribe():
    """Double opt-in: the same 202 whether the address is new, pending, confirmed or suppressed."""
    values = schemas.parse(schemas.SUBSCRIBE, schemas.parse_body(request))
    subscriptions.subscribe(
        db.session, email=values["email"], name=values.get("name", ""),
        list_ids=values.get("list_ids"), locale=values.get("locale", "pl"), consent=values["consent"],
        source="api", ip=values.get("ip") or request.remote_addr or "",
        user_agent=values.get("user_agent") or request.user_agent.string[:400],
    )
    db.session.commit()
    return jsonify({"status": "accepted",
                    "message": _("If the address can receive mail, a confirmation link is on its way.")}), 202
