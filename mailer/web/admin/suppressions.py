"""Staff pages: the suppression list (admins), and the labels the bounce figures use."""

from flask import abort, render_template, request

from ... import suppression
from ...extensions import db_session
from ...models import Role
from ..auth import staff_required
from . import bp

PER_PAGE = 50


@bp.get("/suppressions", endpoint="suppressions")
@staff_required(Role.ADMIN)
def suppressions_page():
    """Addresses never mailed again: newest first, filtered by reason, searched by a whole
    address (only its keyed hash is stored)."""
    try:
        page = int(request.args.get("page") or 1)
    except ValueError:
        abort(400)
    query, reason = request.args.get("q", ""), request.args.get("reason") or None
    filters = {"query": query, "reason": reason, "page": page}
    rows, total = suppression.search(db_session, query=query, reason=reason, page=page, per_page=PER_PAGE)
    return render_template("web/admin/suppressions/index.html", rows=rows, total=total, filters=filters,
                           pages=max(1, -(-total // PER_PAGE)), reasons=suppression.REASONS,
                           counts=suppression.counts(db_session))

