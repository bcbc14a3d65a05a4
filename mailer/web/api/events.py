"""Events: the CMS pushes, edits and removes them."""

from flask import jsonify

from ... import events
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Event
from . import bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):event_id>"


@bp.get("/events")
@spec.validate(resp=answers(200, schemas.Events, "The events."))
def list_events(query: schemas.EventFilter):
    """Events, the latest first; with upcoming=true only those not ended, soonest first."""
    if query.upcoming in {"1", "true"}:
        items = events.upcoming(db_session, limit=100)
    else:
        items = events.all_events(db_session)
    return jsonify({"items": [serializers.event(item) for item in items]})


@bp.get(f"/events/{ID}")
@spec.validate(resp=answers(200, schemas.Event, "The event.", 404))
def get_event(event_id: int):
    """One event."""
    return jsonify(serializers.event(get_or_404(db_session, Event, event_id)))


@bp.post("/events")
@spec.validate(resp=answers(201, schemas.Event, "The new event.", 413))
def create_event(json: schemas.EventCreate):
    """Create an event."""
    item = events.create_event(db_session, json.values())
    return jsonify(serializers.event(item)), 201


@bp.patch(f"/events/{ID}")
@spec.validate(resp=answers(200, schemas.Event, "The event.", 404, 413))
def update_event(event_id: int, json: schemas.EventUpdate):
    """Change some of an event's fields.

    Only the fields sent change: the others keep their current values."""
    current = serializers.event_values(get_or_404(db_session, Event, event_id))
    item = events.update_event(db_session, event_id, current | json.values())
    return jsonify(serializers.event(item))


@bp.delete(f"/events/{ID}")
@spec.validate(resp=answers(204, None, "Done.", 404, 409))
def delete_event(event_id: int):
    """Delete an event no sent campaign announced."""
    events.delete_event(db_session, event_id)
    return "", 204
