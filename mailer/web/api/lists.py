"""Mailing lists: read by every token, changed only by an admin's."""

from flask import jsonify, request

from ... import lists
from ...extensions import db
from .. import api_schemas as schemas
from . import admin_only, bp, serializers

ID = "<int(min=1, max=2147483647):list_id>"


@bp.get("/lists")
def list_lists():
    return jsonify({"items": [serializers.mailing_list(item) for item in lists.all_lists(db.session)]})


@bp.post("/lists")
@admin_only
def create_list():
    values = schemas.parse(schemas.LIST_CREATE, schemas.parse_body(request))
    item = lists.create_list(db.session, **values)
    db.session.commit()
    return jsonify(serializers.mailing_list(item)), 201


@bp.patch(f"/lists/{ID}")
@admin_only
def update_list(list_id: int):
    """Only the fields sent change: the others keep their current values."""
    changes = schemas.parse(schemas.LIST_UPDATE, schemas.parse_body(request), partial=True)
    current = serializers.list_values(lists.get_list(db.session, list_id))
    item = lists.update_list(db.session, list_id, **(current | changes))
    db.session.commit()
    return jsonify(serializers.mailing_list(item))
