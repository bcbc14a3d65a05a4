"""A campaign's deliveries for staff: each recipient with the state of their message (sent,
failed with the server's reason, bounced, skipped, waiting), page by page by keyset, a
status filter, and the whole list as CSV rows.

Pages go by delivery id (a campaign's rows are contiguous in id: the snapshot inserts them
in one statement), through the primary key; the table carries no index on status on
purpose (``models.campaigns.Delivery``: recording outcomes touches no index), so a filter on
a rare status reads the campaign's rows until a page is full."""

from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import deliveries
from .errors import InvalidInput
from .lookups import get_or_404
from .models import Campaign, Delivery, DeliveryStatus, Subscriber

PAGE = 50
CSV_HEADER = ["email", "name", "status", "attempts", "sent_at", "error", "message_id"]


@dataclass(frozen=True)
class Row:
    delivery: Delivery
    email: str
    name: str


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_after: int | None  # the ``after`` of the next page, None on the last one


def parse_status(value: str | None) -> DeliveryStatus | None:
    """A status filter: empty for every status; raises InvalidInput for an unknown one."""
    if not value:
        return None
    try:
        return DeliveryStatus(value)
    except ValueError:
        raise InvalidInput("Unknown status.", "status") from None


def _statement(campaign_id: int, status: DeliveryStatus | None):
    statement = (select(Delivery, Subscriber.email, Subscriber.name)
                 .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                 .where(Delivery.campaign_id == campaign_id).order_by(Delivery.id))
    return statement.where(Delivery.status == status) if status is not None else statement


def page(session: Session, campaign_id: int, *, status: str | None = None, after: int | None = None,
         size: int | None = None) -> Page:
    """The deliveries after id ``after`` (None: from the first), in snapshot order. Raises
    NotFound (campaign), InvalidInput (status, cursor)."""
    get_or_404(session, Campaign, campaign_id)
    size = size or PAGE
    wanted = parse_status(status)
    if after is not None and not 0 <= after < 2**63:
        raise InvalidInput("The page cursor is not valid.", "after")
    statement = _statement(campaign_id, wanted)
    if after is not None:
        statement = statement.where(Delivery.id > after)
    found = [Row(d, email, name) for d, email, name in session.execute(statement.limit(size + 1))]
    more = len(found) > size
    found = found[:size]
    return Page(found, found[-1].delivery.id if more and found else None)


def csv_rows(session: Session, campaign_id: int, status: str | None = None) -> Iterator[list]:
    """Every delivery of the campaign (optionally of one status) as CSV_HEADER's cells, read
    in pieces; the Message-ID of each message that went out. Raises NotFound, InvalidInput
    before the first row."""
    campaign = get_or_404(session, Campaign, campaign_id)
    suffix = deliveries.message_id_suffix(campaign.started_at, current_app.config["MAIL_DOMAIN"])
    statement = _statement(campaign_id, parse_status(status)).execution_options(yield_per=1000)

    def rows() -> Iterator[list]:
        for d, email, name in session.execute(statement):
            sent = d.sent_at is not None
            yield [email, name, str(d.status), d.attempts, d.sent_at.isoformat() if sent else "",
                   d.last_error, deliveries.message_id(campaign_id, d.id, suffix) if sent else ""]

    return rows()
