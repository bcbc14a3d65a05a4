"""Campaigns: compose from events and lists, send now or schedule, follow the progress."""

from flask import g, jsonify, request

from ... import campaigns, sending
from ...extensions import db
from .. import api_schemas as schemas
from . import bp, serializers

ID = "<int(min=1, max=2147483647):campaign_id>"


@bp.get("/campaigns")
def list_campaigns():
    return jsonify({"items": [serializers.campaign(item) for item in campaigns.all_campaigns(db.session)]})


@bp.post("/campaigns")
def create_campaign():
    values = schemas.parse(schemas.CAMPAIGN_CREATE, schemas.parse_body(request))
    item = campaigns.create_campaign(db.session, created_by_id=g.api_user.id, **values)
    db.session.commit()
    return jsonify(serializers.campaign(item)), 201


@bp.get(f"/campaigns/{ID}")
def get_campaign(campaign_id: int):
    item = campaigns.get_campaign(db.session, campaign_id)
    return jsonify(serializers.campaign(item, sending.progress(db.session, campaign_id)))


@bp.patch(f"/campaigns/{ID}")
def update_campaign(campaign_id: int):
    """Change a draft or scheduled campaign's subject, preheader, template, events, lists."""
    values = schemas.parse(schemas.CAMPAIGN_UPDATE, schemas.parse_body(request), partial=True)
    item = campaigns.update_campaign(db.session, campaign_id, values)
    db.session.commit()
    return jsonify(serializers.campaign(item))


@bp.get(f"/campaigns/{ID}/progress")
def campaign_progress(campaign_id: int):
    return jsonify(serializers.progress(sending.progress(db.session, campaign_id)))


@bp.post(f"/campaigns/{ID}/send")
def send_campaign(campaign_id: int):
    item = sending.launch(db.session, campaign_id)
    db.session.commit()
    return jsonify(serializers.campaign(item)), 202


@bp.post(f"/campaigns/{ID}/schedule")
def schedule_campaign(campaign_id: int):
    at = schemas.parse(schemas.CAMPAIGN_SCHEDULE, schemas.parse_body(request))["at"]
    item = campaigns.schedule(db.session, campaign_id, at)
    db.session.commit()
    return jsonify(serializers.campaign(item))


@bp.post(f"/campaigns/{ID}/unschedule")
def unschedule_campaign(campaign_id: int):
    item = campaigns.unschedule(db.session, campaign_id)
    db.session.commit()
    return jsonify(serializers.campaign(item))


@bp.post(f"/campaigns/{ID}/pause")
def pause_campaign(campaign_id: int):
    item = sending.pause(db.session, campaign_id)
    db.session.commit()
    return jsonify(serializers.campaign(item))


@bp.post(f"/campaigns/{ID}/resume")
def resume_campaign(campaign_id: int):
    item = sending.resume(db.session, campaign_id)
    db.session.commit()
    return jsonify(serializers.campaign(item))


@bp.post(f"/campaigns/{ID}/cancel")
def cancel_campaign(campaign_id: int):
    item = sending.cancel(db.session, campaign_id)
    db.session.commit()
    return jsonify(serializers.campaign(item))
