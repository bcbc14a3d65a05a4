"""What every answer carries and what every request must be, decided once for the whole app.

Headers (STANDARDS 35): ``nosniff`` and ``Referrer-Policy: no-referrer`` on everything (links
carry signed tokens); a Content-Security-Policy on HTML pages (scripts only from this site or
with the request's nonce; the mail pages of ``archive.mail_page`` set their own); framing
denied on staff pages (their buttons cannot be clickjacked) and limited to this site
elsewhere; ``no-store`` on staff pages and the API; HSTS when the request came over https.

Input (STANDARDS 38): ids in routes are the columns' integers (the ``int`` converter stops
at 2**31-1: a larger id is a 404, never a database error); a NUL or other control character
in the path, the query or a form field is a 400; JSON bodies are parsed with a nesting limit
and without lone surrogates (``GuardedRequest``); a value the database refuses anyway is a 400.
"""

import json
import re
import secrets
from typing import Any

from flask import Flask, Request, Response, g, request
from flask import json as flask_json
from sqlalchemy.exc import DataError, StatementError
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1
MAX_JSON_DEPTH = 32
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class IdConverter(IntegerConverter):
    """``<int:...>``: a row id, 0 .. 2**31-1 unless the rule says otherwise."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def _depth_ok(text: str | bytes) -> bool:
    """Whether brackets nest at most MAX_JSON_DEPTH deep (strings skipped): checked before
    parsing, as Python's parser would recurse first and fail with RecursionError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        if _SURROGATE.search(value) or "\x00" in value:
            raise ValueError("a string holds a lone surrogate or NUL")
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean(key)
            _clean(item)
    elif isinstance(value, list):
        for item in value:
            _clean(item)
    return value


class GuardedJSON:
    """What ``request.get_json`` parses request bodies with, everywhere: bounded nesting, no
    lone surrogates or NUL, no NaN (a ValueError is Flask's 400)."""

    @staticmethod
    def loads(s: str | bytes, **kwargs: Any) -> Any:
        if not _depth_ok(s):
            raise ValueError("JSON nested too deeply")

        def constant(name: str) -> Any:
            raise ValueError(f"{name} is not JSON")

        return _clean(json.loads(s, parse_constant=constant, **kwargs))

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return flask_json.dumps(obj, **kwargs)


class GuardedRequest(Request):
    """Requests whose JSON bodies are parsed by GuardedJSON. Flask sets ``json_module`` to the
    app's JSON provider on each request; the app's provider stays as it is (sessions use it)."""

    @property
    def json_module(self) -> Any:
        return GuardedJSON

    @json_module.setter
    def json_module(self, _value: Any) -> None:
        pass


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _page_policy(frame_ancestors: str) -> str:
    nonce = g.get("csp_nonce")
    scripts = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    return ("default-src 'self'; " f"script-src {scripts}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-src 'self'; "
            f"frame-ancestors {frame_ancestors}")


def _is_staff(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


def secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    staff = _is_staff(request.path)
    # Staff previews are framed by the staff pages themselves: same origin only; the rest of
    # the staff pages are never framed.
    framed = request.endpoint in {"admin.campaign_preview", "admin.template_preview"}
    frame_ancestors = "'none'" if staff and not framed else "'self'"
    headers.setdefault("X-Frame-Options", "DENY" if frame_ancestors == "'none'" else "SAMEORIGIN")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", _page_policy(frame_ancestors))
    if staff or request.path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def _has_control(values) -> bool:
    return any(_CONTROL.search(key) or _CONTROL.search(value) for key, value in values.items(multi=True))


def check_input() -> None:
    """Refuse control characters in the path, the query string and form fields (400)."""
    if _CONTROL.search(request.path) or _has_control(request.args):
        raise BadRequest()
    forms = {"application/x-www-form-urlencoded", "multipart/form-data"}
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and request.mimetype in forms \
            and _has_control(request.form):
        raise BadRequest()


def init_app(app: Flask) -> None:
    app.request_class = GuardedRequest
    app.before_request(check_input)
    app.after_request(secure_headers)
    app.add_template_global(csp_nonce, "csp_nonce")

    from flask_babel import gettext

    from .errors import error_response

    @app.errorhandler(DataError)
    def data_error(exc: DataError):
        """A value the database refuses (out of range for its column): the client's mistake."""
        return error_response(400, gettext("A value is out of range."))

    @app.errorhandler(StatementError)
    def statement_error(exc: StatementError):
        """A value the driver cannot even send (text that is not UTF-8): the client's too."""
        if isinstance(exc.orig, (UnicodeEncodeError, ValueError)):
            return error_response(400, gettext("The request could not be understood."))
        raise exc
