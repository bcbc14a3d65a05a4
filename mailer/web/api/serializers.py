"""How the API shows each noun: every JSON answer is built here, and nowhere else."""

from datetime import datetime

from ...bounces.handling import rates
from ...models import ApiToken, Campaign, Event, MailingList, Subscriber


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def mailing_list(item: MailingList, counts=None) -> dict:
    """``counts``: a ``lists.ListCounts`` (the listing has them)."""
    data = {"id": item.id, "name": item.name, "slug": item.slug,
            "description": item.description, "public": item.public,
            "archived": item.archived_at is not None, "created_at": when(item.created_at)}
    if counts is not None:
        data["counts"] = {"confirmed": counts.confirmed, "pending": counts.pending,
                          "unsubscribed": counts.unsubscribed}
    return data


def list_values(item: MailingList) -> dict:
    """A list's editable fields, as ``lists.update_list`` takes them."""
    return {"name": item.name, "description": item.description, "public": item.public}


def subscriber(item: Subscriber, tags: list[str] | None = None) -> dict:
    return {
        "id": item.id, "email": item.email, "name": item.name, "locale": item.locale,
        "created_at": when(item.created_at), "attributes": item.attributes or {}, "tags": tags or [],
        "subscriptions": [
            {"list_id": sub.list_id, "status": str(sub.status),
             "created_at": when(sub.created_at), "confirmed_at": when(sub.confirmed_at),
             "unsubscribed_at": when(sub.unsubscribed_at)}
            for sub in sorted(item.subscriptions, key=lambda sub: sub.list_id)
        ],
    }


def page(rows: list, total: int, page_number: int, per_page: int, show) -> dict:
    return {"items": [show(row) for row in rows], "total": total, "page": page_number,
            "per_page": per_page}


def subscriber_page(found, page_number: int, per_page: int) -> dict:
    """An ``audience.search`` page: the rows with their tags, the total and the next cursor."""
    return {"items": [subscriber(row, found.tags.get(row.id)) for row in found.rows], "total": found.total,
            "total_exact": found.total_exact, "next_after": found.next_after, "scanned_to": found.scanned_to,
            "page": page_number, "per_page": per_page}


def segment(item, counted: tuple[int, bool] | None = None) -> dict:
    shown = {"id": item.id, "name": item.name, "description": item.description, "match": item.match,
             "conditions": item.conditions}
    if counted is not None:
        shown["subscribers"], shown["subscribers_exact"] = counted
    return shown


def bulk_action(item) -> dict:
    return {"id": item.id, "action": item.action, "status": item.status, "affected": item.affected,
            "selection": item.selection, "created_at": when(item.created_at), "finished_at": when(item.finished_at)}


def event(item: Event) -> dict:
    return {"id": item.id, "title": item.title, "starts_at": when(item.starts_at),
            "ends_at": when(item.ends_at), "place": item.place, "summary": item.summary,
            "body_md": item.body_md, "image_url": item.image_url, "link": item.link,
            "title_en": item.title_en, "place_en": item.place_en, "summary_en": item.summary_en,
            "body_md_en": item.body_md_en,
            "category_ids": [category.id for category in item.categories],
            "created_at": when(item.created_at), "updated_at": when(item.updated_at)}


def event_values(item: Event) -> dict:
    """An event's editable fields, as ``events.update_event`` takes them."""
    return {"title": item.title, "starts_at": item.starts_at, "ends_at": item.ends_at,
            "place": item.place, "summary": item.summary, "body_md": item.body_md,
            "image_url": item.image_url, "link": item.link, "title_en": item.title_en,
            "place_en": item.place_en, "summary_en": item.summary_en, "body_md_en": item.body_md_en,
            "category_ids": [category.id for category in item.categories]}


def progress(values: dict) -> dict:
    keys = ("status", "total", "queued", "sent", "failed", "skipped", "rate", "eta_seconds", "reason", "percent")
    shown = {key: values.get(key) for key in keys}
    shown["status"] = str(shown["status"]) if shown["status"] is not None else None
    return shown


def campaign(item: Campaign, progress_values: dict | None = None, recipients: dict | None = None) -> dict:
    """``recipients``: mailer.recipients.recipients (drafts)."""
    shown = {
        "id": item.id, "name": item.name, "subject": item.subject, "preheader": item.preheader,
        "subject_en": item.subject_en, "preheader_en": item.preheader_en,
        "template_id": item.template_id, "locale": item.locale, "status": str(item.status),
        "archived": item.archived,
        "event_ids": [link.event_id for link in item.campaign_events],
        "list_ids": sorted(lst.id for lst in item.lists),
        "segment_ids": sorted(segment.id for segment in item.segments),
        "scheduled_at": when(item.scheduled_at), "started_at": when(item.started_at),
        "finished_at": when(item.finished_at), "created_at": when(item.created_at),
        **rates(item),  # bounce_count, complaint_count and their rates
    }
    if progress_values is not None:
        shown["progress"] = progress(progress_values)
    if recipients is not None:
        shown["recipients"] = recipients["count"]
        shown["recipient_languages"] = recipients.get("languages") if recipients["count"] is not None else None
    return shown


def subscriber_export(subscriber_id: int, data: dict) -> dict:
    """``audience.export_subscriber``'s dict, with the id the other answers use."""
    return {"id": subscriber_id, **data}


def token(item: ApiToken) -> dict:
    """A token as listed: never the token itself (only its hash is kept)."""
    return {"id": item.id, "name": item.name, "prefix": item.prefix, "scope": str(item.scope),
            "owner": item.user.email, "created_at": when(item.created_at), "expires_at": when(item.expires_at),
            "last_used_at": when(item.last_used_at), "revoked_at": when(item.revoked_at)}


def delivery_page(found) -> dict:
    """A ``campaign_deliveries.Page``."""
    return {"items": [{"id": row.delivery.id, "subscriber_id": row.delivery.subscriber_id, "email": row.email,
                       "name": row.name, "status": str(row.delivery.status), "attempts": row.delivery.attempts,
                       "sent_at": when(row.delivery.sent_at), "error": row.delivery.last_error}
                      for row in found.rows],
            "next_after": found.next_after}
