"""Request bodies of the JSON API, declared once: validated here, documented in openapi.py.

``parse_body`` and ``parse`` raise InvalidInput (with ``field``) for anything a client can get
wrong: a body that is not UTF-8 or not JSON, wrong types, missing or unknown fields, overlong
strings, numbers out of range.
"""

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime

from flask import Request

from ..errors import InvalidInput

MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL
MAX_IDS = 100


@dataclass(frozen=True)
class Field:
    """One field of a request body: ``kind`` is string, integer, boolean, ids, datetime or ip."""

    kind: str
    required: bool = False
    max_length: int | None = None
    nullable: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None
    min_items: int = 0

    def json_schema(self) -> dict:
        schema: dict = {
            "string": {"type": "string"},
            "integer": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "boolean": {"type": "boolean"},
            "ids": {"type": "array", "maxItems": MAX_IDS,
                    "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID}},
            "datetime": {"type": "string", "format": "date-time", "maxLength": 64},
            "ip": {"type": "string", "maxLength": 45},
        }[self.kind]
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.min_items:
            schema["minItems"] = self.min_items
        if self.description:
            schema["description"] = self.description
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        return schema


Schema = dict[str, Field]


def json_schema(schema: Schema, partial: bool = False) -> dict:
    """The JSON Schema (OpenAPI 3.1) of a request body."""
    document = {"type": "object", "additionalProperties": False,
                "properties": {name: field.json_schema() for name, field in schema.items()}}
    required = [name for name, field in schema.items() if field.required and not partial]
    if required:
        document["required"] = required
    if partial:
        document["minProperties"] = 1
    return document


def _reject_constant(name: str):
    raise ValueError(name)


def parse_body(request: Request) -> dict:
    """The request's JSON object; raises InvalidInput when it is not UTF-8 JSON holding an object."""
    if request.mimetype != "application/json":
        raise InvalidInput("Send the body as JSON with Content-Type: application/json.")
    raw = request.get_data(cache=True)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The request body must be UTF-8 encoded.") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidInput("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return payload


def _value(name: str, field: Field, value):
    if value is None:
        if field.nullable:
            return None
        raise InvalidInput("This field cannot be null.", name)
    if field.kind in {"string", "datetime", "ip"}:
        if not isinstance(value, str):
            raise InvalidInput("This field must be a string.", name)
        if field.max_length is not None and len(value) > field.max_length:
            raise InvalidInput("This field is too long.", name)
        if field.enum and value not in field.enum:
            raise InvalidInput("This value is not one of the allowed ones.", name)
        if field.kind == "datetime":
            return parse_datetime(name, value)
        if field.kind == "ip" and value:
            try:
                return str(ipaddress.ip_address(value))
            except ValueError:
                raise InvalidInput("This is not an IP address.", name) from None
        return value
    if field.kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput("This field must be true or false.", name)
        return value
    if field.kind == "integer":
        return parse_id(name, value)
    if field.kind == "ids":
        if not isinstance(value, list):
            raise InvalidInput("This field must be a list of ids.", name)
        if len(value) > MAX_IDS:
            raise InvalidInput("This list is too long.", name)
        if len(value) < field.min_items:
            raise InvalidInput("Choose at least one.", name)
        return list(dict.fromkeys(parse_id(name, item) for item in value))
    raise AssertionError(field.kind)


def parse_id(name: str, value) -> int:
    """A positive 32-bit id; raises InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("This field must hold whole numbers (ids).", name)
    if not 1 <= value <= MAX_ID:
        raise InvalidInput("This id is out of range.", name)
    return value


def parse_datetime(name: str, value: str) -> datetime:
    """An ISO 8601 date and time (naive values are left for the domain to localize)."""
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("Give the date and time in ISO 8601, e.g. 2026-12-05T18:00:00+01:00.",
                           name) from None


def parse(schema: Schema, payload: dict, partial: bool = False) -> dict:
    """The fields of ``payload`` checked against ``schema``; with ``partial`` none is required."""
    for name in payload:
        if name not in schema:
            raise InvalidInput("This field is not known.", name)
    if partial and not payload:
        raise InvalidInput("Send at least one field to change.")
    values = {}
    for name, field in schema.items():
        if name not in payload:
            if field.required and not partial:
                raise InvalidInput("This field is required.", name)
            continue
        values[name] = _value(name, field, payload[name])
    return values


# --- Query parameters ------------------------------------------------------------------

def query_int(args, name: str, default: int | None, highest: int) -> int | None:
    """A whole number from 1 to ``highest``, or ``default`` when absent; raises InvalidInput."""
    raw = args.get(name, "")
    if raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise InvalidInput("This parameter must be a whole number in range.", name)
    return int(raw)


def query_text(args, name: str, max_length: int) -> str:
    """Stripped text, at most ``max_length`` characters; raises InvalidInput."""
    value = args.get(name, "").strip()
    if len(value) > max_length:
        raise InvalidInput("This parameter is too long.", name)
    return value


def query_choice(args, name: str, choices: list[str]) -> str | None:
    """One of ``choices``, or None when absent; raises InvalidInput."""
    value = args.get(name) or None
    if value is not None and value not in choices:
        raise InvalidInput("This value is not one of the allowed ones.", name)
    return value


# --- The bodies --------------------------------------------------------------------------

LIST_CREATE: Schema = {
    "name": Field("string", required=True, max_length=120),
    "slug": Field("string", max_length=80, nullable=True,
                  description="URL name; made from the name when absent."),
    "description": Field("string", max_length=2000),
    "public": Field("boolean", description="Offered on the public sign-up form."),
}
LIST_UPDATE: Schema = {
    "name": Field("string", max_length=120),
    "description": Field("string", max_length=2000),
    "public": Field("boolean"),
}

SUBSCRIBE: Schema = {
    "email": Field("string", required=True, max_length=254),
    "name": Field("string", max_length=200),
    "list_ids": Field("ids", nullable=True, min_items=1,
                      description="Public lists; absent or null: all of them."),
    "locale": Field("string", enum=("pl", "en"), description="Language of the confirmation mail."),
    "consent": Field("boolean", required=True,
                     description="The visitor ticked the consent box; must be true."),
    "ip": Field("ip", description="The visitor's IP address, recorded with the consent and "
                                  "used for the per-IP rate limit; default: the caller's."),
    "user_agent": Field("string", max_length=400, description="The visitor's browser."),
}

EVENT: Schema = {
    "title": Field("string", required=True, max_length=200),
    "starts_at": Field("datetime", required=True,
                       description="ISO 8601; without an offset it is Europe/Warsaw time."),
    "ends_at": Field("datetime", nullable=True),
    "place": Field("string", max_length=200),
    "summary": Field("string", max_length=500),
    "body_md": Field("string", max_length=20000, description="Markdown, sanitized when shown."),
    "image_url": Field("string", max_length=500),
    "link": Field("string", max_length=500),
}

CAMPAIGN_CREATE: Schema = {
    "event_ids": Field("ids", required=True, min_items=1),
    "list_ids": Field("ids", required=True),
    "template_id": Field("integer", nullable=True),
    "subject": Field("string", max_length=200, nullable=True,
                     description="Made from the events when absent."),
    "preheader": Field("string", max_length=200, nullable=True),
    "locale": Field("string", enum=("pl", "en")),
}

CAMPAIGN_UPDATE: Schema = {
    "event_ids": Field("ids", min_items=1),
    "list_ids": Field("ids"),
    "template_id": Field("integer", nullable=True),
    "subject": Field("string", max_length=200),
    "preheader": Field("string", max_length=200),
    "locale": Field("string", enum=("pl", "en")),
    "archived": Field("boolean", description="Shown in the public archive once sent."),
}

CAMPAIGN_SCHEDULE: Schema = {
    "at": Field("datetime", required=True,
                description="When to send, ISO 8601; without an offset it is Europe/Warsaw time."),
}
