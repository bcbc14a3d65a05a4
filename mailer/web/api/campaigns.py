"""Campaigns: compose from events and lists, send now or schedule, follow the progress."""

from flask import g, jsonify

from ... import campaign_deliveries, campaigns, recipients, sending
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Campaign
from ..auth import audited
from . import bp, schemas, serializers
from .spec import answers, spec

ID = "<int(min=1, max=2147483647):campaign_id>"


@bp.get("/campaigns")
@spec.validate(resp=answers(200, schemas.Campaigns, "The campaigns."))
def list_campaigns():
    """All campaigns, the newest first."""
    return jsonify({"items": [serializers.campaign(item) for item in campaigns.all_campaigns(db_session)]})


@bp.post("/campaigns")
@spec.validate(resp=answers(201, schemas.Campaign, "The new draft.", 404, 413))
def create_campaign(json: schemas.CampaignCreate):
    """Compose a draft campaign from events for lists."""
    item = campaigns.create_campaign(db_session, created_by_id=g.api_user.id, **json.values())
    return jsonify(serializers.campaign(item)), 201


@bp.post(f"/campaigns/{ID}/duplicate")
@spec.validate(resp=answers(201, schemas.Campaign, "The new draft.", 404))
def duplicate_campaign(campaign_id: int):
    """A new draft "Kopia: …" with the campaign's content, lists (archived ones left out),
    segments and events; never its deliveries, counts or schedule."""
    item = campaigns.duplicate_campaign(db_session, campaign_id, created_by_id=g.api_user.id)
    return jsonify(serializers.campaign(item)), 201


@bp.get(f"/campaigns/{ID}/deliveries")
@spec.validate(resp=answers(200, schemas.DeliveryPage, "One page of deliveries.", 404))
def campaign_deliveries_page(campaign_id: int, query: schemas.DeliverySearch):
    """Each recipient's message and its state (with the mail server's reason when it failed),
    50 a page in snapshot order; follow `next_after` (pass it as `after`)."""
    found = campaign_deliveries.page(db_session, campaign_id, status=query.status, after=query.after)
    return jsonify(serializers.delivery_page(found))


@bp.get(f"/campaigns/{ID}")
@spec.validate(resp=answers(200, schemas.Campaign, "The campaign.", 404))
def get_campaign(campaign_id: int):
    """A campaign with its progress."""
    item = get_or_404(db_session, Campaign, campaign_id)
    counted = recipients.recipients(db_session, campaign_id) if item.status in campaigns.EDITABLE else None
    return jsonify(serializers.campaign(item, sending.progress(db_session, campaign_id), counted))


@bp.patch(f"/campaigns/{ID}")
@spec.validate(resp=answers(200, schemas.Campaign, "The campaign.", 404, 409, 413))
def update_campaign(campaign_id: int, json: schemas.CampaignUpdate):
    """Change a draft or scheduled campaign (archived: at any time)."""
    item = campaigns.update_campaign(db_session, campaign_id, json.values())
    return jsonify(serializers.campaign(item))


@bp.get(f"/campaigns/{ID}/progress")
@spec.validate(resp=answers(200, schemas.Progress, "The progress.", 404))
def campaign_progress(campaign_id: int):
    """How far sending has got."""
    return jsonify(serializers.progress(sending.progress(db_session, campaign_id)))


@bp.post(f"/campaigns/{ID}/send")
@audited("campaign.send", "campaign_id")
@spec.validate(resp=answers(202, schemas.Campaign, "Sending has started.", 404, 409))
def send_campaign(campaign_id: int):
    """Send a draft or scheduled campaign now (400 when nobody would receive it: it stays a draft)."""
    return jsonify(serializers.campaign(sending.launch(db_session, campaign_id))), 202


@bp.post(f"/campaigns/{ID}/schedule")
@audited("campaign.schedule", "campaign_id")
@spec.validate(resp=answers(200, schemas.Campaign, "The scheduled campaign.", 404, 409, 413))
def schedule_campaign(campaign_id: int, json: schemas.CampaignSchedule):
    """Send the campaign at a given time."""
    return jsonify(serializers.campaign(campaigns.schedule(db_session, campaign_id, json.at)))


@bp.post(f"/campaigns/{ID}/unschedule")
@audited("campaign.unschedule", "campaign_id")
@spec.validate(resp=answers(200, schemas.Campaign, "The draft.", 404, 409))
def unschedule_campaign(campaign_id: int):
    """Turn a scheduled campaign back into a draft."""
    return jsonify(serializers.campaign(campaigns.unschedule(db_session, campaign_id)))


@bp.post(f"/campaigns/{ID}/pause")
@audited("campaign.pause", "campaign_id")
@spec.validate(resp=answers(200, schemas.Campaign, "The campaign.", 404, 409))
def pause_campaign(campaign_id: int):
    """Pause sending; batches stop after their current chunk."""
    return jsonify(serializers.campaign(sending.pause(db_session, campaign_id)))


@bp.post(f"/campaigns/{ID}/resume")
@audited("campaign.resume", "campaign_id")
@spec.validate(resp=answers(200, schemas.Campaign, "The campaign.", 404, 409))
def resume_campaign(campaign_id: int):
    """Resume a paused campaign."""
    return jsonify(serializers.campaign(sending.resume(db_session, campaign_id)))


@bp.post(f"/campaigns/{ID}/cancel")
@audited("campaign.cancel", "campaign_id")
@spec.validate(resp=answers(200, schemas.Campaign, "The campaign.", 404, 409))
def cancel_campaign(campaign_id: int):
    """Stop sending for good; unsent messages are skipped."""
    return jsonify(serializers.campaign(sending.cancel(db_session, campaign_id)))
