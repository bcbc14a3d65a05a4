"""Segments: saved conditions over the audience (list, read, create, change, delete)."""

from flask import g, jsonify

from ... import audience, segments
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Segment
from . import admin_only, bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):segment_id>"


def _shown(item):
    return serializers.segment(item, audience.count(db_session, audience.where(
        db_session, audience.Selection(segment_id=item.id))))


@bp.get("/segments")
@spec.validate(resp=answers(200, schemas.Segments, "The segments."))
def list_segments():
    """Every segment, by name."""
    return jsonify({"items": [serializers.segment(item) for item in segments.all_segments(db_session)]})


@bp.get(f"/segments/{ID}")
@spec.validate(resp=answers(200, schemas.Segment, "The segment with how many it holds.", 404))
def get_segment(segment_id: int):
    """A segment and how many subscribers it holds now."""
    return jsonify(_shown(get_or_404(db_session, Segment, segment_id)))


@bp.post("/segments")
@admin_only
@spec.validate(resp=answers(201, schemas.Segment, "The new segment.", 409, 413, admin=True))
def create_segment(json: schemas.SegmentCreate):
    """Save named conditions (never SQL) as a segment."""
    values = json.model_dump(exclude_none=True)
    item = segments.create_segment(db_session, created_by_id=g.api_user.id, **values)
    return jsonify(serializers.segment(item)), 201


@bp.patch(f"/segments/{ID}")
@admin_only
@spec.validate(resp=answers(200, schemas.Segment, "The segment.", 404, 409, 413, admin=True))
def update_segment(segment_id: int, json: schemas.SegmentUpdate):
    """Change a segment's name, description, match or conditions."""
    values = json.model_dump(exclude_unset=True)
    if "conditions" in values:
        values["conditions"] = [{k: v for k, v in cond.items() if v is not None} for cond in values["conditions"]]
    return jsonify(serializers.segment(segments.update_segment(db_session, segment_id, values)))


@bp.delete(f"/segments/{ID}")
@admin_only
@spec.validate(resp=answers(204, None, "Deleted.", 404, admin=True))
def delete_segment(segment_id: int):
    """Delete a segment (campaigns that targeted it keep their lists)."""
    segments.delete_segment(db_session, segment_id)
    return "", 204
