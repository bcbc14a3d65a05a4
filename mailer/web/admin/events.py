"""Staff pages: events (list, create, edit, delete)."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ... import content_usage, events, interests
from ...errors import Conflict, InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Event
from ..auth import staff_required
from ..content_forms import event_form_data, event_values
from ..errors import flash_error
from . import bp


@bp.get("/events", endpoint="events")
@staff_required()
def events_index():
    return render_template("web/admin/events/index.html", events=events.all_events(db_session))


def _form(event=None, data=None, error=None, status=200):
    usage = content_usage.of_event(db_session, event.id) if event else None
    return render_template("web/admin/events/form.html", event=event, usage=usage,
                           data=data or event_form_data(event), error=error,
                           categories=interests.all_categories(db_session)), status


@bp.route("/events/new", methods=["GET", "POST"])
@staff_required()
def event_new():
    if request.method == "GET":
        return _form()
    try:
        event = events.create_event(db_session, event_values(request.form))
    except InvalidInput as exc:
        return _form(data=event_values(request.form), error=exc, status=400)
    flash(_("The event was saved."), "success")
    return redirect(url_for("admin.event_edit", event_id=event.id))


@bp.route("/events/<int:event_id>", methods=["GET", "POST"])
@staff_required()
def event_edit(event_id: int):
    if request.method == "GET":
        return _form(get_or_404(db_session, Event, event_id))
    try:
        event = events.update_event(db_session, event_id, event_values(request.form))
    except InvalidInput as exc:
        return _form(get_or_404(db_session, Event, event_id), event_values(request.form), exc, 400)
    flash(_("The event was saved."), "success")
    return redirect(url_for("admin.event_edit", event_id=event.id))


@bp.post("/events/<int:event_id>/delete")
@staff_required()
def event_delete(event_id: int):
    try:
        events.delete_event(db_session, event_id)
    except Conflict as exc:
        flash_error(exc)
        return redirect(url_for("admin.event_edit", event_id=event_id))
    flash(_("The event was deleted."), "success")
    return redirect(url_for("admin.events"))
