"""Access rules for staff pages: one decorator, used on every /admin view."""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from ..models import Role


def staff_required(role: Role | None = None):
    """Require a logged-in, active staff member; with ``role=Role.ADMIN``, an admin."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if role is not None and current_user.role != role:
                abort(403)
            return view(*args, **kwargs)

        wrapped.staff_role = role or "staff"  # type: ignore[attr-defined]  # read by the url_map tests
        return wrapped

    return decorator
