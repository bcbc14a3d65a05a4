"""Factories and logging in for the staff-side tests (accounts, lists, subscribers, imports,
dashboard)."""

import re
import uuid

from mailer import users
from mailer.models import ConsentRecord, MailingList, Role, Subscriber, Subscription, SubscriptionStatus

PASSWORD = "correct horse battery"


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_from(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = _CSRF.search(text)
    assert match, "no CSRF token in the page"
    return next(group for group in match.groups() if group)


def csrf(client, url: str = "/admin/login") -> str:
    """A CSRF token valid for this client's session, read from a page that has a form."""
    return csrf_from(client.get(url, follow_redirects=True).data)


def make_user(session, role: Role | str = Role.ADMIN, email: str | None = None,
              password: str = PASSWORD):
    user = users.create_user(session, email or f"{role}-{uuid.uuid4().hex[:6]}@example.org", password, role)
    session.commit()
    return user


def login(client, email: str, password: str = PASSWORD, **kwargs):
    token = csrf(client, "/admin/login")
    return client.post("/admin/login", data={"csrf_token": token, "email": email, "password": password},
                       **kwargs)


def login_as(client, session, role: Role | str = Role.ADMIN):
    """A new staff member of ``role``, logged in on ``client``."""
    user = make_user(session, role)
    response = login(client, user.email)
    assert response.status_code == 302, response.data[:500]
    return user


def post(client, url: str, data: dict | None = None, page: str = "/admin/", **kwargs):
    """POST with a CSRF token taken from ``page`` (any page with a form or the logout button)."""
    payload = {"csrf_token": csrf(client, page), **(data or {})}
    return client.post(url, data=payload, **kwargs)


def make_list(session, name: str = "Wydarzenia", public: bool = True) -> MailingList:
    item = MailingList(name=name, slug=f"l-{uuid.uuid4().hex[:8]}", public=public)
    session.add(item)
    session.commit()
    return item


def make_subscriber(session, email: str, name: str = "", lists=(), status=SubscriptionStatus.CONFIRMED,
                    consent: bool = True) -> Subscriber:
    subscriber = Subscriber(email=email, name=name)
    session.add(subscriber)
    session.flush()
    for item in lists:
        session.add(Subscription(subscriber_id=subscriber.id, list_id=item.id, status=status))
        if consent:
            session.add(ConsentRecord(subscriber_id=subscriber.id, list_id=item.id, action="subscribe",
                                      source="form", consent_version="2026-11", ip="203.0.113.5"))
    session.commit()
    return subscriber
