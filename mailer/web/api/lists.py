"""Mailing lists: read by every token, changed only by an admin's."""

from flask import jsonify

from ... import lists
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import MailingList
from . import admin_only, bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):list_id>"


@bp.get("/lists")
@spec.validate(resp=answers(200, schemas.MailingLists, "The lists."))
def list_lists():
    """All mailing lists."""
    return jsonify({"items": [serializers.mailing_list(item) for item in lists.all_lists(db_session)]})


@bp.post("/lists")
@admin_only
@spec.validate(resp=answers(201, schemas.MailingList, "The new list.", 409, 413, admin=True))
def create_list(json: schemas.ListCreate):
    """Create a list.

    Only for tokens of administrators (403 for editors)."""
    item = lists.create_list(db_session, **json.values())
    return jsonify(serializers.mailing_list(item)), 201


@bp.patch(f"/lists/{ID}")
@admin_only
@spec.validate(resp=answers(200, schemas.MailingList, "The changed list.", 404, 409, 413, admin=True))
def update_list(list_id: int, json: schemas.ListUpdate):
    """Rename, describe, or make a list public or private.

    Only the fields sent change. Only for tokens of administrators (403 for editors)."""
    current = serializers.list_values(get_or_404(db_session, MailingList, list_id))
    item = lists.update_list(db_session, list_id, **(current | json.values()))
    return jsonify(serializers.mailing_list(item))
