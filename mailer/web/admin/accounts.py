"""Staff pages: logging in and out, and the staff accounts (admins only)."""

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ... import users
from ...errors import Conflict, InvalidInput
from ...extensions import db_session, limiter
from ...models import Role
from ..admin_forms import LoginForm, RoleForm, UserForm, add_error
from ..auth import staff_required
from . import bp


def _safe_next(target: str | None) -> str | None:
    """Only a local path (never //host or a scheme) may be the place to go after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _home() -> str:
    return url_for("admin.dashboard") if "admin.dashboard" in current_app.view_functions else "/"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    form = LoginForm()
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(_home())
    if form.validate_on_submit():
        user = users.authenticate(db_session, form.email.data, form.password.data)
        if user is not None:
            lang = session.get("lang")
            session.clear()  # a fresh session: nothing from before the login survives
            if lang:
                session["lang"] = lang
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or _home())
        flash(_("Wrong email address or password."), "error")
        return render_template("web/admin/accounts/login.html", form=form), 401
    status = 400 if request.method == "POST" else 200
    return render_template("web/admin/accounts/login.html", form=form), status


@bp.post("/logout")
@staff_required()
def logout():
    logout_user()
    session.clear()
    flash(_("You have logged out."), "success")
    return redirect(url_for("admin.login"))


@bp.get("/users", endpoint="users")
@staff_required(Role.ADMIN)
def users_page():
    return render_template("web/admin/accounts/users.html", users=users.list_users(db_session),
                           form=UserForm(), role_form=RoleForm())



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
            flash(_("Staff member %(email)s added.", email=user.email), "success")
            return redirect(url_for("admin.users"))
    return render_template("web/admin/accounts/users.html", users=users.list_users(db_session),
                           form=form, role_form=RoleForm()), 400


@bp.post("/users/<int:user_id>/role")
@staff_required(Role.ADMIN)
def user_role(user_id: int):
    form = RoleForm()
    if not form.validate_on_submit():
        raise InvalidInput("Unknown role.", "role")
    users.set_role(db_session, user_id, form.role.data)
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
    users.set_active(db_session, user_id, active)
    flash(_("Account activated.") if active else _("Account deactivated."), "success")
    return redirect(url_for("admin.users"))
