"""Staff pages: email templates (list, create, edit with a live preview, restore defaults)."""

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ... import content_usage, email_templates, languages
from ...errors import DomainError, InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Template, TemplateKind
from ..archive import mail_page
from ..auth import render_limit, staff_required
from ..content_forms import int_or_none, template_values
from ..errors import error_text, flash_error, status_of
from . import bp


@bp.get("/templates", endpoint="templates")
@staff_required()
def templates_index():
    templates = email_templates.all_templates(db_session)
    return render_template("web/admin/templates/index.html", templates=templates)


def _form(template=None, data=None, error=None, status=200):
    if data is None:
        data = {"name": template.name, "kind": template.kind, "layout_id": template.layout_id,
                "html": template.html, "text": template.text, "html_en": template.html_en or "",
                "text_en": template.text_en or ""} if template else \
               {"name": "", "kind": request.args.get("kind", TemplateKind.CONTENT),
                "layout_id": None, "html": "", "text": "", "html_en": "", "text_en": ""}
    layouts = email_templates.layouts(db_session)
    usage = content_usage.of_template(db_session, template.id) if template else None
    return render_template("web/admin/templates/form.html", template=template, data=data, usage=usage,
                           error=error, layouts=layouts), status


@bp.route("/templates/new", methods=["GET", "POST"])
@staff_required()
@render_limit
def template_new():
    if request.method == "GET":
        return _form()
    try:
        template = email_templates.save_template(db_session, None, template_values(request.form))
    except InvalidInput as exc:
        return _form(data=template_values(request.form), error=exc, status=400)
    flash(_("The template was saved."), "success")
    return redirect(url_for("admin.template_edit", template_id=template.id))


@bp.route("/templates/<int:template_id>", methods=["GET", "POST"])
@staff_required()
@render_limit
def template_edit(template_id: int):
    if request.method == "GET":
        return _form(get_or_404(db_session, Template, template_id))
    try:
        email_templates.save_template(db_session, template_id, template_values(request.form))
    except InvalidInput as exc:
        template = get_or_404(db_session, Template, template_id)
        return _form(template, {**template_values(request.form), "kind": template.kind}, exc, 400)
    flash(_("The template was saved."), "success")
    return redirect(url_for("admin.template_edit", template_id=template_id))


@bp.post("/templates/<int:template_id>/restore")
@staff_required()
def template_restore(template_id: int):
    try:
        email_templates.restore_default(db_session, template_id)
    except InvalidInput as exc:
        flash_error(exc)
    else:
        flash(_("The default version was restored."), "success")
    return redirect(url_for("admin.template_edit", template_id=template_id))


@bp.post("/templates/<int:template_id>/clone")
@staff_required()
def template_clone(template_id: int):
    """A copy to change freely (a built-in one too), opened for editing."""
    copy = email_templates.clone_template(db_session, template_id, prefix=_("Copy: "))
    flash(_("This is a copy: \u201c%(name)s\u201d.", name=copy.name), "success")
    return redirect(url_for("admin.template_edit", template_id=copy.id))


@bp.post("/templates/<int:template_id>/delete")
@staff_required()
def template_delete(template_id: int):
    try:
        email_templates.delete_template(db_session, template_id)
    except InvalidInput as exc:
        flash_error(exc)
        return redirect(url_for("admin.template_edit", template_id=template_id))
    flash(_("The template was deleted."), "success")
    return redirect(url_for("admin.templates"))


def preview_locale() -> str:
    """The language a preview shows (the preview's language switch), else the default
    language: the version in the form's first fields."""
    chosen = request.values.get("preview_lang") or ""
    return chosen if chosen in current_app.config["LANGUAGES"] else languages.DEFAULT


@bp.route("/templates/preview", methods=["GET", "POST"])
@staff_required()
@render_limit
def template_preview():
    """The preview frame: a stored template (GET ?id=) or the edits being made (POST)."""
    template_id = int_or_none(request.values.get("id"))
    values = template_values(request.form) if request.method == "POST" else None
    part = request.values.get("part", "html")
    try:
        rendered = email_templates.preview(db_session, template_id, values, preview_locale())
    except DomainError as exc:
        return render_template("web/admin/templates/preview_error.html", message=error_text(exc)), \
            status_of(exc)
    if part == "text":
        return render_template("web/admin/templates/preview_text.html", text=rendered.text)
    return mail_page(rendered.html)
