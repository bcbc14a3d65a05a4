"""Staff pages: one's own account (password, two-factor sign-in, API tokens), every token
(admins), and the audit log (admins: read, filter, export)."""

from flask import Response, flash, redirect, render_template, request, session, stream_with_context, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ... import audit, csv_export, two_factor, users
from ...errors import InvalidInput
from ...extensions import db_session
from ...models import Role, utcnow
from ..admin_forms import PasswordChangeForm, TokenForm, TwoFactorForm, add_error
from ..auth import actor, needs_enrolment, staff_required, start_session
from . import bp

ENROLMENT = "2fa_enrolment_secret"


@bp.before_request
def require_second_factor():
    """While admins require two-factor sign-in, a staff member without it can only set it up
    (or log out)."""
    allowed = {"admin.login", "admin.login_2fa", "admin.logout", "admin.account_2fa", "admin.account_2fa_enable"}
    if request.endpoint not in allowed and needs_enrolment():
        flash(_("Set up two-factor sign-in to continue: the administrators require it."), "error")
        return redirect(url_for("admin.account_2fa"))
    return None


def _token_form() -> TokenForm:
    form = TokenForm()
    form.scope.choices = [choice for choice in form.scope.choices
                          if choice.value in {str(scope) for scope in users.allowed_scopes(current_user)}]
    return form


def _account(password_form=None, token_form=None, new_token=None, status=200):
    return render_template(
        "web/admin/security/account.html", password_form=password_form or PasswordChangeForm(),
        token_form=token_form or _token_form(), new_token=new_token,
        tokens=users.list_tokens(db_session, current_user.id), now=utcnow(),
        recovery_left=two_factor.recovery_codes_left(db_session, current_user)), status


@bp.get("/account")
@staff_required()
def account():
    return _account()


@bp.post("/account/password")
@staff_required()
def account_password():
    """Change one's own password: every other session of the account ends, this one goes on."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            users.change_own_password(db_session, current_user, form.current_password.data,
                                      form.new_password.data)
        except InvalidInput as exc:
            add_error(form, exc)
        else:
            start_session(current_user)
            audit.record(db_session, actor(), "password.change", str(current_user.id))
            flash(_("Your password was changed; your other sessions have ended."), "success")
            return redirect(url_for("admin.account"))
    return _account(password_form=form, status=400)


@bp.post("/account/tokens")
@staff_required()
def account_token_create():
    form = _token_form()
    if form.validate_on_submit():
        try:
            created, token = users.issue_token(db_session, current_user, form.name.data, form.scope.data,
                                               int(form.days.data))
        except InvalidInput as exc:
            add_error(form, exc)
        else:
            audit.record(db_session, actor(), "token.create", str(created.id), name=created.name,
                         scope=str(created.scope), owner=current_user.email)
            return _account(new_token=token)
    return _account(token_form=form, status=400)


@bp.post("/tokens/<int:token_id>/revoke")
@staff_required()
def token_revoke(token_id: int):
    """Revoke one's own token, or (admins) anyone's."""
    revoked = users.revoke_token(db_session, token_id, current_user)
    audit.record(db_session, actor(), "token.revoke", str(token_id), owner=revoked.user.email)
    flash(_("The token was revoked."), "success")
    back = url_for("admin.tokens") if request.form.get("back") == "tokens" and current_user.is_admin \
        else url_for("admin.account")
    return redirect(back)


@bp.get("/tokens", endpoint="tokens")
@staff_required(Role.ADMIN)
def tokens_page():
    return render_template("web/admin/security/tokens.html", tokens=users.list_tokens(db_session), now=utcnow())


# --- Two-factor sign-in ------------------------------------------------------------------------

@bp.get("/account/2fa")
@staff_required()
def account_2fa():
    """Set-up: a new secret (kept in the session until a code confirms it) and its QR code."""
    if current_user.has_totp:
        return render_template("web/admin/security/two_factor.html", form=TwoFactorForm(), enabled=True,
                               recovery_left=two_factor.recovery_codes_left(db_session, current_user))
    secret = session.get(ENROLMENT) or two_factor.new_secret()
    session[ENROLMENT] = secret
    uri = two_factor.provisioning_uri(secret, current_user.email)
    return render_template("web/admin/security/two_factor.html", form=TwoFactorForm(), enabled=False,
                           secret=secret, qr=two_factor.qr_svg(uri))


@bp.post("/account/2fa")
@staff_required()
def account_2fa_enable():
    form = TwoFactorForm()
    secret = session.get(ENROLMENT, "")
    if not form.validate_on_submit():
        raise InvalidInput("This code is not right. Check the time on your phone and try again.", "code")
    try:
        codes = two_factor.enable(db_session, current_user, secret if isinstance(secret, str) else "",
                                  form.code.data)
    except InvalidInput as exc:
        add_error(form, exc)
        uri = two_factor.provisioning_uri(secret, current_user.email) if secret else ""
        return render_template("web/admin/security/two_factor.html", form=form, enabled=False, secret=secret,
                               qr=two_factor.qr_svg(uri) if uri else ""), 400
    session.pop(ENROLMENT, None)
    start_session(current_user)  # the other sessions ended; this one goes on
    audit.record(db_session, actor(), "2fa.enable", str(current_user.id))
    return render_template("web/admin/security/recovery_codes.html", codes=codes)


@bp.post("/account/2fa/disable")
@staff_required()
def account_2fa_disable():
    form = TwoFactorForm()
    if not (form.validate_on_submit() and two_factor.verify(db_session, current_user, form.code.data)):
        flash(_("This code is not right."), "error")
        return redirect(url_for("admin.account_2fa"))
    if two_factor.required(db_session):
        flash(_("The administrators require two-factor sign-in: it cannot be turned off."), "error")
        return redirect(url_for("admin.account_2fa"))
    two_factor.disable(db_session, current_user)
    start_session(current_user)
    audit.record(db_session, actor(), "2fa.disable", str(current_user.id))
    flash(_("Two-factor sign-in is off."), "success")
    return redirect(url_for("admin.account"))


@bp.post("/account/2fa/recovery-codes")
@staff_required()
def account_recovery_codes():
    form = TwoFactorForm()
    if not (form.validate_on_submit() and two_factor.verify(db_session, current_user, form.code.data)):
        flash(_("This code is not right."), "error")
        return redirect(url_for("admin.account_2fa"))
    codes = two_factor.regenerate_recovery_codes(db_session, current_user)
    audit.record(db_session, actor(), "2fa.recovery_codes", str(current_user.id))
    return render_template("web/admin/security/recovery_codes.html", codes=codes)


# --- The audit log -------------------------------------------------------------------------

def _audit_filters() -> dict:
    actor_filter = request.values.get("actor") or None
    action = request.values.get("action") or None
    return {"actor": actor_filter, "action": action}


@bp.get("/audit", endpoint="audit")
@staff_required(Role.ADMIN)
def audit_page():
    filters = _audit_filters()
    found = audit.search(db_session, after=_entry_id("after"), before=_entry_id("before"), **filters)
    return render_template("web/admin/security/audit.html", found=found, rows=found.rows, filters=filters,
                           actions=audit.ACTIONS, count_limit=audit.COUNT_LIMIT)


def _entry_id(name: str) -> int | None:
    """A page key from the query string; anything but a plain number of at most 10 digits is ignored."""
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 10 else None


@bp.post("/audit/export.csv")
@staff_required(Role.ADMIN)
def audit_export():
    """The log as CSV (a POST: the export itself is recorded in the log)."""
    filters = _audit_filters()
    rows = audit.export_rows(db_session, **filters)  # raises InvalidInput before streaming
    audit.record(db_session, actor(), "audit.export", "", **{f"filter_{k}": v for k, v in filters.items() if v})
    name = f"audit-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(csv_export.stream(audit.EXPORT_HEADER, rows)),
                    mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
