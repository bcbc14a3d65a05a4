"""Errors shown next to the fields they are about, the way assistive technology expects:
each message has an id, its field is ``aria-invalid`` and ``aria-describedby`` that id.

Two sources: a WTForms field (its ``errors``, every field validated at once), or a domain
error (``InvalidInput.errors``: every mistake a validation found) with the field's name.
``static/js/layout.js`` scrolls to and focuses the first invalid field of the page."""

from typing import Any

from flask import Flask
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import Field

from ..errors import DomainError
from .errors import error_text


def _messages(source: Any, name: str | None) -> tuple[str, list[str]]:
    if isinstance(source, Field):
        return source.id, [str(message) for message in source.errors]
    if isinstance(source, DomainError) and name:
        errors = getattr(source, "errors", [source])
        return name, [error_text(exc) for exc in errors if exc.field == name]
    return name or "", []


def invalid_attrs(source: Any, name: str | None = None) -> dict[str, str]:
    """``aria-invalid`` and ``aria-describedby`` for a field in error (else nothing)."""
    field_id, messages = _messages(source, name)
    if not messages:
        return {}
    return {"aria-invalid": "true", "aria-describedby": f"{field_id}-error"}


def field_errors(source: Any, name: str | None = None) -> Markup:
    """The field's messages, in one element the field's ``aria-describedby`` names."""
    field_id, messages = _messages(source, name)
    if not messages:
        return Markup("")
    lines = Markup("<br>").join(escape(message) for message in messages)
    return Markup('<p class="field-error" id="{}-error">{}</p>').format(field_id, lines)


def error_summary(error: Any) -> Markup:
    """Every message of a domain error above the form, each linking to its field: for forms
    whose fields are groups of choices (campaigns) or live in several sections."""
    if not isinstance(error, DomainError):
        return Markup("")
    items = [Markup('<li><a href="#{}">{}</a></li>').format(exc.field, error_text(exc)) if exc.field
             else Markup("<li>{}</li>").format(error_text(exc)) for exc in getattr(error, "errors", [error])]
    if len(items) == 1:
        return Markup('<div class="flash flash-error" role="alert">{}</div>').format(error_text(error))
    return Markup('<div class="flash flash-error error-summary" role="alert"><ul>{}</ul></div>').format(
        Markup("").join(items))


def error_count(source: Any) -> int:
    """How many field mistakes a domain error or a WTForms form carries."""
    if isinstance(source, FlaskForm):
        return sum(len(field.errors) for field in source)
    return len(getattr(source, "errors", [])) if isinstance(source, DomainError) else 0


class AccessibleForm(FlaskForm):
    """A WTForms form whose fields render their errors' aria attributes themselves."""

    class Meta:
        def render_field(self, field: Field, render_kw: dict) -> Any:
            if field.errors and field.type not in {"CSRFTokenField", "HiddenField"}:
                render_kw = {**invalid_attrs(field), **render_kw}
            return super().render_field(field, render_kw)  # type: ignore[misc]


def init_app(app: Flask) -> None:
    app.add_template_global(field_errors, "field_errors")
    app.add_template_global(invalid_attrs, "invalid_attrs")
    app.add_template_global(error_count, "error_count")
    app.add_template_global(error_summary, "error_summary")
