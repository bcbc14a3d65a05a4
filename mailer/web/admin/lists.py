"""Staff pages: mailing lists with their subscriber counts (everyone sees them; admins
change, archive and delete them)."""

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ... import audit, lists, stats
from ...errors import Conflict, InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import MailingList, Role
from ..admin_forms import ListForm, add_error
from ..auth import actor, staff_required
from ..errors import flash_error
from . import bp


def _page(form: ListForm, editing=None, status: int = 200):
    rows, counted_at = stats.lists_overview(db_session)
    return render_template("web/admin/lists/index.html", rows=rows, counted_at=counted_at,
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
        except (InvalidInput, Conflict) as exc:
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
        except (InvalidInput, Conflict) as exc:
            add_error(form, exc)
        else:
            flash(_("List saved."), "success")
            return redirect(url_for("admin.lists"))
        return _page(form, editing, 400)
    return _page(form, editing, 400 if form.is_submitted() else 200)


@bp.post("/lists/<int:list_id>/archive")
@staff_required(Role.ADMIN)
def list_archive(list_id: int):
    """Archive (archived=1) or bring back (archived=0) a list."""
    if request.form.get("archived") not in ("0", "1"):
        raise InvalidInput("The request could not be understood.")
    item = lists.set_archived(db_session, list_id, request.form["archived"] == "1")
    audit.record(db_session, actor(), "list.archive" if item.archived_at else "list.restore", str(list_id),
                 name=item.name)
    flash(_("List \u201c%(name)s\u201d archived.", name=item.name) if item.archived_at
          else _("List \u201c%(name)s\u201d restored.", name=item.name), "success")
    return redirect(url_for("admin.lists"))


@bp.post("/lists/<int:list_id>/delete")
@staff_required(Role.ADMIN)
def list_delete(list_id: int):
    item = get_or_404(db_session, MailingList, list_id)
    name = item.name
    try:
        gone = lists.delete_list(db_session, list_id)
    except Conflict as exc:
        flash_error(exc)
    else:
        audit.record(db_session, actor(), "list.delete", str(list_id), name=name, subscriptions=gone)
        flash(_("List \u201c%(name)s\u201d deleted with its %(n)s subscriptions.", name=name, n=gone), "success")
    return redirect(url_for("admin.lists"))
