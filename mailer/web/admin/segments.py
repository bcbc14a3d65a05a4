"""Staff pages: segments (saved conditions over the audience), built in a form; editors read,
admins change them."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ... import audience, lists, segments
from ...errors import Conflict, InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Role, Segment
from ..auth import staff_required
from ..errors import flash_error
from . import bp

ROWS = 8  # condition rows in the form (empty ones are ignored)


def conditions_from(form) -> list[dict]:
    """The form's condition rows (field, op, key, value, status), the empty ones left out."""
    found = []
    for n in range(ROWS):
        field = form.get(f"field-{n}", "")
        if not field:
            continue
        cond = {"field": field, "op": form.get(f"op-{n}", "")}
        for name in ("key", "value", "status"):
            if form.get(f"{name}-{n}", "") != "":
                cond[name] = form.get(f"{name}-{n}")
        found.append(cond)
    return found


def _form(segment: Segment | None = None, error=None, status: int = 200, values=None):
    values = values or ({"name": segment.name, "description": segment.description, "match": segment.match,
                         "conditions": segment.conditions} if segment else
                        {"name": "", "description": "", "match": "all", "conditions": []})
    rows = list(values["conditions"]) + [{}] * max(0, ROWS - len(values["conditions"]))
    return render_template("web/admin/segments/form.html", segment=segment, error=error, values=values,
                           rows=rows[:ROWS], fields=segments.FIELDS, lists=lists.all_lists(db_session),
                           tags=audience.known_tags(db_session)), status


@bp.get("/segments", endpoint="segments")
@staff_required()
def segments_page():
    items = segments.all_segments(db_session)
    return render_template("web/admin/segments/index.html", items=items,
                           counts=audience.segment_counts(db_session, items))


@bp.route("/segments/new", methods=["GET", "POST"])
@staff_required(Role.ADMIN)
def segment_new():
    if request.method == "GET":
        return _form()
    values = {"name": request.form.get("name", ""), "description": request.form.get("description", ""),
              "match": request.form.get("match", "all"), "conditions": conditions_from(request.form)}
    try:
        segment = segments.create_segment(db_session, created_by_id=current_user.id, **values)
    except (InvalidInput, Conflict) as exc:
        return _form(None, exc, 400, values)
    flash(_("The segment was saved."), "success")
    return redirect(url_for("admin.subscribers", segment_id=segment.id))


@bp.route("/segments/<int:segment_id>", methods=["GET", "POST"])
@staff_required()
def segment_edit(segment_id: int):
    segment = get_or_404(db_session, Segment, segment_id)
    if request.method == "GET":
        return _form(segment)
    if current_user.role != Role.ADMIN:
        return _form(segment, None, 403)
    values = {"name": request.form.get("name", ""), "description": request.form.get("description", ""),
              "match": request.form.get("match", "all"), "conditions": conditions_from(request.form)}
    try:
        segments.update_segment(db_session, segment_id, values)
    except (InvalidInput, Conflict) as exc:
        return _form(segment, exc, 400, values)
    flash(_("The segment was saved."), "success")
    return redirect(url_for("admin.segments"))


@bp.post("/segments/<int:segment_id>/delete")
@staff_required(Role.ADMIN)
def segment_delete(segment_id: int):
    try:
        segments.delete_segment(db_session, segment_id)
    except InvalidInput as exc:
        flash_error(exc)
    else:
        flash(_("The segment was deleted."), "success")
    return redirect(url_for("admin.segments"))
