"""Staff pages: the dashboard."""

from flask import current_app, render_template, url_for

from ... import stats
from ...extensions import db_session
from ..auth import staff_required
from . import bp


@bp.get("/", endpoint="dashboard")
@staff_required()
def dashboard():
    return render_template("web/admin/dashboard/index.html", campaign_url=_campaign_url,
                           **stats.dashboard(db_session))


def _campaign_url(campaign) -> str | None:
    """The campaign's detail page, if the campaigns area has one (whatever its argument name)."""
    rules = list(current_app.url_map.iter_rules("admin.campaign"))
    arguments = sorted(rules[0].arguments) if rules else []
    if len(arguments) != 1:
        return None
    return url_for("admin.campaign", **{arguments[0]: campaign.id})
