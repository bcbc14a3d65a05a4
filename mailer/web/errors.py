"""Errors at the edge: each domain error class has one HTTP status, decided here, and its
message id is translated here into the language of the page (or the API's answer)."""

from flask import Flask, flash, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import BadToken, Conflict, DomainError, InvalidInput, NotFound
from ..mail.render import TemplateLimit
from . import transaction

STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    BadToken: 400,
    NotFound: 404,
    Conflict: 409,
}


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error: that of its nearest class in STATUS."""
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 400)


def error_text(exc: DomainError) -> str:
    """The error's message in the page's language, with its parameters. A staff template
    that went past a render limit is noted for the request (``auth.render_limit`` counts
    those strikes)."""
    if isinstance(exc, TemplateLimit):
        g.template_limit_hit = True
    return gettext(exc.msgid, **exc.params)


def flash_error(exc: DomainError) -> None:
    """Show ``exc`` on the next page and discard the request's changes: for a view that
    redirects after a refused action."""
    transaction.discard()
    flash(error_text(exc), "error")


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_body(message: str, field: str | None = None) -> dict[str, str]:
    """The JSON shape of every error: ``{"error": message, "field": name}``."""
    return {"error": message, "field": field} if field else {"error": message}


def error_response(status: int, message: str, field: str | None = None) -> ResponseReturnValue:
    if wants_json():
        return jsonify(error_body(message, field)), status
    return render_template("web/error.html", status=status, message=message), status


def register_error_handlers(app: Flask) -> None:
    app.add_template_global(error_text, "error_text")

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> ResponseReturnValue:
        return error_response(status_of(exc), error_text(exc), exc.field)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> ResponseReturnValue:
        return error_response(400, gettext(
            "The form has expired or was sent from elsewhere. Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.response is not None:  # an answer made already (e.g. a JSON 429 from on_breach)
            return exc.response
        messages = {
            400: gettext("The request could not be understood."),
            403: gettext("You do not have access to this page."),
            404: gettext("This page does not exist."),
            405: gettext("This action is not allowed here."),
            413: gettext("The upload is too large."),
            429: gettext("Too many attempts. Please wait a moment and try again."),
        }
        return error_response(exc.code or 500, messages.get(exc.code or 500, exc.description or exc.name))
