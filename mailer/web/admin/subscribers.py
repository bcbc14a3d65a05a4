"""Staff pages: subscribers (editors read; admins unsubscribe, export, erase)."""

import json

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _

from ... import audience, csv_export, lists
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Role, Subscriber, SubscriptionStatus, utcnow
from ..auth import staff_required
from . import bp

PER_PAGE = 50


def _filters() -> dict:
    """Search arguments from the query string; a malformed number is a 400."""
    try:
        list_id = int(request.args["list_id"]) if request.args.get("list_id") else None
        page = int(request.args.get("page") or 1)
    except ValueError:
        abort(400)
    return {"query": request.args.get("q", ""), "list_id": list_id,
            "status": request.args.get("status") or None, "page": page}


@bp.get("/subscribers", endpoint="subscribers")
@staff_required()
def subscribers_page():
    filters = _filters()
    rows, total = audience.search(db_session, per_page=PER_PAGE, **filters)
    pages = max(1, -(-total // PER_PAGE))
    return render_template("web/admin/subscribers/index.html", rows=rows, total=total, pages=pages,
                           filters=filters, lists=lists.all_lists(db_session),
                           statuses=list(SubscriptionStatus))


@bp.get("/subscribers/export.csv")
@staff_required(Role.ADMIN)
def subscribers_export():
    filters = _filters()
    filters.pop("page")
    rows = audience.export_rows(db_session, **filters)  # raises InvalidInput before streaming
    name = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(csv_export.stream(audience.EXPORT_HEADER, rows)),
                    mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.get("/subscribers/<int:subscriber_id>")
@staff_required()
def subscriber(subscriber_id: int):
    return render_template("web/admin/subscribers/detail.html",
                           **audience.detail(db_session, subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@staff_required(Role.ADMIN)
def subscriber_unsubscribe(subscriber_id: int):
    raw = request.form.get("list_id") or ""
    if raw and not raw.isdigit():
        abort(400)
    audience.unsubscribe(db_session, subscriber_id, [int(raw)] if raw else None)
    flash(_("Unsubscribed."), "success")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))


@bp.get("/subscribers/<int:subscriber_id>/export.json")
@staff_required(Role.ADMIN)
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
        flash(_("The subscriber's personal data was erased."), "success")
        return redirect(url_for("admin.subscribers"))
    return render_template("web/admin/subscribers/erase.html", subscriber=found)
