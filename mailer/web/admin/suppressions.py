"""Staff pages: the suppression list (admins), and the labels the bounce figures use."""

from flask import render_template, request

from ... import stats, suppression
from ...extensions import db_session
from ...models import Role
from ..auth import staff_required
from . import bp
from .query_args import number

PER_PAGE = 50


@bp.get("/suppressions", endpoint="suppressions")
@staff_required(Role.ADMIN)
def suppressions_page():
    """Addresses never mailed again: newest first, filtered by reason, searched by a whole
    address (only its keyed hash is stored)."""
    after, before = number(request.args, "after"), number(request.args, "before")
    query, reason = request.args.get("q", ""), request.args.get("reason") or None
    filters = {"query": query, "reason": reason}
    found = suppression.search(db_session, query=query, reason=reason, after=after, before=before, per_page=PER_PAGE)
    counts, counted_at = stats.suppressed(db_session)
    return render_template("web/admin/suppressions/index.html", found=found, rows=found.rows, filters=filters,
                           reasons=suppression.REASONS, counts=counts, counted_at=counted_at,
                           count_limit=suppression.COUNT_LIMIT)

