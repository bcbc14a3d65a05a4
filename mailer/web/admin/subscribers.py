"""Staff pages: subscribers (editors read; admins unsubscribe, export, erase)."""

import json

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ... import audience, audit, bulk_actions, consent, lists, segments
from ...errors import InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Role, Subscriber, SubscriptionStatus, utcnow
from ..auth import actor, audited, staff_required
from ..errors import flash_error
from . import bp
from .query_args import number

PER_PAGE = 50
SELECTION_KEYS = ("q", "list_id", "status", "tag", "segment_id")


def _filters(values=None) -> dict:
    """The selection from the query string (or a posted form); a malformed number is a 400."""
    values = request.args if values is None else values
    return {"query": values.get("q", ""), "list_id": number(values, "list_id"),
            "status": values.get("status") or None, "tag": values.get("tag") or None,
            "segment_id": number(values, "segment_id")}


def _selection_args(filters: dict) -> dict:
    """The selection as query-string arguments (for links that keep it)."""
    return {"q": filters["query"] or None, "list_id": filters["list_id"], "status": filters["status"],
            "tag": filters["tag"], "segment_id": filters["segment_id"]}


@bp.get("/subscribers", endpoint="subscribers")
@staff_required()
def subscribers_page():
    filters = _filters()
    found = audience.search(db_session, per_page=PER_PAGE, after=number(request.args, "after"),
                            before=number(request.args, "before"), **filters)
    return render_template("web/admin/subscribers/index.html", found=found, rows=found.rows,
                           filters=filters, args=_selection_args(filters), lists=lists.all_lists(db_session),
                           segments=segments.all_segments(db_session), tags=audience.known_tags(db_session),
                           statuses=list(SubscriptionStatus), actions=bulk_actions.recent(db_session, 5))


@bp.post("/subscribers/export.csv")
@staff_required(Role.ADMIN)
def subscribers_export():
    """The selection as CSV (a POST: the export is recorded in the audit log)."""
    return _export(_filters(request.form))


def _export(filters: dict) -> Response:
    """Stream the selection as CSV, recorded (as a bulk action, and in the audit log)."""
    with_consent = request.form.get("consent_columns") == "1"
    pieces = audience.export_csv(db_session, **filters, consent=with_consent)  # raises InvalidInput before streaming
    bulk_actions.record_export(db_session, actor(), audience.selection(**filters))
    name = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(pieces),
                    mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.post("/subscribers/bulk")
@staff_required(Role.ADMIN)
def subscribers_bulk():
    """A bulk action on the selection shown (recorded; run by a worker), or its export. The
    selection comes as the search's own fields, the action's as param_tag, param_list_id,
    basis and confirm."""
    filters = _filters(request.form)
    action = request.form.get("action", "")
    try:
        chosen = audience.selection(**filters)
        if action == "export":
            return _export(filters)
        params = {"tag": request.form.get("param_tag"), "list_id": request.form.get("param_list_id"),
                  "basis": request.form.get("basis"), "confirm": request.form.get("confirm")}
        bulk_actions.request(db_session, actor(), action, chosen, params)
    except InvalidInput as exc:
        flash_error(exc)
    else:
        flash(_("The action was recorded and is being carried out."), "success")
    return redirect(url_for("admin.subscribers", **_selection_args(filters)))


@bp.post("/subscribers/<int:subscriber_id>/profile")
@staff_required(Role.ADMIN)
def subscriber_profile(subscriber_id: int):
    """Attributes (one "name = value" a line) and tags (comma-separated) of a subscriber."""
    try:
        pairs = {}
        for line in request.form.get("attributes", "").splitlines():
            if line.strip():
                key, sep, value = line.partition("=")
                if not sep:
                    raise InvalidInput("Write each attribute as name = value, one a line.", "attributes")
                pairs[key.strip()] = value.strip()
        audience.set_attributes(db_session, subscriber_id, pairs, replace=True)
        audience.set_tags(db_session, subscriber_id, request.form.get("tags", ""))
    except InvalidInput as exc:
        flash_error(exc)
    else:
        flash(_("Saved."), "success")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))


@bp.get("/subscribers/<int:subscriber_id>")
@staff_required()
def subscriber(subscriber_id: int):
    return render_template("web/admin/subscribers/detail.html",
                           origins=audience.sees_consent_origins(current_user.role),
                           **audience.detail(db_session, subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@staff_required(Role.ADMIN)
@audited("subscriber.unsubscribe", "subscriber_id")
def subscriber_unsubscribe(subscriber_id: int):
    list_id = number(request.form, "list_id")
    audience.unsubscribe(db_session, subscriber_id, [list_id] if list_id else None)
    flash(_("Unsubscribed."), "success")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/export.json")
@staff_required(Role.ADMIN)
@audited("subscriber.export", "subscriber_id")
def subscriber_export(subscriber_id: int):
    data = audience.export_subscriber(db_session, subscriber_id)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"',
                             "Cache-Control": "no-store"})


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@staff_required(Role.ADMIN)
def subscriber_erase(subscriber_id: int):
    found = get_or_404(db_session, Subscriber, subscriber_id)
    if request.method == "POST":
        if request.form.get("confirm") != "yes":
            flash(_("Tick the box to confirm the erasure."), "error")
            return render_template("web/admin/subscribers/erase.html", subscriber=found), 400
        audience.erase_subscriber(db_session, subscriber_id)
        audit.record(db_session, actor(), "subscriber.erase", str(subscriber_id))
        flash(_("The subscriber's personal data was erased."), "success")
        return redirect(url_for("admin.subscribers"))
    return render_template("web/admin/subscribers/erase.html", subscriber=found)


@bp.get("/subscribers/<int:subscriber_id>/consent")
@staff_required()
def subscriber_consent(subscriber_id: int):
    """Each step of the subscriber's consent with the exact wording they saw (where it came
    from, IP address and browser, for admins only)."""
    found, steps = consent.history(db_session, subscriber_id)
    return render_template("web/admin/subscribers/consent.html", subscriber=found, steps=steps,
                           origins=audience.sees_consent_origins(current_user.role))


@bp.post("/subscribers/<int:subscriber_id>/consent-proof.html")
@staff_required(Role.ADMIN)
@audited("subscriber.consent_proof", "subscriber_id")
def subscriber_consent_proof(subscriber_id: int):
    """The consent record as one self-contained HTML document (no outside resources), to keep
    or hand over; a POST, recorded in the audit log."""
    found, steps = consent.history(db_session, subscriber_id)
    body = render_template("web/admin/subscribers/consent_proof.html", subscriber=found, steps=steps,
                           generated_at=utcnow())
    return Response(body, mimetype="text/html", headers={
        "Content-Disposition": f'attachment; filename="consent-{subscriber_id}.html"', "Cache-Control": "no-store"})
