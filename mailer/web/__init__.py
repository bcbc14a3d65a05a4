"""The web layer: blueprints that parse requests, call the domain and render answers."""

from flask import Flask
from flask_babel import get_locale

from . import errors, transaction


def register_blueprints(app: Flask) -> None:
    from ..extensions import db_session, login_manager
    from ..models import User

    login_manager.user_loader(lambda user_id: db_session.get(User, int(user_id)))
    login_manager.login_view = "admin.login"
    from . import admin, api, archive, public, webhooks

    app.register_blueprint(public.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    app.register_blueprint(webhooks.bp)
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())
    errors.register_error_handlers(app)
    transaction.init_app(app)
