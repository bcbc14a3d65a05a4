"""Staff pages: the outbox, where mail lands while no SMTP server is configured
(SMTP_URL empty). Lists the .eml files newest first and renders each one.

Admins see every message. Editors see only test copies (their return path names no
subscriber and no delivery): the confirmation, welcome and campaign mail of subscribers holds
their personal links, which editors have no business reading (STANDARDS 39)."""

import re
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path

from flask import abort, current_app, render_template
from flask_login import current_user

from ...verp import Verp
from ..auth import staff_required
from . import bp

_NAME = re.compile(r"^[0-9A-Za-z_.-]+\.eml$")
PAGE = 200


def _folder() -> Path:
    """The outbox folder; 404 while mail goes to an SMTP server instead."""
    if current_app.config.get("SMTP_URL"):
        abort(404)
    return Path(current_app.config["OUTBOX_DIR"])


def _summary(path: Path) -> dict:
    """What the list shows of a message; ``date`` a datetime (the page formats it in its own
    language and time zone), None when the header is missing or unreadable."""
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    return {"name": path.name, "subject": str(message.get("Subject", "")),
            "to": str(message.get("To", "")), "date": _date(message), "message": message}


def _date(message) -> datetime | None:
    try:
        header = message.get("Date")
        return getattr(header, "datetime", None) if header is not None else None
    except (TypeError, ValueError):
        return None


def _visible(item: dict, verp: Verp) -> bool:
    """Whether the signed-in staff member may read this message."""
    if current_user.is_admin:
        return True
    return verp.read(str(item["message"].get("Return-Path", ""))) is None


@bp.get("/outbox")
@staff_required()
def outbox():
    folder = _folder()
    verp = Verp(current_app.config)
    files = sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []
    messages = []
    for path in files:
        item = _summary(path)
        if _visible(item, verp):
            messages.append(item)
            if len(messages) >= PAGE:
                break
    return render_template("web/admin/outbox/index.html", messages=messages, folder=folder)


@bp.get("/outbox/<name>")
@staff_required()
def outbox_message(name: str):
    folder = _folder()
    if not _NAME.match(name) or not (folder / name).is_file():
        abort(404)
    item = _summary(folder / name)
    if not _visible(item, Verp(current_app.config)):
        abort(404)
    message = item["message"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return render_template(
        "web/admin/outbox/message.html", item=item, headers=list(message.items()),
        text=text.get_content() if text else "", html=html.get_content() if html else "",
    )
