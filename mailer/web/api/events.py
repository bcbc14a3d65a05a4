"""Events: the CMS pushes, edits and removes them."""

from flask import jsonify, request

from ... import events
from ...extensions import db
from .. import api_schemas as schemas
from . import bp, serializers

ID = "<int(min=1, max=2147483647):event_id>"


@bp.get("/events")
def list_events():
    if request.args.get("upcoming", "").lower() in {"1", "true", "yes"}:
        items = events.upcoming(db.session, limit=100)
    else:
        items = events.all_events(db.session)
    return jsonify({"items": [serializers.event(item) for item in items]})


@bp.get(f"/events/{ID}")
def get_event(event_id: int):
    return jsonify(serializers.event(events.get_event(db.session, event_id)))


@bp.post("/events")
def create_event():
    values = schemas.parse(schemas.EVENT, schemas.parse_body(request))
    item = events.create_event(db.session, values)
    db.session.commit()
    return jsonify(serializers.event(item)), 201


@bp.patch(f"/events/{ID}")
def update_event(event_id: int):
    """Only the fields sent change: the others keep their current values."""
    changes = schemas.parse(schemas.EVENT, schemas.parse_body(request), partial=True)
    current = serializers.event_values(events.get_event(db.session, event_id))
    item = events.update_event(db.session, event_id, current | changes)
    db.session.commit()
    return jsonify(serializers.event(item))


@bp.delete(f"/events/{ID}")
def delete_event(event_id: int):
    events.delete_event(db.session, event_id)
    db.session.commit()
    return "", 204
