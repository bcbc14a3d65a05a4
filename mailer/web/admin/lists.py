"""Staff pages: mailing lists (everyone sees them; admins change them)."""

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from ... import lists
from ...errors import InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import MailingList, Role
from ..admin_forms import ListForm, add_error
from ..auth import staff_required
from . import bp


def _page(form: ListForm, editing=None, status: int = 200):
    return render_template("web/admin/lists/index.html", lists=lists.all_lists(db_session),
                           form=form, editing=editing), status


@bp.get("/lists", endpoint="lists")
@staff_required()
def lists_page():
    return _page(ListForm())


@bp.post("/lists")
@staff_required(Role.ADMIN)
def list_create():
    form = ListForm()
    if form.validate_on_submit():
        try:
            created = lists.create_list(db_session, name=form.name.data,
                                        description=form.description.data or "",
                                        public=form.public.data)
        except InvalidInput as exc:
            add_error(form, exc)
        else:
            flash(_("List \u201c%(name)s\u201d created.", name=created.name), "success")
            return redirect(url_for("admin.lists"))
    return _page(form, status=400)


@bp.route("/lists/<int:list_id>", methods=["GET", "POST"])
@staff_required(Role.ADMIN)
def list_edit(list_id: int):
    editing = get_or_404(db_session, MailingList, list_id)
    form = ListForm(obj=editing)
    if form.validate_on_submit():
        try:
            lists.update_list(db_session, list_id, name=form.name.data,
                              description=form.description.data or "", public=form.public.data)
        except InvalidInput as exc:
            add_error(form, exc)
        else:
            flash(_("List saved."), "success")
            return redirect(url_for("admin.lists"))
        return _page(form, editing, 400)
    return _page(form, editing, 400 if form.is_submitted() else 200)
