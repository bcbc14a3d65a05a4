"""The preference centre's pages: asking for a link by address, the page behind the link
(lists, language, name, leaving, the data kept and its download, erasure) and the erasure's
confirmation link. Pages behind a link are shown in the subscriber's language (unless the
visitor picked one with ``?lang=``)."""

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from .. import preferences
from ..errors import BadToken, ExpiredToken, InvalidInput
from ..extensions import db_session
from ..models import Subscriber
from . import subscribe_limits
from .errors import error_text
from .forms import HONEYPOT, ButtonForm, ManageLinkForm, PreferencesForm

bp = Blueprint("preferences", __name__)


def _language(subscriber: Subscriber | None) -> str:
    chosen = request.args.get("lang")
    if chosen is not None and chosen in current_app.config["LANGUAGES"]:
        return chosen
    if subscriber is not None and subscriber.locale in current_app.config["LANGUAGES"]:
        return subscriber.locale
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def _origin() -> dict[str, str]:
    return {"ip": request.remote_addr or "", "user_agent": request.user_agent.string or ""}


def _behind_link(token: str, act: Callable[[], Any]) -> Any:
    """Run ``act`` for a link: an expired link offers a new one (410), a forged link or an
    erased subscriber gets the form that asks for a new link (400)."""
    try:
        return act()
    except ExpiredToken:
        return render_template("web/preferences/expired.html", form=ButtonForm(), token=token), 410
    except BadToken as exc:
        return render_template("web/preferences/request.html", form=ManageLinkForm(),
                               invalid=error_text(exc)), 400


# --- Asking for a link ---------------------------------------------------------------------

@bp.get("/manage")
def request_page():
    return render_template("web/preferences/request.html", form=ManageLinkForm())


def _link_sent():
    """One answer whatever the address (known, unknown, erased) or the honeypot."""
    return render_template("web/preferences/link_sent.html")


@bp.post("/manage")
@subscribe_limits.per_ip()
@subscribe_limits.per_address(lambda: request.form.get("email"))
@subscribe_limits.equal_time
def request_link():
    form = ManageLinkForm()
    if request.form.get(HONEYPOT):
        return _link_sent()
    try:
        preferences.request_link(db_session, request.form.get("email", ""))
    except InvalidInput as exc:
        return render_template("web/preferences/request.html", form=form, error=exc), 400
    return _link_sent()


@bp.post("/p/<token>/renew")
@subscribe_limits.per_ip()
@subscribe_limits.equal_time
def renew(token: str):
    try:
        preferences.renew_link(db_session, token)
    except BadToken as exc:
        return render_template("web/preferences/request.html", form=ManageLinkForm(), invalid=error_text(exc)), 400
    return _link_sent()


# --- The page --------------------------------------------------------------------------------

def _page(token: str, error: InvalidInput | None = None, status: int = 200):
    view = preferences.page(db_session, token)
    with force_locale(_language(view.subscriber)):
        return render_template("web/preferences/page.html", view=view, token=token, form=PreferencesForm(),
                               button=ButtonForm(), error=error), status


@bp.get("/p/<token>")
def page(token: str):
    """Shows the choices and changes nothing (mail scanners fetch links)."""
    return _behind_link(token, lambda: _page(token))


@bp.post("/p/<token>")
def save(token: str):
    def act():
        try:
            subscriber = preferences.save(
                db_session, token, name=request.form.get("name", ""), locale=request.form.get("locale", ""),
                list_ids=request.form.getlist("lists"),
                interest_ids=request.form.getlist("interests") if request.form.get("interests_shown") else None,
                page_locale=request.form.get("page_locale", ""),
                **_origin())
        except InvalidInput as exc:  # refused before anything was written (a 4xx is rolled back)
            return _page(token, exc, 400)
        with force_locale(subscriber.locale):
            flash(_("Your choices are saved."), "success")
        return redirect(url_for("preferences.page", token=token))

    return _behind_link(token, act)


@bp.post("/p/<token>/leave")
def leave(token: str):
    def act():
        subscriber = preferences.leave_all(db_session, token, **_origin())
        with force_locale(subscriber.locale):
            flash(_("You have left every newsletter. You will get no more of our mail."), "success")
        return redirect(url_for("preferences.page", token=token))

    return _behind_link(token, act)


@bp.post("/p/<token>/export")
def export(token: str):
    """A POST (it is recorded in the audit log), answered with the JSON file."""
    def act():
        data = preferences.export(db_session, token, ip=request.remote_addr or "")
        body = json.dumps(data, ensure_ascii=False, indent=2)
        return Response(body, mimetype="application/json", headers={
            "Content-Disposition": 'attachment; filename="my-newsletter-data.json"', "Cache-Control": "no-store"})

    return _behind_link(token, act)


@bp.post("/p/<token>/erase")
def request_erasure(token: str):
    def act():
        subscriber = preferences.request_erasure(db_session, token, ip=request.remote_addr or "")
        with force_locale(subscriber.locale):
            return render_template("web/preferences/erase_sent.html")

    return _behind_link(token, act)


# --- The erasure's confirmation link ---------------------------------------------------------

def _erase_link(token: str, act: Callable[[], Any]) -> Any:
    try:
        return act()
    except ExpiredToken:
        return render_template("web/preferences/request.html", form=ManageLinkForm(),
                               invalid=_("This link has expired.")), 410
    except BadToken as exc:  # forged, or the data is erased already
        return render_template("web/preferences/request.html", form=ManageLinkForm(),
                               invalid=error_text(exc)), 400


@bp.get("/p/erase/<token>")
def erase_page(token: str):
    """Shows a button and changes nothing."""
    def act():
        subscriber = preferences.erasure_subject(db_session, token)
        with force_locale(_language(subscriber)):
            return render_template("web/preferences/erase.html", subscriber=subscriber, token=token,
                                   form=ButtonForm())

    return _erase_link(token, act)


@bp.post("/p/erase/<token>")
def erase(token: str):
    def act():
        language = _language(preferences.erasure_subject(db_session, token))
        preferences.erase(db_session, token, ip=request.remote_addr or "")
        with force_locale(language):
            return render_template("web/preferences/erased.html")

    return _erase_link(token, act)
