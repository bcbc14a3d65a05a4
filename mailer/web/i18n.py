"""Which language a page is shown in.

Staff pages: an explicit choice (``?lang=``, remembered in the session), then the staff
member's language, then the default. Public pages opened from a mail (confirm,
unsubscribe, view in browser, preferences): the explicit choice, then the language of the
subscriber the link names (``use_subscriber_language``), then the default. The JSON API
answers in ``?lang=``, then the request's ``Accept-Language`` (pl or en), then the default.
"""

from functools import wraps

from flask import Flask, current_app, g, has_request_context, request, session
from flask_babel import lazy_gettext, refresh
from flask_login import current_user

from .. import subscribers, tokens

LANGUAGE_NAMES = {"pl": "polski", "en": "English"}  # each in its own language (the switch)


def _api() -> bool:
    return request.path.startswith("/api/")


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = request.args.get("lang")
    if _api():  # no session: ?lang=, else the language the client says it reads
        if chosen is not None and chosen in languages:
            return chosen
        return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]
    if chosen is not None and chosen in languages:
        session["lang"] = chosen
        return chosen
    if session.get("lang") in languages:
        return session["lang"]
    if g.get("subscriber_locale") in languages:
        return g.subscriber_locale
    if getattr(current_user, "is_authenticated", False) and current_user.locale in languages:
        return current_user.locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def use_subscriber_language(locale: str | None) -> None:
    """Show this request's page in the language of the subscriber its link names, unless the
    visitor chose one (the language switch). For every page opened from a mail: call it
    once the link's token is read (``subscriber_language`` finds the language from a
    subscriber id)."""
    if locale in current_app.config["LANGUAGES"]:
        g.subscriber_locale = locale
        refresh()  # Babel may have picked the language already (a lazy string, a flash)


def use_language_of(subscriber_id: int | None) -> None:
    """``use_subscriber_language`` for the subscriber with this id (one primary-key read)."""
    from ..extensions import db_session

    if subscriber_id:
        use_subscriber_language(subscribers.locale_of(db_session, subscriber_id))


def in_subscriber_language(purpose: str):
    """Decorate a view whose URL holds a mailed link's ``token`` of ``purpose``
    (tokens.CONFIRM, UNSUBSCRIBE, VIEW): its page, errors included, is in the language of the
    subscriber the link names (unless the visitor chose one)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            use_language_of(tokens.subscriber_named(purpose, str(kwargs.get("token", ""))))
            return view(*args, **kwargs)

        return wrapped

    return decorate


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code or "—")


_FIELDS = {"title": lazy_gettext("title"), "place": lazy_gettext("place"),
           "summary": lazy_gettext("summary"), "body_md": lazy_gettext("description")}


def event_field_label(field: str) -> str:
    return str(_FIELDS.get(field, field))


def init_app(app: Flask) -> None:
    app.add_template_global(language_name, "language_name")
    app.add_template_filter(event_field_label, "event_field_label")
