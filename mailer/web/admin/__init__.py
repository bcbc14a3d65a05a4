"""Staff pages under /admin: one blueprint, one module per area."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from . import (accounts, campaigns, dashboard, events, imports, lists, outbox,  # noqa: E402,F401
               subscribers, suppressions, templates)
