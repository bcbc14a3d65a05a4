"""Staff pages: CSV import (admins only): upload, preview and mapping, progress."""

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from ... import imports, lists
from ...errors import InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import ImportJob, ImportStatus, Role
from ..admin_forms import MappingForm, UploadForm, add_error
from ..auth import audited, staff_required
from . import bp


def _index(form: UploadForm, status: int = 200):
    return render_template("web/admin/imports/index.html", form=form,
                           jobs=imports.recent_jobs(db_session)), status


@bp.get("/imports", endpoint="imports")
@staff_required(Role.ADMIN)
def imports_page():
    return _index(UploadForm())


@bp.post("/imports")
@staff_required(Role.ADMIN)
def import_upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _index(form, 400)
    upload = form.file.data
    try:
        job = imports.save_upload(db_session, upload.stream, upload.filename or "", current_user.id)
    except InvalidInput as exc:
        add_error(form, exc)
        return _index(form, 400)
    return redirect(url_for("admin.import_job", job_id=job.id))


def _mapping_form(preview: dict, formdata=None) -> MappingForm:
    job = preview["job"]
    form = MappingForm(formdata=formdata) if formdata is not None else MappingForm(
        email_col=str(job.options.get("email_col")),
        name_col=str(job.options.get("name_col") if job.options.get("name_col") is not None else ""),
        locale_col=str(job.options.get("locale_col") if job.options.get("locale_col") is not None else ""),
        attributes=imports.suggested_attributes(job, preview["header"]))
    columns = [SelectChoice(str(i), f"{i + 1}: {title}" if title and job.has_header else str(i + 1))
               for i, title in enumerate(preview["header"])]
    form.email_col.choices = columns
    form.name_col.choices = [SelectChoice("", _("(none)"))] + columns
    form.locale_col.choices = [SelectChoice("", _("(none)"))] + columns
    form.list_ids.choices = [SelectChoice(m.id, m.name) for m in lists.all_lists(db_session)]
    return form


@bp.get("/imports/<int:job_id>")
@staff_required(Role.ADMIN)
def import_job(job_id: int):
    job = get_or_404(db_session, ImportJob, job_id)
    if job.status != ImportStatus.UPLOADED:
        return render_template("web/admin/imports/progress.html", job=job,
                               progress=imports.progress(db_session, job_id))
    preview = imports.preview(db_session, job_id)
    return render_template("web/admin/imports/preview.html", form=_mapping_form(preview), **preview)


@bp.post("/imports/<int:job_id>")
@staff_required(Role.ADMIN)
@audited("import.start", "job_id")
def import_start(job_id: int):
    preview = imports.preview(db_session, job_id)
    form = _mapping_form(preview, request.form)
    if form.validate_on_submit():
        try:
            imports.start(db_session, job_id, email_col=form.email_col.data, name_col=form.name_col.data,
                          locale_col=form.locale_col.data, list_ids=form.list_ids.data or [],
                          status=form.status.data, consent_source=form.consent_source.data or "",
                          attributes=form.attributes.data or "")
        except InvalidInput as exc:
            add_error(form, exc)
        else:
            flash(_("The import has started."), "success")
            return redirect(url_for("admin.import_job", job_id=job_id))
    return render_template("web/admin/imports/preview.html", form=form, **preview), 400


@bp.get("/imports/<int:job_id>/status")
@staff_required(Role.ADMIN)
def import_status(job_id: int):
    return jsonify(imports.progress(db_session, job_id))
