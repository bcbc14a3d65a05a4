"""Staff pages: the outbox, where mail lands while no SMTP server is configured
(SMTP_URL empty). Lists the .eml files newest first and renders each one.

Admins see every message. Editors see only test copies (their return path names no
subscriber and no delivery): the confirmation, welcome and campaign mail of subscribers holds
their personal links, which editors have no business reading (STANDARDS 39)."""

from functools import partial
from pathlib import Path

from flask import abort, current_app, render_template, request
from flask_login import current_user

from ... import outbox as outbox_folder
from ...verp import Verp
from ..auth import staff_required
from . import bp


def _folder() -> Path:
    """The outbox folder; 404 while mail goes to an SMTP server instead."""
    if current_app.config.get("SMTP_URL"):
        abort(404)
    return Path(current_app.config["OUTBOX_DIR"])


def _visible(verp: Verp, item: outbox_folder.Item) -> bool:
    """Whether the signed-in staff member may read this message."""
    if current_user.is_admin:
        return True
    return verp.read(str(item.message.get("Return-Path", ""))) is None


@bp.get("/outbox")
@staff_required()
def outbox():
    """Newest first, 50 a page (?before= / ?after= a message's name), ?q= recipient or subject."""
    folder = _folder()
    query = request.args.get("q", "")[:outbox_folder.MAX_QUERY]
    found = outbox_folder.page(folder, partial(_visible, Verp(current_app.config)), query=query,
                               before=request.args.get("before"), after=request.args.get("after"))
    return render_template("web/admin/outbox/index.html", messages=found.items, found=found,
                           query=query, folder=folder)


@bp.get("/outbox/<name>")
@staff_required()
def outbox_message(name: str):
    folder = _folder()
    if not outbox_folder.NAME.match(name) or not (folder / name).is_file():
        abort(404)
    item = outbox_folder.read(folder / name)
    if not _visible(Verp(current_app.config), item):
        abort(404)
    message = item.message
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    return render_template(
        "web/admin/outbox/message.html", item=item, headers=list(message.items()),
        text=text.get_content() if text else "", html=html.get_content() if html else "",
    )
