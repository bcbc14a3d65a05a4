"""Staff pages: categories of events (interests subscribers choose); each change audited."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ... import interests
from ...errors import InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Category
from ..auth import actor, staff_required
from . import bp

FIELDS = ("slug", "name_pl", "name_en")


def _page(editing: Category | None = None, data: dict | None = None, error: InvalidInput | None = None,
          status: int = 200):
    if data is None:
        data = {field: getattr(editing, field) for field in FIELDS} if editing else {}
    rows = [(category, interests.count_interested(db_session, category.id))
            for category in interests.all_categories(db_session)]
    return render_template("web/admin/categories/index.html", rows=rows, editing=editing, data=data,
                           error=error), status


def _values() -> dict:
    return {field: request.form.get(field, "") for field in FIELDS}


@bp.get("/categories", endpoint="categories")
@staff_required()
def categories_page():
    return _page()


@bp.post("/categories")
@staff_required()
def category_create():
    try:
        created = interests.create_category(db_session, _values(), actor())
    except InvalidInput as exc:
        return _page(data=_values(), error=exc, status=400)
    flash(_("Category \u201c%(name)s\u201d created.", name=created.name_pl), "success")
    return redirect(url_for("admin.categories"))


@bp.route("/categories/<int:category_id>", methods=["GET", "POST"])
@staff_required()
def category_edit(category_id: int):
    editing = get_or_404(db_session, Category, category_id)
    if request.method == "GET":
        return _page(editing)
    try:
        interests.update_category(db_session, category_id, _values(), actor())
    except InvalidInput as exc:
        return _page(editing, _values(), exc, 400)
    flash(_("Category saved."), "success")
    return redirect(url_for("admin.categories"))


@bp.post("/categories/<int:category_id>/delete")
@staff_required()
def category_delete(category_id: int):
    interests.delete_category(db_session, category_id, actor())
    flash(_("Category deleted."), "success")
    return redirect(url_for("admin.categories"))
