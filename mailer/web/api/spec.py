"""The API's validation and OpenAPI document, both made by spectree from the pydantic models
that each view names in its signature (``json: schemas.ListCreate``, ``query: ...``) and its
``@spec.validate(resp=answers(...))``.

spectree's Flask plugin is kept, with this API's rules: a JSON body is validated by pydantic
from the raw bytes (JSON mode: strict types, UTF-8, no NaN, bounded nesting), every refusal
becomes an InvalidInput naming the field (so it gets the app's one error answer, translated,
``{"error": ..., "field": ...}``), and answers are documented but not validated again on
the way out (the schemathesis test checks them against the document).
"""

from typing import Any

from flask import Request
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin

from ...errors import InvalidInput
from .schemas import Error

# pydantic's error types, as this API's messages (English msgids, translated at the edge).
BODY_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "This field is not known.",
    "string_type": "This field must be a string.",
    "string_too_long": "This field is too long.",
    "bool_type": "This field must be true or false.",
    "int_type": "This field must hold whole numbers (ids).",
    "greater_than_equal": "This id is out of range.",
    "less_than_equal": "This id is out of range.",
    "list_type": "This field must be a list of ids.",
    "too_long": "This list is too long.",
    "too_short": "Choose at least one.",
    "literal_error": "This value is not one of the allowed ones.",
    "json_invalid": "The request body is not valid JSON.",
    "model_type": "The request body must be a JSON object.",
    "model_attributes_type": "The request body must be a JSON object.",
    "dict_type": "The request body must be a JSON object.",
    "ip_address": "This is not an IP address.",
    "empty_patch": "Send at least one field to change.",
}
UNKNOWN_MESSAGE = "The request could not be understood."
DATETIME_MESSAGE = "Give the date and time in ISO 8601, e.g. 2026-12-05T18:00:00+01:00."
PARAMETER_MESSAGES = {
    "string_too_long": "This parameter is too long.",
    "literal_error": "This value is not one of the allowed ones.",
}
PARAMETER_MESSAGE = "This parameter must be a whole number in range."


def refusal(exc: ValidationError, *, parameters: bool = False) -> InvalidInput:
    """The first thing pydantic found wrong, as an InvalidInput naming the field."""
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    field = str(loc[0]) if loc and isinstance(loc[0], str) else None
    kind = error["type"]
    if parameters:
        return InvalidInput(PARAMETER_MESSAGES.get(kind, PARAMETER_MESSAGE), field)
    if error.get("input", ...) is None and kind.endswith("_type") and kind not in {"model_type", "dict_type"}:
        return InvalidInput("This field cannot be null.", field)
    if kind.startswith(("datetime", "date_")):
        return InvalidInput(DATETIME_MESSAGE, field)
    return InvalidInput(BODY_MESSAGES.get(kind, UNKNOWN_MESSAGE), field)


def parse_body(model: type[BaseModel], request: Request) -> BaseModel:
    """The request's JSON body as ``model``; raises InvalidInput."""
    if request.mimetype != "application/json":
        raise InvalidInput("Send the body as JSON with Content-Type: application/json.")
    raw = request.get_data(cache=True)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The request body must be UTF-8 encoded.") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise refusal(exc) from None


def parse_query(model: type[BaseModel], request: Request) -> BaseModel:
    """The query string as ``model``; raises InvalidInput."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise refusal(exc, parameters=True) from None


class ApiPlugin(FlaskPlugin):
    """spectree's Flask plugin with the request parsing and errors described above."""

    def request_validation(self, request: Request, query: Any, json: Any, form: Any,
                           headers: Any, cookies: Any) -> None:
        request.context = Context(  # type: ignore[attr-defined]
            parse_query(query, request) if query else None,
            parse_body(json, request) if json else None,
            None, None, None)

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool,
                          force_resp_serialize: bool) -> Any:
        return super().validate_response(resp, resp_model, True, force_resp_serialize)


spec = SpecTree(
    backend=ApiPlugin,
    mode="strict",  # only the views decorated below are the API
    title="Mailer API",
    version="1.0.0",
    description=(
        "Lists, subscribers, events and campaigns of the newsletter service. Authenticate with a "
        "per-user token (`flask --app mailer tokens create EMAIL`) sent as "
        "`Authorization: Bearer <token>`. Every error is JSON: `{\"error\": message, \"field\": name}`."),
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type=SecureType.HTTP,
                                                                             scheme="bearer"))],
    security={"bearer": []},
    validation_error_status=400,
    validation_error_model=Error,
    page_templates={},
)

ERRORS = {
    400: "Malformed JSON, a wrong type, a missing, unknown or overlong field, or a broken rule.",
    401: "No token, or a token that is unknown or revoked.",
    403: "The token's user may not do this.",
    404: "No such item.",
    409: "The item's state does not allow this.",
    413: "The body is too large.",
    429: "Too many requests; wait and try again.",
}


def answers(status: int, model: type[BaseModel] | None, description: str, *errors: int,
            admin: bool = False) -> Response:
    """The documented answers of an operation: the success, then 400, 401, 429, the
    ``errors`` it may also give, and 403 for admin-only ones."""
    codes: dict[str, Any] = {f"HTTP_{status}": (model, description)}
    for code in sorted({400, 401, 429, *errors, *([403] if admin else [])}):
        codes[f"HTTP_{code}"] = (Error, ERRORS[code])
    return Response(**codes)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (needs an app context: it is made from the url_map)."""
    return spec.spec
