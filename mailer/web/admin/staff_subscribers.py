"""Staff pages: a subscriber added by hand, a subscriber's name and language changed (admins)."""

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ... import audit, lists, staff_subscribers
from ...errors import Conflict, InvalidInput
from ...extensions import db_session
from ...lookups import get_or_404
from ...models import Role, Subscriber, SubscriptionStatus
from ..auth import actor, staff_required
from . import bp


def _form(template: str, status: int = 200, error=None, **values):
    return render_template(template, error=error, values=values, lists=lists.offered_lists(db_session),
                           locales=staff_subscribers.LOCALES), status


@bp.route("/subscribers/new", methods=["GET", "POST"])
@staff_required(Role.ADMIN)
def subscriber_new():
    """Add someone: with a confirmation mail (double opt-in, ticked by default) or, without
    one, confirmed on the basis the staff member gives."""
    if request.method == "GET":
        return _form("web/admin/subscribers/new.html", confirmation_mail=True, list_ids=[])
    form = request.form
    values: dict[str, Any] = {
        "email": form.get("email", ""), "name": form.get("name", ""), "locale": form.get("locale", "pl"),
        "list_ids": form.getlist("list_ids"), "confirmation_mail": form.get("confirmation_mail") == "1",
        "basis": form.get("basis", ""), "consent_confirmed": form.get("consent_confirmed") == "1"}
    who = actor()
    try:
        subscriber = staff_subscribers.add_subscriber(
            db_session, staff_subscribers.Staff(who.user_id, who.email, who.ip), **values)
    except (InvalidInput, Conflict) as exc:
        return _form("web/admin/subscribers/new.html", 409 if isinstance(exc, Conflict) else 400, exc, **values)
    audit.record(db_session, who, "subscriber.create", str(subscriber.id), list_ids=values["list_ids"],
                 confirmation_mail=values["confirmation_mail"], basis=values["basis"][:200])
    flash(_("%(email)s was added; a confirmation mail is on its way.", email=subscriber.email)
          if values["confirmation_mail"] else _("%(email)s was added and confirmed.", email=subscriber.email),
          "success")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber.id))


def _edit_form(subscriber: Subscriber, status: int = 200, error=None, **values):
    on = {sub.list_id for sub in subscriber.subscriptions if sub.status != SubscriptionStatus.UNSUBSCRIBED}
    values = {"name": subscriber.name, "locale": subscriber.locale, "list_ids": [], "confirmation_mail": True,
              **values}
    return render_template("web/admin/subscribers/edit.html", error=error, values=values, subscriber=subscriber,
                           lists=[item for item in lists.offered_lists(db_session) if item.id not in on]), status


@bp.route("/subscribers/<int:subscriber_id>/edit", methods=["GET", "POST"])
@staff_required(Role.ADMIN)
def subscriber_edit(subscriber_id: int):
    subscriber = get_or_404(db_session, Subscriber, subscriber_id)
    if request.method == "GET":
        return _edit_form(subscriber)
    values = {"name": request.form.get("name", ""), "locale": request.form.get("locale", "")}
    try:
        staff_subscribers.update_subscriber(db_session, subscriber_id, **values)
    except InvalidInput as exc:
        db_session.rollback()
        return _edit_form(get_or_404(db_session, Subscriber, subscriber_id), 400, exc, **values)
    audit.record(db_session, actor(), "subscriber.update", str(subscriber_id), locale=values["locale"])
    flash(_("Saved."), "success")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/lists")
@staff_required(Role.ADMIN)
def subscriber_add_lists(subscriber_id: int):
    """Put a subscriber on more lists: with a confirmation mail, or on a basis given."""
    subscriber = get_or_404(db_session, Subscriber, subscriber_id)
    form = request.form
    values: dict[str, Any] = {
        "list_ids": form.getlist("list_ids"), "confirmation_mail": form.get("confirmation_mail") == "1",
        "basis": form.get("basis", ""), "consent_confirmed": form.get("consent_confirmed") == "1"}
    who = actor()
    try:
        added = staff_subscribers.add_to_lists(db_session, staff_subscribers.Staff(who.user_id, who.email, who.ip),
                                               subscriber_id, **values)
    except (InvalidInput, Conflict) as exc:
        db_session.rollback()
        return _edit_form(get_or_404(db_session, Subscriber, subscriber_id),
                          409 if isinstance(exc, Conflict) else 400, exc, **values)
    audit.record(db_session, who, "subscriber.update", str(subscriber_id), list_ids=values["list_ids"],
                 confirmation_mail=values["confirmation_mail"], basis=values["basis"][:200])
    flash(_("Added to %(n)s lists; a confirmation mail is on its way.", n=added) if values["confirmation_mail"]
          else _("Added to %(n)s lists and confirmed.", n=added), "success")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber.id))
