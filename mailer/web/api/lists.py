"""Mailing lists: read by every token, changed only by an admin's."""

from flask import jsonify

from ... import audit, lists, stats
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import MailingList
from ..auth import actor
from . import admin_only, bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):list_id>"


@bp.get("/lists")
@spec.validate(resp=answers(200, schemas.MailingLists, "The lists."))
def list_lists():
    """All mailing lists (archived ones last), each with its subscriptions counted by status
    (with a large audience, by the background summary of the last minute: `counted_at`)."""
    rows, counted_at = stats.lists_overview(db_session)
    return jsonify({"items": [serializers.mailing_list(item, counts) for item, counts in rows],
                    "counted_at": serializers.when(counted_at)})


@bp.post("/lists")
@admin_only
@spec.validate(resp=answers(201, schemas.MailingList, "The new list.", 409, 413, admin=True))
def create_list(json: schemas.ListCreate):
    """Create a list. A name another list has (whatever its case or spacing) is a 409.

    Only for tokens of administrators (403 for editors)."""
    item = lists.create_list(db_session, **json.values())
    return jsonify(serializers.mailing_list(item)), 201


@bp.patch(f"/lists/{ID}")
@admin_only
@spec.validate(resp=answers(200, schemas.MailingList, "The changed list.", 404, 409, 413, admin=True))
def update_list(list_id: int, json: schemas.ListUpdate):
    """Rename, describe, make a list public or private, archive it or bring it back.

    Only the fields sent change; a name another list has is a 409. Only for tokens of
    administrators (403 for editors)."""
    values = json.values()
    archived = values.pop("archived", None)
    current = serializers.list_values(get_or_404(db_session, MailingList, list_id))
    item = lists.update_list(db_session, list_id, **(current | values))
    if archived is not None:
        item = lists.set_archived(db_session, list_id, archived)
        audit.record(db_session, actor(), "list.archive" if archived else "list.restore", str(list_id),
                     name=item.name)
    return jsonify(serializers.mailing_list(item))


@bp.delete(f"/lists/{ID}")
@admin_only
@spec.validate(resp=answers(204, None, "Deleted, with its subscriptions.", 404, 409, admin=True))
def delete_list(list_id: int):
    """Delete a list and its subscriptions (subscribers stay).

    A list a scheduled, sending or paused campaign goes to is a 409. Only for tokens of
    administrators (403 for editors)."""
    name = get_or_404(db_session, MailingList, list_id).name
    gone = lists.delete_list(db_session, list_id)
    audit.record(db_session, actor(), "list.delete", str(list_id), name=name, subscriptions=gone)
    return "", 204
