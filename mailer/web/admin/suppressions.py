"""Staff pages: the suppression list (admins), and the labels the bounce figures use."""

from flask import abort, render_template, request
from flask_babel import gettext as _

from ... import suppression
from ...extensions import db_session
from ...models import Role
from ..auth import staff_required
from . import bp

PER_PAGE = 50


@bp.get("/suppressions", endpoint="suppressions")
@staff_required(Role.ADMIN)
def suppressions_page():
    """Addresses never mailed again: newest first, filtered by reason, searched by a whole
    address (only its keyed hash is stored)."""
    try:
        page = int(request.args.get("page") or 1)
    except ValueError:
        abort(400)
    query, reason = request.args.get("q", ""), request.args.get("reason") or None
    filters = {"query": query, "reason": reason, "page": page}
    rows, total = suppression.search(db_session, query=query, reason=reason, page=page, per_page=PER_PAGE)
    return render_template("web/admin/suppressions/index.html", rows=rows, total=total, filters=filters,
                           pages=max(1, -(-total // PER_PAGE)), reasons=suppression.REASONS,
                           counts=suppression.counts(db_session))


@bp.app_template_global("suppression_reason_label")
def suppression_reason_label(reason: str) -> str:
    labels = {"bounced": _("the address does not exist (bounced)"),
              "soft_bounced": _("repeated temporary bounces"),
              "complaint": _("marked a message as spam"),
              "erased": _("personal data erased")}
    return labels.get(reason, reason)


@bp.app_template_global("bounce_kind_label")
def bounce_kind_label(kind) -> str:
    labels = {"hard": _("address unknown"), "soft": _("temporary failure"),
              "block": _("refused by policy"), "complaint": _("spam complaint")}
    return labels.get(str(kind), str(kind))


@bp.app_template_global("consent_action_label")
def consent_action_label(action: str) -> str:
    """A consent record's action in the page's language (imports and unknown ones as stored)."""
    labels = {"subscribe": _("subscribed"), "confirm": _("confirmed"), "unsubscribe": _("unsubscribed"),
              "complaint": _("spam complaint: consent withdrawn"),
              "lifted-bounced": _("suppression after a bounce lifted by a confirmed sign-up"),
              "lifted-soft_bounced": _("suppression after bounces lifted by a confirmed sign-up"),
              "lifted-complaint": _("suppression after a complaint lifted by a confirmed new consent"),
              "lifted-erased": _("suppression after erasure lifted by a confirmed sign-up"),
              "staff-added": _("added by staff, who confirmed the consent")}
    return labels.get(action, action)
