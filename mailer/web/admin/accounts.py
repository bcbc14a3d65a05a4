"""Staff pages: signing in (password, then a second factor when the account has one) and out,
and the staff accounts (admins only): roles, activation, password resets, two-factor rules."""

from urllib.parse import urlsplit, urlunsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from ... import audit, two_factor, users
from ...errors import Conflict, DomainError, InvalidInput
from ...extensions import db_session, limiter
from ...lookups import get_or_404
from ...models import Role, User
from ..admin_forms import LoginForm, PasswordResetForm, RoleForm, TwoFactorForm, UserForm, add_error
from ..auth import actor, audited, pending_user, remember_pending, staff_required, start_session
from ..errors import error_text, status_of
from ..subscribe_limits import account_key
from . import bp


def safe_next(target: str | None) -> str | None:
    """Where to go after signing in: a path of the staff pages on this site, else None.

    Browsers drop tabs and line breaks inside URLs and read a backslash as a slash, so
    ``/\\t/evil.example`` would become ``//evil.example``: anything but printable ASCII is
    refused before the path is read, and only /admin paths are kept."""
    if not target or len(target) > 2000 or not target.isascii():
        return None
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F or ch == "\\" for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == "/admin" or parts.path.startswith("/admin/")):
        return None
    return urlunsplit(("", "", parts.path, parts.query, ""))


def _home() -> str:
    return url_for("admin.dashboard") if "admin.dashboard" in current_app.view_functions else "/"


def _signed_in(user):
    start_session(user)
    audit.record(db_session, actor(), "login", str(user.id))
    return redirect(safe_next(request.args.get("next")) or _home())


def _login_account() -> str:
    return account_key(request.form.get("email"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"], methods=["POST"],
               key_func=_login_account, deduct_when=lambda response: response.status_code == 401)
def login():
    form = LoginForm()
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(_home())
    if form.validate_on_submit():
        user = users.authenticate(db_session, form.email.data, form.password.data)
        if user is not None and user.has_totp:
            remember_pending(user)
            return redirect(url_for("admin.login_2fa", next=safe_next(request.args.get("next"))))
        if user is not None:
            return _signed_in(user)
        flash(_("Wrong email address or password."), "error")
        return render_template("web/admin/accounts/login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("web/admin/accounts/login.html", form=form), status


def _pending_account() -> str:
    user = pending_user()
    return account_key(user.email if user else "")


@bp.route("/login/2fa", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"], methods=["POST"],
               key_func=_pending_account, deduct_when=lambda response: response.status_code == 401)
def login_2fa():
    """The second step: a code from the authenticator app, or a recovery code."""
    user = pending_user()
    if user is None:
        flash(_("Sign in again."), "error")
        return redirect(url_for("admin.login"))
    form = TwoFactorForm()
    if form.validate_on_submit():
        how = two_factor.verify(db_session, user, form.code.data)
        if how is not None:
            if how == "recovery":
                audit.record(db_session, audit.Actor(user.id, user.email, "web", request.remote_addr or ""),
                             "2fa.recovery_used", str(user.id))
                flash(_("You signed in with a recovery code; %(n)s are left.",
                        n=two_factor.recovery_codes_left(db_session, user) - 1), "success")
            return _signed_in(user)
        form.code.errors.append(_("This code is not right."))
        return render_template("web/admin/accounts/login_2fa.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("web/admin/accounts/login_2fa.html", form=form), status


@bp.post("/logout")
@staff_required()
def logout():
    """End this session and every other session of the account (a copied cookie too)."""
    audit.record(db_session, actor(), "logout", str(current_user.id))
    users.end_sessions(current_user)
    logout_user()
    session.clear()
    flash(_("You have logged out."), "success")
    return redirect(url_for("admin.login"))


# --- Staff accounts (admins) ----------------------------------------------------------------

def _users_page(form=None, status=200, generated=None):
    return render_template("web/admin/accounts/users.html", users=users.list_users(db_session),
                           form=form or UserForm(), role_form=RoleForm(), reset_form=PasswordResetForm(),
                           require_2fa=two_factor.required(db_session), generated=generated), status


def _refused(exc: DomainError):
    """The staff page again, saying why the change was refused (a 409: nothing changed)."""
    flash(error_text(exc), "error")
    return _users_page(status=status_of(exc))


@bp.get("/users", endpoint="users")
@staff_required(Role.ADMIN)
def users_page():
    return _users_page()


@bp.post("/users")
@staff_required(Role.ADMIN)
def user_add():
    form = UserForm()
    if form.validate_on_submit():
        try:
            user = users.create_user(db_session, form.email.data, form.password.data, form.role.data)
        except (InvalidInput, Conflict) as exc:
            add_error(form, exc)
        else:
            audit.record(db_session, actor(), "user.create", str(user.id), email=user.email, role=str(user.role))
            flash(_("Staff member %(email)s added.", email=user.email), "success")
            return redirect(url_for("admin.users"))
    return _users_page(form, 400)


@bp.post("/users/<int:user_id>/role")
@staff_required(Role.ADMIN)
def user_role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        raise InvalidInput("Unknown role.", "role")
    try:
        user = users.set_role(db_session, user_id, form.role.data)
    except Conflict as exc:  # the last active admin: said on the staff page, nothing changes
        return _refused(exc)
    audit.record(db_session, actor(), "user.role", str(user_id), role=str(user.role))
    flash(_("Role changed."), "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/active")
@staff_required(Role.ADMIN)
def user_active(user_id: int):
    if request.form.get("active") not in ("0", "1"):
        raise InvalidInput("The request could not be understood.")
    active = request.form.get("active") == "1"
    if not active and user_id == current_user.id:
        flash(_("You cannot deactivate your own account."), "error")
        return redirect(url_for("admin.users"))
    try:
        users.set_active(db_session, user_id, active)
    except Conflict as exc:
        return _refused(exc)
    audit.record(db_session, actor(), "user.activate" if active else "user.deactivate", str(user_id))
    flash(_("Account activated.") if active else _("Account deactivated."), "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/password")
@staff_required(Role.ADMIN)
def user_password(user_id: int):
    """An admin sets a new password for another staff member, typed or generated (shown once,
    on the page this POST answers: never in a redirect or a cookie); their sessions end."""
    form = PasswordResetForm()
    generate = request.form.get("generate") == "1"  # (the CSRF token: checked for every POST)
    password = users.generate_password() if generate else (form.password.data or "")
    try:
        if not generate and not form.validate_on_submit():
            raise InvalidInput("The password must have at least %(n)s characters.", "password", n=users.MIN_PASSWORD)
        user = users.reset_password(db_session, user_id, password)
    except InvalidInput as exc:  # said on the staff page, nothing changes
        return _refused(exc)
    if user.id == current_user.id:
        start_session(user)  # the admin's own other sessions end; this one goes on
    audit.record(db_session, actor(), "password.reset", str(user_id), generated=generate)
    flash(_("The password of %(email)s was changed; their sessions have ended.", email=user.email), "success")
    if generate:
        return _users_page(generated={"email": user.email, "password": password})
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/2fa/disable")
@staff_required(Role.ADMIN)
@audited("2fa.disable", "user_id", by="admin")
def user_2fa_disable(user_id: int):
    """For a staff member who lost their phone and their recovery codes."""
    user = get_or_404(db_session, User, user_id)
    two_factor.disable(db_session, user)
    if user.id == current_user.id:
        start_session(user)
    flash(_("Two-factor sign-in was turned off for %(email)s.", email=user.email), "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/require-2fa")
@staff_required(Role.ADMIN)
def users_require_2fa():
    value = request.form.get("required") == "1"
    two_factor.set_required(db_session, value)
    audit.record(db_session, actor(), "2fa.require", "", required=value)
    flash(_("Every staff member must now sign in with a second factor.") if value
          else _("A second factor is now optional."), "success")
    return redirect(url_for("admin.users"))
