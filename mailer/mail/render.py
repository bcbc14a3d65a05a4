"""Rendering mail: HTML with inlined CSS plus a text part.

Staff-editable campaign templates are rendered once per campaign in an
``ImmutableSandboxedEnvironment`` with the recipient's values left as markers, then
personalized per recipient by joining pre-split segments (no Jinja per recipient). The
service's own notices are rendered by ``mailer.notices`` with Flask's templates.
"""

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import css_inline
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup, escape

from ..errors import InvalidInput

_inliner = css_inline.CSSInliner(keep_style_tags=True)  # keep @media rules for phones


def inline_css(html: str) -> str:
    return _inliner.inline(html)


_TEXT_CONFIG = ParserConfig(display_links=True)


def html_to_text(html: str) -> str:
    """A readable text part, links kept as ``text[url]``."""
    return get_text(html, _TEXT_CONFIG).strip() + "\n"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


# --- Campaign templates -------------------------------------------------------------

# Recipient values, filled in per recipient after the per-campaign render.
RECIPIENT_FIELDS = ("name", "email", "unsubscribe_url", "view_url")
_MARK = "@@mlr:{}@@"
MARKERS = {field: _MARK.format(field) for field in RECIPIENT_FIELDS}
_CLOSERS = set(",.!?;:")
_SPLIT = re.compile("@@mlr:(" + "|".join(RECIPIENT_FIELDS) + ")@@")


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing arithmetic that would build huge values ('x' * 10**9)."""

    intercepted_binops = frozenset({"*", "**"})
    MAX_SIZE = 100_000

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 100:
            raise SecurityError("the exponent is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                        and len(seq) * times > self.MAX_SIZE:
                    raise SecurityError("the result would be too large")
        return super().call_binop(context, operator, left, right)


sandbox = _Env(autoescape=True, undefined=StrictUndefined)
text_sandbox = _Env(autoescape=False, undefined=StrictUndefined)


def _sandbox_render(source: str, context: dict, what: str, env: _Env = sandbox) -> str:
    """Render staff-written ``source``; raises InvalidInput with the line of a mistake."""
    try:
        return env.from_string(source).render(context)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise InvalidInput(f"The {what} template cannot be rendered{where}: {exc}") from exc


class Personalizer:
    """One rendered part split at the recipient markers, ready to be joined per recipient."""

    def __init__(self, rendered: str, escape_values: bool):
        parts = _SPLIT.split(rendered)
        self.literals = parts[0::2]
        self.fields = parts[1::2]
        self.escape_values = escape_values

    def __call__(self, values: Mapping[str, str]) -> str:
        out = [self.literals[0]]
        for field, literal in zip(self.fields, self.literals[1:], strict=True):
            value = values.get(field) or ""
            if not value and out[-1].endswith(" ") and literal[:1] in _CLOSERS:
                out[-1] = out[-1][:-1]  # "Dzień dobry {{ name }}," without a name
            out.append(str(escape(value)) if self.escape_values else value)
            out.append(literal)
        return "".join(out)


@dataclass(frozen=True)
class CompiledCampaign:
    """A campaign rendered once: both parts hold the recipient markers (``MARKERS``)."""

    subject: str
    html_source: str
    text_source: str

    @functools.cached_property
    def html(self) -> Personalizer:
        return Personalizer(self.html_source, True)

    @functools.cached_property
    def text(self) -> Personalizer:
        return Personalizer(self.text_source, False)

    def personalize(self, **values: str) -> Rendered:
        return Rendered(self.subject, self.html(values), self.text(values))


def compile_campaign(*, subject: str, preheader: str, layout_html: str, layout_text: str,
                     content_html: str, content_text: str, context: dict) -> CompiledCampaign:
    """Render a campaign once: content inside its layout, CSS inlined, text part made
    (from the text sources, or from the HTML when they are empty).
    Raises InvalidInput when a template is broken."""
    recipient = {"name": MARKERS["name"], "email": MARKERS["email"]}
    base = {**context, "subject": subject, "preheader": preheader, "subscriber": recipient,
            "unsubscribe_url": MARKERS["unsubscribe_url"], "view_url": MARKERS["view_url"]}
    content = Markup(_sandbox_render(content_html, base, "content"))
    html = inline_css(_sandbox_render(layout_html, {**base, "content": content}, "layout"))
    if content_text.strip() and layout_text.strip():
        text_content = _sandbox_render(content_text, base, "text content", text_sandbox)
        text = _sandbox_render(layout_text, {**base, "content": text_content}, "text layout",
                               text_sandbox)
    else:
        text = html_to_text(html)
    return CompiledCampaign(subject, html, text)
