"""Subscribers: search and read them, sign visitors up (double opt-in), erase (admin)."""

import ipaddress

from flask import current_app, g, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from ... import audience, subscriptions
from ...extensions import db_session
from ...models import Scope
from .. import subscribe_limits
from ..auth import audited
from . import admin_only, bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):subscriber_id>"


@bp.get("/subscribers")
@spec.validate(resp=answers(200, schemas.SubscriberPage, "One page of subscribers."))
def search_subscribers(query: schemas.SubscriberSearch):
    """Search subscribers by address or name, filter by list and status."""
    rows, total = audience.search(db_session, query=query.query, list_id=query.list_id,
                                  status=query.status, page=query.page, per_page=query.per_page)
    return jsonify(serializers.page(rows, total, query.page, query.per_page, serializers.subscriber))


@bp.get(f"/subscribers/{ID}")
@spec.validate(resp=answers(200, schemas.SubscriberExport, "The subscriber's data.", 404))
def get_subscriber(subscriber_id: int):
    """A subscriber's data with subscriptions and consent history.

    Where each consent came from (IP address, browser) only for administrators' admin-scope
    tokens, as on the staff pages."""
    origins = audience.sees_consent_origins(g.api_user.role) and g.api_token.scope == Scope.ADMIN
    return jsonify(serializers.subscriber_export(
        subscriber_id, audience.export_subscriber(db_session, subscriber_id, origins=origins)))


@bp.delete(f"/subscribers/{ID}")
@admin_only
@audited("subscriber.erase", "subscriber_id")
@spec.validate(resp=answers(204, None, "Done.", 404, admin=True))
def erase_subscriber(subscriber_id: int):
    """Erase a subscriber: personal data removed, the address suppressed.

    Only for tokens of administrators (403 for editors)."""
    audience.erase_subscriber(db_session, subscriber_id)
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
@subscribe_limits.equal_time
@spec.validate(resp=answers(202, schemas.Accepted, "Accepted.", 413))
def subscribe(json: schemas.Subscribe):
    """Sign a visitor up (double opt-in): a confirmation mail is queued.

    The answer is the same whether the address is new, pending, confirmed or suppressed.
    Limited per visitor IP and per address like the public form."""
    subscriptions.subscribe(
        db_session, email=json.email, name=json.name, list_ids=json.list_ids, locale=json.locale,
        consent=json.consent, source="api", ip=json.ip or request.remote_addr or "",
        user_agent=json.user_agent or request.user_agent.string[:400],
    )
    return jsonify({"status": "accepted",
                    "message": _("If the address can receive mail, a confirmation link is on its way.")}), 202
