"""Factories and mail readers for the visitor-side tests (subscribe, confirm, leave)."""

import re
import time
import uuid
from email import message_from_bytes, policy

from sqlalchemy import select

from mailer import subscriptions
from mailer.models import ConsentRecord, MailingList, Subscriber, Subscription

BASE = "http://localhost"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                   r'type="hidden" name="csrf_token" value="([^"]+)"|'
                   r'name="csrf_token"[^>]*value="([^"]+)"')


def drain(request, session, smtp_server) -> None:
    """At the end of a test (the worker runs for the whole session), let its queued mail
    arrive, so it cannot land in the next test."""
    session.rollback()
    barrier(session, smtp_server)


def make_list(session, name="Wydarzenia w mieście", slug=None, public=True) -> MailingList:
    item = MailingList(name=name, slug=slug or f"lista-{uuid.uuid4().hex[:6]}", public=public)
    session.add(item)
    session.commit()
    return item


def csrf_token(html: str | bytes) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = _CSRF.search(text)
    assert match, "no CSRF token in the page"
    return next(group for group in match.groups() if group)


def strip_csrf(html: bytes) -> bytes:
    return re.sub(rb'value="[A-Za-z0-9._-]{40,}"', b'value="TOKEN"', html)


def subscribe(client, email, *, name="", consent=True, lists=None, extra=None, headers=None):
    """Open the home page, take its CSRF token and post the subscribe form."""
    token = csrf_token(client.get("/").data)
    data = {"csrf_token": token, "email": email, "name": name, "website": ""}
    if consent:
        data["consent"] = "y"
    if lists is not None:
        data["choose_lists"] = "1"
        data["lists"] = [str(list_id) for list_id in lists]
    data.update(extra or {})
    return client.post("/subscribe", data=data, headers=headers or {})


def text_part(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def html_part(received) -> str:
    return received.message.get_body(("html",)).get_content()


def confirm_path(received) -> str:
    match = re.search(re.escape(BASE) + r"(/confirm/[A-Za-z0-9._-]+)", text_part(received))
    assert match, "no confirmation link in the mail"
    return match.group(1)


def unsubscribe_path(received) -> str:
    header = str(received.message["List-Unsubscribe"])
    match = re.search(re.escape(BASE) + r"(/u/[A-Za-z0-9._-]+)>", header)
    assert match, header
    return match.group(1)


def subscriber(session, email) -> Subscriber | None:
    """The stored row as other processes left it (a fresh transaction: SQLite readers
    keep their snapshot until the transaction ends). Commit before calling."""
    session.rollback()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def statuses(session, email) -> dict[int, str]:
    sub = subscriber(session, email)
    if sub is None:
        return {}
    return {item.list_id: item.status.value for item in
            session.scalars(select(Subscription).where(Subscription.subscriber_id == sub.id))}


def consents(session, email) -> list[ConsentRecord]:
    sub = subscriber(session, email)
    return [] if sub is None else list(
        session.scalars(select(ConsentRecord).where(ConsentRecord.subscriber_id == sub.id)
                        .order_by(ConsentRecord.id)))


def barrier(session, smtp_server) -> list:
    """Prove no more mail is on its way: queue one more confirmation behind everything
    already queued, wait for it and for the test worker to have nothing left to do (any
    notices task sends every notice due, so the mail alone proves nothing about the tasks
    queued before it), and return the messages other than it. Needs a public list."""
    from flask import current_app

    from tests.helpers_engine import wait_worker_idle

    address = f"barrier-{uuid.uuid4().hex[:8]}@example.org"
    subscriptions.subscribe(session, email=address, consent=True, source="admin")
    session.commit()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(address in m.recipients for m in smtp_server.messages):
            worker = current_app.extensions.get("test_worker")
            if worker is not None:
                wait_worker_idle(worker)
            return [m for m in smtp_server.messages if address not in m.recipients]
        time.sleep(0.05)
    raise AssertionError("the barrier mail did not arrive")


def parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)
