"""Factories and a logged-in client for the staff content tests (events, templates, campaigns)."""

import re
from datetime import datetime, timedelta, timezone

from mailer import users
from mailer.models import Event, MailingList, Role, Subscriber, Subscription, SubscriptionStatus, User

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_staff(session, email: str = "redakcja@miasto.example.pl", role: Role = Role.EDITOR,
               password: str = "dobre-hasło-123") -> User:
    user = users.create_user(session, email, password, role)
    session.commit()
    return user


def log_in(client, user: User) -> None:
    """Flask-Login's session keys, set directly (the login form has its own tests)."""
    with client.session_transaction() as sess:
        sess["_user_id"] = user.get_id()
        sess["_fresh"] = True


def csrf(client, path: str = "/admin/events/new") -> str:
    page = client.get(path)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def post(client, path: str, data: dict, token_from: str = "/admin/events/new", **kwargs):
    token = csrf(client, token_from)
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


def make_event(session, title: str = "Koncert kolęd na Rynku", days: int = 10, **values) -> Event:
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)
    event = Event(title=title, starts_at=start, ends_at=start + timedelta(hours=2),
                  place=values.pop("place", "Rynek Główny"),
                  summary=values.pop("summary", "Zażółć gęślą jaźń — wspólne śpiewanie."),
                  body_md=values.pop("body_md", "Wstęp **wolny**."),
                  link=values.pop("link", "https://example.org/koncert"), **values)
    session.add(event)
    session.commit()
    return event


def make_list(session, name: str = "Wydarzenia", slug: str = "wydarzenia") -> MailingList:
    mailing_list = MailingList(name=name, slug=slug, public=True)
    session.add(mailing_list)
    session.commit()
    return mailing_list


def make_subscriber(session, email: str, mailing_list: MailingList | None = None,
                    name: str = "", status=SubscriptionStatus.CONFIRMED) -> Subscriber:
    subscriber = Subscriber(email=email, name=name)
    session.add(subscriber)
    if mailing_list is not None:
        session.add(Subscription(subscriber=subscriber, list=mailing_list, status=status,
                                 confirmed_at=datetime.now(timezone.utc)))
    session.commit()
    return subscriber


def fixed(text: str):
    """A message part with no recipient values, for messages built by hand (``Skeleton``)."""
    return lambda _values: text
