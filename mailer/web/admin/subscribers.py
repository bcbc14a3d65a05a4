"""Staff pages: subscribers (editors read; admins unsubscribe, export, erase)."""

import json

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ... import audience, audit, csv_export, lists
from ...extensions import db_session
from ...lookups import MAX_ID, get_or_404
from ...models import Role, Subscriber, SubscriptionStatus, utcnow
from ..auth import actor, audited, staff_required
from . import bp

PER_PAGE = 50


def _number(raw: str | None, default: int | None, largest: int) -> int | None:
    """A whole number from a query or form field, 1 .. ``largest``; anything else is a 400."""
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw[:12]) <= largest:
        abort(400)
    return int(raw)


def _filters(values=None) -> dict:
    """Search arguments from the query string (or a form); a malformed number is a 400."""
    values = request.args if values is None else values
    return {"query": values.get("q", ""), "list_id": _number(values.get("list_id"), None, MAX_ID),
            "status": values.get("status") or None, "page": _number(values.get("page"), 1, 1_000_000)}


@bp.get("/subscribers", endpoint="subscribers")
@staff_required()
def subscribers_page():
    filters = _filters()
    rows, total = audience.search(db_session, per_page=PER_PAGE, **filters)
    pages = max(1, -(-total // PER_PAGE))
    return render_template("web/admin/subscribers/index.html", rows=rows, total=total, pages=pages,
                           filters=filters, lists=lists.all_lists(db_session),
                           statuses=list(SubscriptionStatus))


@bp.post("/subscribers/export.csv")
@staff_required(Role.ADMIN)
def subscribers_export():
    """The filtered subscribers as CSV (a POST: the export is recorded in the audit log)."""
    filters = _filters(request.form)
    filters.pop("page")
    rows = audience.export_rows(db_session, **filters)  # raises InvalidInput before streaming
    audit.record(db_session, actor(), "subscribers.export", "", **{k: v for k, v in filters.items() if v})
    name = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(csv_export.stream(audience.EXPORT_HEADER, rows)),
                    mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


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
    list_id = _number(request.form.get("list_id"), None, MAX_ID)
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
