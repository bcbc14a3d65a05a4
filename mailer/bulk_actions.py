"""Bulk actions on a search or segment result: add to a list, tag, untag, unsubscribe,
erase. Each is recorded (an ``AudienceAction`` row, and an entry in the audit log) with who
asked, the selection and how many it touched, and runs as a job ("mailer.bulk_action") chunk by chunk in id order, a
few set-based statements per chunk, so a million subscribers take a minute of a worker,
not a request. A chunk is one transaction; the action's cursor moves with it, so a job run
twice (or taken over after a crash) goes on where it stopped. Export is streamed at once
(``audience.export_rows``) and recorded here too.

Consent is kept: an unsubscribe writes a withdrawal ConsentRecord per subscription;
adding to a list never touches an existing subscription (an unsubscribed person is not
put back) and skips suppressed addresses; each subscription added carries a consent
record ("bulk:<id>") pointing at the action, which keeps the basis staff gave.
"""

import secrets
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import audience, audit, jobs
from .consent import keep_text
from .errors import InvalidInput, NotFound
from .models import (
    AudienceAction,
    BounceEvent,
    ConsentRecord,
    Delivery,
    MailingList,
    Notice,
    Subscriber,
    SubscriberTag,
    Subscription,
    SubscriptionStatus,
    Suppression,
    utcnow,
)
from .segments import tag_name

TASK = "mailer.bulk_action"
ACTIONS = ("add_to_list", "tag", "untag", "unsubscribe", "erase")
CHUNK = 2000
MAX_BASIS = 200


def _insert(session: Session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _params(session: Session, action: str, values: dict[str, Any]) -> dict[str, Any]:
    """The action's parameters, checked; raises InvalidInput."""
    if action in ("tag", "untag"):
        return {"tag": tag_name(values.get("tag"))}
    if action == "add_to_list":
        try:
            list_id = int(values.get("list_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput("Choose a list.", "list_id") from None
        if session.get(MailingList, list_id) is None:
            raise InvalidInput("This list does not exist.", "list_id")
        basis = " ".join(str(values.get("basis") or "").split())
        if not basis:
            raise InvalidInput("Say where the consent of these people is recorded (for example \"paper form 2025\").",
                               "basis")
        if len(basis) > MAX_BASIS:
            raise InvalidInput("The consent source is too long.", "basis")
        return {"list_id": list_id, "basis": basis}
    if action == "unsubscribe":
        raw = values.get("list_id")
        if raw in (None, ""):
            return {"list_id": None}
        try:
            list_id = int(raw)
        except (TypeError, ValueError):
            raise InvalidInput("Choose a list.", "list_id") from None
        if session.get(MailingList, list_id) is None:
            raise InvalidInput("This list does not exist.", "list_id")
        return {"list_id": list_id}
    if action == "erase":
        if values.get("confirm") not in (True, "yes", "1", "on"):
            raise InvalidInput("Tick the box to confirm the erasure.", "confirm")
        return {}
    raise InvalidInput("Unknown action.", "action")


def _record(session: Session, actor: audit.Actor | None, action: str, chosen: audience.Selection,
            details: dict[str, Any] | None = None) -> AudienceAction:
    """Write the action down (in the caller's transaction): its own row, which carries its
    progress, and, when staff asked for it, an entry in the audit log."""
    entry = AudienceAction(user_id=actor.user_id if actor else None, actor=actor.email if actor else "",
                           action=action, selection=chosen.as_dict(), details=details or {})
    session.add(entry)
    session.flush()
    if actor is not None:
        audit.record(session, actor, f"subscribers.{action}", str(entry.id), selection=chosen.as_dict(),
                     **(details or {}))
    return entry


def request(session: Session, actor: audit.Actor | None, action: str, chosen: audience.Selection,
            values: dict[str, Any]) -> AudienceAction:
    """Record a bulk action on ``chosen`` and queue it (it runs after the caller commits).
    Raises InvalidInput (unknown action, bad parameters, an erasure of everyone), NotFound
    (segment)."""
    if action not in ACTIONS:
        raise InvalidInput("Unknown action.", "action")
    params = _params(session, action, values)
    if action in ("erase", "unsubscribe") and chosen.everyone:
        raise InvalidInput("Narrow the selection first: this would act on every subscriber.", "action")
    audience.where(session, chosen)  # an unknown segment fails now, not in the worker
    entry = _record(session, actor, action, chosen, params)
    entry.status = "queued"
    jobs.enqueue(session, TASK, entry.id)
    return entry


def record_export(session: Session, actor: audit.Actor, chosen: audience.Selection) -> AudienceAction:
    """Write down a CSV export of ``chosen`` (the export itself streams at once)."""
    return _record(session, actor, "export", chosen)


def run(session: Session, action_id: int) -> None:
    """Task body: do a queued or interrupted bulk action, a chunk per transaction."""
    entry = session.get(AudienceAction, action_id)
    if entry is None or entry.status == "done":
        return
    entry.status = "running"
    session.commit()
    chosen = audience.Selection(**entry.selection)
    try:
        clauses = audience.where(session, chosen)
    except Exception:  # the segment was deleted since: nothing left to act on
        clauses = None
    while clauses is not None:
        ids = list(session.scalars(select(Subscriber.id).where(*clauses, Subscriber.id > entry.cursor)
                                   .order_by(Subscriber.id).limit(CHUNK)))
        if not ids:
            break
        entry.affected += _ACT[entry.action](session, entry, ids)
        entry.cursor = ids[-1]
        session.commit()
    entry.status = "done"
    entry.finished_at = utcnow()
    session.commit()


def _tag(session: Session, entry: AudienceAction, ids: list[int]) -> int:
    now = utcnow()
    added = session.execute(_insert(session)(SubscriberTag).on_conflict_do_nothing(
        index_elements=["subscriber_id", "tag"]).returning(SubscriberTag.subscriber_id),
        [{"subscriber_id": id_, "tag": entry.details["tag"], "created_at": now} for id_ in ids]).scalars().all()
    return len(added)


def _untag(session: Session, entry: AudienceAction, ids: list[int]) -> int:
    return session.execute(delete(SubscriberTag).where(SubscriberTag.subscriber_id.in_(ids),
                                                       SubscriberTag.tag == entry.details["tag"])).rowcount  # type: ignore[attr-defined]


def _add_to_list(session: Session, entry: AudienceAction, ids: list[int]) -> int:
    now = utcnow()
    list_id = entry.details["list_id"]
    allowed = list(session.scalars(select(Subscriber.id).where(
        Subscriber.id.in_(ids), ~exists().where(Suppression.email_hash == Subscriber.email_hash))))
    if not allowed:
        return 0
    added = session.execute(_insert(session)(Subscription).on_conflict_do_nothing(
        index_elements=["subscriber_id", "list_id"]).returning(Subscription.subscriber_id),
        [{"subscriber_id": id_, "list_id": list_id, "status": SubscriptionStatus.CONFIRMED.value,
          "created_at": now, "confirmed_at": now} for id_ in allowed]).scalars().all()
    if added:
        basis = str(entry.details.get("basis") or "")  # the basis staff stated, kept as its wording
        stated = keep_text(session, basis) if basis else ""
        session.execute(insert(ConsentRecord), [
            {"subscriber_id": id_, "list_id": list_id, "action": "admin-add", "source": "admin",
             "consent_version": f"bulk:{entry.id}", "consent_text": stated, "ip": "", "user_agent": "",
             "created_at": now} for id_ in added])
    return len(added)


def _unsubscribe(session: Session, entry: AudienceAction, ids: list[int]) -> int:
    now = utcnow()
    where = [Subscription.subscriber_id.in_(ids), Subscription.status != SubscriptionStatus.UNSUBSCRIBED]
    if entry.details.get("list_id") is not None:
        where.append(Subscription.list_id == entry.details["list_id"])
    left = session.execute(select(Subscription.subscriber_id, Subscription.list_id).where(*where)).all()
    if not left:
        return 0
    session.execute(update(Subscription).where(*where).values(
        status=SubscriptionStatus.UNSUBSCRIBED, unsubscribed_at=now).execution_options(synchronize_session=False))
    session.execute(insert(ConsentRecord), [
        {"subscriber_id": sid, "list_id": lid, "action": "unsubscribe", "source": "admin",
         "consent_version": f"bulk:{entry.id}", "ip": "", "user_agent": "", "created_at": now}
        for sid, lid in left])
    # An old confirmation link must not subscribe them again (as subscriptions.unsubscribe).
    session.execute(update(Subscriber).where(Subscriber.id.in_({sid for sid, _ in left}))
                    .values(confirm_nonce=secrets.token_hex(16)).execution_options(synchronize_session=False))
    return len({sid for sid, _ in left})


def _erase(session: Session, entry: AudienceAction, ids: list[int]) -> int:
    hashes = list(session.scalars(select(Subscriber.email_hash).where(Subscriber.id.in_(ids))))
    now = utcnow()
    if hashes:
        statement = _insert(session)(Suppression)
        session.execute(statement.on_conflict_do_update(
            index_elements=["email_hash"], set_={"reason": "erased", "created_at": now}),
            [{"email_hash": digest, "reason": "erased", "created_at": now} for digest in hashes])
    for model, column in ((Delivery, Delivery.subscriber_id), (BounceEvent, BounceEvent.subscriber_id),
                          (ConsentRecord, ConsentRecord.subscriber_id), (Subscription, Subscription.subscriber_id),
                          (SubscriberTag, SubscriberTag.subscriber_id), (Notice, Notice.subscriber_id)):
        session.execute(delete(model).where(column.in_(ids)).execution_options(synchronize_session=False))
    return session.execute(delete(Subscriber).where(Subscriber.id.in_(ids))
                           .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]


_ACT = {"tag": _tag, "untag": _untag, "add_to_list": _add_to_list, "unsubscribe": _unsubscribe, "erase": _erase}


def recent(session: Session, limit: int = 20) -> list[AudienceAction]:
    return list(session.scalars(select(AudienceAction).order_by(AudienceAction.id.desc()).limit(limit)))


def get(session: Session, action_id: int) -> AudienceAction:
    """Raises NotFound."""
    entry = session.get(AudienceAction, action_id)
    if entry is None:
        raise NotFound("This bulk action does not exist.")
    return entry
