"""Categories of events: read by every token (an event's ``category_ids`` name them); staff
keep them in the admin."""

from flask import jsonify

from ... import interests
from ...extensions import db_session
from . import bp, schemas
from .spec import answers, spec


@bp.get("/categories")
@spec.validate(resp=answers(200, schemas.Categories, "The categories."))
def list_categories():
    """All categories of events."""
    return jsonify({"items": [{"id": item.id, "slug": item.slug, "name_pl": item.name_pl, "name_en": item.name_en}
                              for item in interests.all_categories(db_session)]})
