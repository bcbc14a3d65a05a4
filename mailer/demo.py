"""The demo data `make run` starts with: an admin, a public list and an upcoming event.

The demo admin's password is made once, when the account is created, and kept in
``instance/demo-admin-password`` (readable by its owner only) for as long as the account
still has it: every start shows the same one, and once someone changes it at
``/admin/account`` the file is removed and the password is never shown or reset again."""

import os
import secrets
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import email_templates, users
from .models import Event, MailingList, Role, User, utcnow

DEMO_EMAIL = "admin@example.org"
PASSWORD_FILE = "demo-admin-password"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read (0600 from the start)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT


def stored_password(instance: Path) -> str | None:
    path = instance / PASSWORD_FILE
    return (path.read_text(encoding="utf-8").strip() or None) if path.exists() else None


def _still_has(admin: User, password: str) -> bool:
    try:
        return users._hasher().verify(admin.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _demo_password(session: Session, instance: Path) -> str | None:
    """The demo admin's password: made when the account is, then kept while the account
    still has it (None once it was changed: it is someone's own password now)."""
    admin = session.scalar(select(User).where(User.email == DEMO_EMAIL))
    path = instance / PASSWORD_FILE
    if admin is None:
        password = secrets.token_urlsafe(12)
        users.create_user(session, DEMO_EMAIL, password, Role.ADMIN)
        _write_private(path, password)
        return password
    stored = stored_password(instance)
    if stored is not None and _still_has(admin, stored):
        os.chmod(path, 0o600)
        return stored
    path.unlink(missing_ok=True)
    return None


def seed(session: Session, instance: Path) -> tuple[str, str | None]:
    """Create what is missing and commit; return the admin's address and password (None when
    its owner has changed it)."""
    password = _demo_password(session, instance)
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


def wait_for_web(url: str, timeout: float) -> bool:
    """True once ``url`` answers 200 (within ``timeout`` seconds)."""
    import time
    import urllib.request
    from urllib.error import URLError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def banner(base_url: str, instance: Path) -> str:
    """Where to sign in, as `make run` prints it last."""
    password = stored_password(instance)
    login = f"Demo admin: {DEMO_EMAIL} / {password}" if password else \
        f"Demo admin: {DEMO_EMAIL} (its password was changed: sign in with yours)"
    rule = "=" * 72
    lines = [rule, f"  Newsletter is up: {base_url}/  (staff: {base_url}/admin)", f"  {login}"]
    if password:
        lines.append(f"  Change this password at {base_url}/admin/account; it is kept until then.")
    lines += ["  Stop everything with Ctrl-C.", rule]
    return "\n".join(lines)
