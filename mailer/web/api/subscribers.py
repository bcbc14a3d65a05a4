"""Subscribers: search and read them, sign visitors up (double opt-in), erase (admin)."""

import ipaddress

from flask import current_app, g, jsonify, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from ... import audience, audit, bulk_actions, notices, staff_subscribers, subscriptions
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Scope, Subscriber
from .. import subscribe_limits
from ..auth import actor, audited
from . import admin_only, bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):subscriber_id>"


@bp.get("/subscribers")
@spec.validate(resp=answers(200, schemas.SubscriberPage, "One page of subscribers."))
def search_subscribers(query: schemas.SubscriberSearch):
    """Search subscribers by address or name, filter by list, status, tag and segment.

    Newest first. Follow `next_after` (pass it as `after`) for the next page: as fast at
    page 1,000 as at page 1. `total` is exact up to 1,000 (10,000 on SQLite), past that the
    database's estimate (`total_exact` false). A filtered page is searched for a bounded
    time, so it may hold fewer items than `per_page` (see `scanned_to`): follow `next_after`
    until it is null."""
    found = audience.search(db_session, query=query.query, list_id=query.list_id, status=query.status,
                            tag=query.tag, segment_id=query.segment_id, after=query.after,
                            page=None if query.after else query.page, per_page=query.per_page)
    return jsonify(serializers.subscriber_page(found, query.page, query.per_page))


@bp.patch(f"/subscribers/{ID}")
@admin_only
@spec.validate(resp=answers(200, schemas.Subscriber, "The subscriber.", 404, 413, admin=True))
def update_subscriber(subscriber_id: int, json: schemas.SubscriberProfile):
    """Set a subscriber's name and language, attributes (merged; null removes one) and tags
    (replaced)."""
    values = json.values()
    if "name" in values or "locale" in values:
        current = get_or_404(db_session, Subscriber, subscriber_id)
        staff_subscribers.update_subscriber(db_session, subscriber_id, name=values.get("name", current.name),
                                            locale=values.get("locale", current.locale))
    item = audience.set_attributes(db_session, subscriber_id, values.get("attributes") or {})
    if "tags" in values:
        audience.set_tags(db_session, subscriber_id, values["tags"])
    return jsonify(serializers.subscriber(item, audience.tags_of(db_session, subscriber_id)))


@bp.post("/subscribers")
@admin_only
@spec.validate(resp=answers(201, schemas.Subscriber, "The new subscriber.", 409, 413, admin=True))
def add_subscriber(json: schemas.SubscriberCreate):
    """Add someone by hand: with a confirmation mail (double opt-in, the default), or confirmed
    at once on the `basis` the token's owner gives and vouches for (`consent_confirmed`).

    An address that is a subscriber already, or on the suppression list, is a 409."""
    who = actor()
    item = staff_subscribers.add_subscriber(
        db_session, staff_subscribers.Staff(who.user_id, who.email, who.ip), **json.values())
    audit.record(db_session, who, "subscriber.create", str(item.id), list_ids=json.list_ids,
                 confirmation_mail=json.confirmation_mail, basis=json.basis)
    return jsonify(serializers.subscriber(item, [])), 201


@bp.post("/subscribers/bulk")
@admin_only
@spec.validate(resp=answers(202, schemas.BulkActionState, "Recorded and queued.", 404, 413, admin=True))
def bulk_action(json: schemas.BulkAction):
    """Act on every subscriber a search or segment selects: add to a list, tag, untag,
    unsubscribe (recorded as a withdrawal of consent), erase. Runs in the background; the
    answer's id shows its progress at /subscribers/bulk/{id}. Recorded with the token's user."""
    chosen = audience.selection(json.query, json.list_id, json.status, json.tag, json.segment_id)
    entry = bulk_actions.request(db_session, actor(), json.action, chosen, dict(json.params))
    return jsonify(serializers.bulk_action(entry)), 202


@bp.get("/subscribers/bulk/<int(min=1, max=2147483647):action_id>")
@spec.validate(resp=answers(200, schemas.BulkActionState, "The bulk action.", 404))
def bulk_action_state(action_id: int):
    """How far a bulk action has got."""
    return jsonify(serializers.bulk_action(bulk_actions.get(db_session, action_id)))


@bp.get("/metrics")
@spec.validate(resp=answers(200, schemas.Metrics, "Figures to watch."))
def metrics():
    """Confirmation and welcome mails waiting to be sent, and those held back by the hourly cap."""
    backlog = notices.backlog(db_session)
    return jsonify({"notices_waiting": backlog["waiting"], "notices_capped": backlog["capped"]})


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
@subscribe_limits.limited(subscribe_limits.ip_budget(visitor_ip),
                          subscribe_limits.address_budget(lambda: _payload().get("email")))
@subscribe_limits.equal_time
@spec.validate(resp=answers(202, schemas.Accepted, "Accepted.", 413))
def subscribe(json: schemas.Subscribe):
    """Sign a visitor up (double opt-in): a confirmation mail is queued.

    The answer is the same whether the address is new, pending, confirmed or suppressed.
    Limited per visitor IP and per address like the public form."""
    subscriptions.subscribe(
        db_session, email=json.email, name=json.name, list_ids=json.list_ids,
        locale=json.locale or str(get_locale()),
        consent=json.consent, source="api", ip=json.ip or request.remote_addr or "",
        user_agent=json.user_agent or request.user_agent.string[:400], consent_text=json.consent_text or None,
    )
    return jsonify({"status": "accepted",
                    "message": _("If the address can receive mail, a confirmation link is on its way.")}), 202
