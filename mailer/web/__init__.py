"""The web layer: blueprints that parse requests, call the domain and render answers."""

from flask import Flask
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from ..addresses import shown_email
from . import assets, errors, form_errors, i18n, labels, security, subscribe_limits, transaction


def register_blueprints(app: Flask) -> None:
    from .. import consent, users
    from ..extensions import db_session, login_manager

    # A session names "<id>.<session version>": ended sessions are refused (mailer.web.auth).
    login_manager.user_loader(lambda session_id: users.user_for_session(db_session, session_id))
    login_manager.login_view = "admin.login"
    # Flask-Login's own message is English; this one is translated when it is flashed (str of a
    # lazy string, in the request's language).
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.localize_callback = str
    app.url_map.converters["int"] = security.IdConverter  # before any rule is added
    from . import admin, api, archive, preferences, public, webhooks

    app.register_blueprint(public.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(preferences.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    app.register_blueprint(webhooks.bp)
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())
    # Addresses as people read them (an IDN domain in its own letters): wherever one is shown.
    app.jinja_env.filters["email"] = shown_email
    labels.init_app(app)
    assets.init_app(app)
    form_errors.init_app(app)
    i18n.init_app(app)
    app.jinja_env.globals.update(sign_up_wording=consent.sign_up_wording, sign_up_parts=consent.sign_up_parts,
                                 preferences_wording=consent.preferences_wording)
    errors.register_error_handlers(app)
    security.init_app(app)
    # After-request functions run last-registered first: the subscribe answers are held back
    # (subscribe_limits.equal_time) after the transaction has been committed.
    subscribe_limits.init_app(app)
    transaction.init_app(app)
