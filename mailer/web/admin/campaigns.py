"""Staff pages: campaigns (compose, preview, test, send or schedule, watch the progress)."""

from flask import (
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from ... import campaign_deliveries as campaign_deliveries_
from ... import campaigns, csv_export, deliveries, languages, recipients, sending
from ...bounces import handling
from ...errors import Conflict, InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Campaign, CampaignStatus, DeliveryStatus, Role, utcnow
from ..archive import mail_page
from ..auth import audited, render_limit, staff_required
from ..content_forms import campaign_values, int_or_none, local_input
from ..errors import error_text, flash_error
from . import bp

# State changes offered as buttons, with what the flash says afterwards.
ACTIONS = {
    "pause": (sending.pause, _l("The campaign was paused.")),
    "resume": (sending.resume, _l("Sending was resumed.")),
    "cancel": (sending.cancel, _l("The campaign was cancelled.")),
    "retry": (sending.retry_failed, _l("Failed messages will be sent again.")),
    "send": (sending.launch, _l("Sending has started.")),
    "unschedule": (campaigns.unschedule, _l("The schedule was removed.")),
}


@bp.get("/campaigns", endpoint="campaigns")
@staff_required()
def campaigns_index():
    return render_template("web/admin/campaigns/index.html",
                           campaigns=campaigns.all_campaigns(db_session))


def _new_form(error=None, status=200, chosen=None):
    chosen = chosen or {"event_ids": request.values.getlist("event_ids", type=int),
                        "list_ids": request.values.getlist("list_ids", type=int),
                        "segment_ids": request.values.getlist("segment_ids", type=int),
                        "template_id": int_or_none(request.values.get("template_id")),
                        "locale": request.values.get("locale", "pl")}
    options = campaigns.compose_options(db_session)
    return render_template("web/admin/campaigns/new.html", chosen=chosen, error=error,
                           **options), status


@bp.route("/campaigns/new", methods=["GET", "POST"])
@staff_required()
def campaign_new():
    if request.method == "GET":
        return _new_form()
    form = request.form
    try:
        campaign = campaigns.create_campaign(
            db_session, event_ids=form.getlist("event_ids"), list_ids=form.getlist("list_ids"),
            template_id=form.get("template_id") or None, locale=form.get("locale", "pl"),
            created_by_id=current_user.id, segment_ids=form.getlist("segment_ids"))
    except InvalidInput as exc:
        return _new_form(exc, 400)
    flash(_("The campaign was created. Check the subject, preview it and send a test."), "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign.id))


def _version() -> str | None:
    """The language version a preview shows (its language switch): None, the recipient's."""
    chosen = request.args.get("version")
    return chosen if chosen in current_app.config["LANGUAGES"] else None


def _detail(campaign_id: int, error=None, status=200, data=None, addresses=None):
    campaign = get_or_404(db_session, Campaign, campaign_id)
    started = campaign.status not in campaigns.EDITABLE
    options = campaigns.compose_options(db_session, campaign)
    version = _version()
    return render_template(
        "web/admin/campaigns/detail.html", campaign=campaign, error=error, data=data,
        progress=sending.progress(db_session, campaign_id) if started else None,
        bounces=handling.campaign_summary(db_session, campaign_id) if started else None,
        editable=campaign.status in campaigns.EDITABLE, Status=CampaignStatus,
        recipients=recipients.recipients(db_session, campaign_id) if not started else None,
        sent_languages=recipients.languages(db_session, campaign_id) if started else None,
        scheduled_local=local_input(campaign.scheduled_at), test_addresses=_test_addresses(campaign, addresses),
        recipient=request.args.get("as", ""), version=version,
        versions=languages.versions(campaign),
        untranslated={code: campaigns.untranslated(db_session, campaign, code)
                      for code in current_app.config["LANGUAGES"] if code != campaign.locale},
        **options), status


def _test_addresses(campaign: Campaign, typed: str | None) -> str:
    """What the test form holds: what was just typed, else the last test's addresses, else
    the staff member's own."""
    if typed is not None:
        return typed
    last = (campaign.test_report or {}).get("addresses")
    return ", ".join(last) if isinstance(last, list) and last else current_user.email


@bp.route("/campaigns/<int:campaign_id>", methods=["GET", "POST"])
@staff_required()
def campaign(campaign_id: int):
    if request.method == "GET":
        return _detail(campaign_id)
    try:
        campaigns.update_campaign(db_session, campaign_id, campaign_values(request.form))
    except InvalidInput as exc:
        return _detail(campaign_id, exc, 400, campaign_values(request.form))
    flash(_("The campaign was saved."), "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/archive")
@staff_required()
def campaign_archive(campaign_id: int):
    archived = request.form.get("archived") == "1"
    item = campaigns.update_campaign(db_session, campaign_id, {"archived": archived})
    if not archived:
        flash(_("Not shown in the public archive."), "success")
    elif item.status == CampaignStatus.SENT:
        flash(_("Shown in the public archive."), "success")
    else:
        flash(_("Shown in the public archive once sent."), "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/duplicate")
@staff_required()
def campaign_duplicate(campaign_id: int):
    """A new draft with the same content, lists and events (never deliveries or schedule)."""
    copy = campaigns.duplicate_campaign(db_session, campaign_id, prefix=_("Copy: "), created_by_id=current_user.id)
    flash(_("This is a new draft copied from the campaign. Change the subject before sending."), "success")
    return redirect(url_for("admin.campaign", campaign_id=copy.id))


@bp.get("/campaigns/<int:campaign_id>/deliveries")
@staff_required()
def campaign_deliveries(campaign_id: int):
    """Each recipient's message and its state: ?status= filters, ?after= the next page."""
    status = request.args.get("status") or None
    found = campaign_deliveries_.page(db_session, campaign_id, status=status, after=_cursor(request.args.get("after")))
    campaign = get_or_404(db_session, Campaign, campaign_id)
    return render_template("web/admin/campaigns/deliveries.html", campaign=campaign, found=found,
                           status=status, statuses=list(DeliveryStatus),
                           counts=deliveries.count_by_status(db_session, campaign_id))


@bp.post("/campaigns/<int:campaign_id>/deliveries.csv")
@staff_required(Role.ADMIN)
@audited("campaign.deliveries_export", "campaign_id")
def campaign_deliveries_csv(campaign_id: int):
    """The whole list as CSV (admins, as other exports of addresses; recorded)."""
    rows = campaign_deliveries_.csv_rows(db_session, campaign_id, request.form.get("status") or None)
    name = f"campaign-{campaign_id}-deliveries-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(csv_export.stream(campaign_deliveries_.CSV_HEADER, rows)),
                    mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise InvalidInput("The page cursor is not valid.", "after")
    return int(raw)


@bp.get("/campaigns/<int:campaign_id>/preview")
@staff_required()
@render_limit
def campaign_preview(campaign_id: int):
    """The preview frames: ?part=html|text, ?as=<subscriber address or id>, ?version=pl|en
    (else the subscriber's language, else the campaign's)."""
    try:
        rendered = campaigns.preview(db_session, campaign_id, request.args.get("as"), locale=_version())
    except InvalidInput as exc:
        return render_template("web/admin/templates/preview_error.html",
                               message=error_text(exc)), 400
    if request.args.get("part") == "text":
        return render_template("web/admin/templates/preview_text.html", text=rendered.text)
    return mail_page(rendered.html)


@bp.post("/campaigns/<int:campaign_id>/test")
@staff_required()
@audited("campaign.test", "campaign_id")
def campaign_test(campaign_id: int):
    typed = request.form.get("addresses", "")
    try:
        campaigns.request_test(db_session, campaign_id, typed)
    except InvalidInput as exc:
        return _detail(campaign_id, exc, 400, addresses=typed[:2000])
    flash(_("The test message is on its way."), "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign_id))


@bp.get("/campaigns/<int:campaign_id>/test-report")
@staff_required()
def campaign_test_report(campaign_id: int):
    """The last test send's report as a piece of the campaign page (test_report.js asks for it
    while the test is on its way)."""
    return render_template("web/admin/campaigns/_test_report.html",
                           campaign=get_or_404(db_session, Campaign, campaign_id))


@bp.post("/campaigns/<int:campaign_id>/schedule")
@staff_required()
@audited("campaign.schedule", "campaign_id")
def campaign_schedule(campaign_id: int):
    try:
        campaigns.schedule(db_session, campaign_id, request.form.get("scheduled_at", ""))
    except InvalidInput as exc:
        return _detail(campaign_id, exc, 400)
    flash(_("The campaign is scheduled."), "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/<any(pause, resume, cancel, retry, send, unschedule):action>")
@staff_required()
@audited("campaign.{action}", "campaign_id")
def campaign_action(campaign_id: int, action: str):
    call, done = ACTIONS[action]
    try:
        call(db_session, campaign_id)
    except InvalidInput as exc:  # e.g. nobody to send to: said on the page, which stays a draft
        return _detail(campaign_id, exc, 400)
    except Conflict as exc:
        flash_error(exc)
    else:
        flash(str(done), "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign_id))


@bp.get("/campaigns/<int:campaign_id>/progress")
@staff_required()
def campaign_progress(campaign_id: int):
    """JSON for the live progress bar (sending.progress)."""
    return jsonify(sending.progress(db_session, campaign_id))


bp.add_app_template_global(sending.reason, "campaign_reason")

