"""The web layer: blueprints that parse requests, call the domain and render answers."""

from flask import Flask, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import DomainError


def register_blueprints(app: Flask) -> None:
    from .. import users
    from ..extensions import db, login_manager

    login_manager.user_loader(lambda user_id: users.get_user(db.session, int(user_id)))
    login_manager.login_view = "admin.login"
    from . import admin, api, archive, public, webhooks

    app.register_blueprint(public.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    app.register_blueprint(webhooks.bp)
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())
    register_error_handlers(app)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status: int, message: str, field: str | None = None):
    if wants_json():
        body = {"error": message}
        if field:
            body["field"] = field
        return jsonify(body), status
    return render_template("web/error.html", status=status, message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        return error_response(exc.status, _(exc.message), exc.field)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, _("The form has expired or was sent from elsewhere. Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.response is not None:  # an answer made already (e.g. a JSON 429 from on_breach)
            return exc.response
        messages = {
            400: _("The request could not be understood."),
            403: _("You do not have access to this page."),
            404: _("This page does not exist."),
            405: _("This action is not allowed here."),
            413: _("The upload is too large."),
            429: _("Too many attempts. Please wait a moment and try again."),
        }
        return error_response(exc.code or 500, messages.get(exc.code, exc.description or exc.name))
