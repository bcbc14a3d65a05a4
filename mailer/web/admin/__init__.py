"""Staff pages under /admin: one blueprint, one module per area."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from . import (  # noqa: E402,F401
    accounts,
    campaigns,
    categories,
    dashboard,
    events,
    imports,
    lists,
    outbox,
    security,
    segments,
    staff_subscribers,
    subscribers,
    suppressions,
    templates,
)
