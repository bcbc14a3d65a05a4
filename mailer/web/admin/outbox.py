"""Staff pages: the outbox, where mail lands while no SMTP server is configured
(SMTP_URL empty). Lists the .eml files newest first and renders each one."""

import re
from email import message_from_bytes, policy
from pathlib import Path

from flask import abort, current_app, render_template

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
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    return {"name": path.name, "subject": str(message.get("Subject", "")),
            "to": str(message.get("To", "")), "date": str(message.get("Date", "")),
            "message": message}


@bp.get("/outbox")
@staff_required()
def outbox():
    folder = _folder()
    files = sorted(folder.glob("*.eml"), reverse=True)[:PAGE] if folder.is_dir() else []
    return render_template("web/admin/outbox/index.html", messages=[_summary(p) for p in files],
                           folder=folder)


@bp.get("/outbox/<name>")
@staff_required()
def outbox_message(name: str):
    folder = _folder()
    if not _NAME.match(name) or not (folder / name).is_file():
        abort(404)
    item = _summary(folder / name)
    message = item["message"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return render_template(
        "web/admin/outbox/message.html", item=item, headers=list(message.items()),
        text=text.get_content() if text else "", html=html.get_content() if html else "",
    )
