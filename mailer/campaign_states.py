"""A campaign's life as a table of allowed moves, and the one way to make a move.

Every move is a conditional UPDATE (``WHERE status IN (the states it may leave)``), so two
actors racing (a staff cancel and beat's scheduled launch, a pause and the engine finishing)
cannot both win, and nobody overwrites a state they did not see.
"""

from typing import cast

from sqlalchemy import Connection, CursorResult, update
from sqlalchemy.orm import Session

from .errors import Conflict
from .models import Campaign, CampaignStatus

DRAFT, SCHEDULED, SENDING = CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING
PAUSED, SENT, CANCELLED = CampaignStatus.PAUSED, CampaignStatus.SENT, CampaignStatus.CANCELLED

# action: (the states it may leave, the state it enters, why it is refused elsewhere)
MOVES: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus, str]] = {
    "schedule": (frozenset({DRAFT, SCHEDULED}), SCHEDULED, "This campaign can no longer be scheduled."),
    "unschedule": (frozenset({SCHEDULED}), DRAFT, "This campaign is not scheduled."),
    "launch": (frozenset({DRAFT, SCHEDULED}), SENDING, "Only a draft or scheduled campaign can be sent."),
    "pause": (frozenset({SENDING}), PAUSED, "Only a campaign that is sending can be paused."),
    "resume": (frozenset({PAUSED}), SENDING, "Only a paused campaign can be resumed."),
    "cancel": (frozenset({DRAFT, SCHEDULED, SENDING, PAUSED}), CANCELLED,
               "This campaign has already finished."),
    "reopen": (frozenset({SENT}), SENDING,
               "Only failed messages of a started campaign can be retried."),
    # the engine's own moves
    "finish": (frozenset({SENDING}), SENT, "This campaign is not sending."),
    "stop": (frozenset({SENDING, SCHEDULED}), PAUSED, "This campaign is not sending."),
}
EDITABLE = frozenset({DRAFT, SCHEDULED})


def allowed(status: CampaignStatus | str, action: str) -> bool:
    return CampaignStatus(status) in MOVES[action][0]


def check(campaign: Campaign, action: str) -> None:
    """Raises Conflict when ``campaign`` cannot make the move from the state it is in."""
    if not allowed(campaign.status, action):
        raise Conflict(MOVES[action][2])


def move(session: Session | Connection, campaign_id: int, action: str, **values) -> bool:
    """Make the move (and set ``values``) if the campaign's stored state allows it; returns
    whether it did. Loaded Campaign objects are expired so they read the new state."""
    sources, target, _ = MOVES[action]
    result = cast(CursorResult, session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status.in_(sources))
        .values(status=target, **values).execution_options(synchronize_session=False)))
    if not isinstance(session, Connection):  # a Session, or Flask-SQLAlchemy's scoped one
        campaign = session.identity_map.get(session.identity_key(Campaign, campaign_id))
        if campaign is not None:
            session.expire(campaign)
    return result.rowcount == 1


def require(session: Session, campaign: Campaign, action: str, **values) -> None:
    """``move``, raising Conflict when the stored state does not allow it (also when it
    changed since ``campaign`` was read)."""
    check(campaign, action)
    if not move(session, campaign.id, action, **values):
        raise Conflict(MOVES[action][2])
