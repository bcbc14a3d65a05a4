"""The demo data `make run` starts with: an admin, a public list and an upcoming event."""

import secrets
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import email_templates, users
from .models import Event, MailingList, Role, User, utcnow

DEMO_EMAIL = "admin@example.org"


def seed(session: Session) -> tuple[str, str]:
    """Create what is missing and commit; return the admin's login (a new password each run)."""
    password = secrets.token_urlsafe(9)
    admin = session.scalar(select(User).where(User.email == DEMO_EMAIL))
    if admin is None:
        users.create_user(session, DEMO_EMAIL, password, Role.ADMIN)
    else:
        users.set_password(admin, password)
    if session.scalar(select(MailingList.id).limit(1)) is None:
        session.add(MailingList(name="Wydarzenia w mieście", slug="wydarzenia",
                                description="Zapowiedzi koncertów, wystaw i spotkań.", public=True))
    if session.scalar(select(Event.id).limit(1)) is None:
        warsaw = ZoneInfo("Europe/Warsaw")
        day = (utcnow().astimezone(warsaw) + timedelta(days=10)).date()
        start = datetime.combine(day, time(18, 0), tzinfo=warsaw)
        session.add(Event(
            title="Koncert kolęd na Rynku", starts_at=start, ends_at=start + timedelta(hours=2),
            place="Rynek Główny, scena przy ratuszu",
            summary="Chór miejski i orkiestra dęta zapraszają na wspólne śpiewanie kolęd.",
            body_md="Wstęp **wolny**. Gorąca herbata i pierniki dla wszystkich gości.\n\n"
                    "W razie deszczu koncert odbędzie się w sali widowiskowej ratusza.",
            link="https://example.org/wydarzenia/koncert-kolend",
            title_en="Carol concert in the Market Square", place_en="Main Market Square, stage by the town hall",
            summary_en="The city choir and brass band invite you to sing carols together.",
            body_md_en="Admission **free**. Hot tea and gingerbread for every guest.\n\n"
                       "If it rains, the concert moves to the town hall's auditorium.",
        ))
    email_templates.install_defaults(session.connection())  # where the migrations did not
    session.commit()
    return DEMO_EMAIL, password
