"""Rendering mail: HTML with inlined CSS plus a text part.

Staff-editable campaign templates are rendered once per campaign in an
``ImmutableSandboxedEnvironment`` with the recipient's values left as markers, then
personalized per recipient by joining pre-split segments (no Jinja per recipient). The
service's own notices are rendered by ``mailer.notices`` with Flask's templates.
"""

import functools
import gc
import math
import os
import pickle
import re
import resource
import select
import signal
import string
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import css_inline
import lxml.html
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, pass_eval_context
from jinja2 import filters as jinja_filters
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum
from markupsafe import Markup, escape

from ..errors import InvalidInput
from . import template_errors

_inliner = css_inline.CSSInliner(keep_style_tags=True)  # keep @media rules for phones


def inline_css(html: str) -> str:
    return _inliner.inline(html)


_TEXT_CONFIG = ParserConfig(display_links=True)


def html_to_text(html: str) -> str:
    """A readable text part, links kept as ``text[url]``."""
    return get_text(html, _TEXT_CONFIG).strip() + "\n"


# The unsubscribe link of a copy that belongs to nobody (the public archive): removed with
# ``public_copy``.
NOBODYS_UNSUBSCRIBE = "#archive-copy"
_RECIPIENT_PARTS = ('//*[contains(concat(" ", normalize-space(@class), " "), " footer ")]'
                    f' | //a[@href="{NOBODYS_UNSUBSCRIBE}"]')


def public_copy(html: str) -> str:
    """A rendered mail as anyone may read it (the archive): without what speaks to one
    recipient. The layout's footer (an element of class "footer": why they receive it, their
    unsubscribe and view links) is dropped, with its table row when it is the row's only
    cell; so is any unsubscribe link a layout placed elsewhere."""
    document = lxml.html.document_fromstring(html)
    for element in document.xpath(_RECIPIENT_PARTS):
        if element.getparent() is None:
            continue  # inside a part already dropped
        parent = element.getparent()
        if element.tag == "td" and parent.tag == "tr" and len(parent) == 1 and parent.getparent() is not None:
            element = parent
        element.drop_tree()
    return lxml.html.tostring(document, doctype="<!doctype html>", encoding="unicode")


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


# --- Campaign templates -------------------------------------------------------------

# Recipient values, filled in per recipient after the per-campaign render (``action_url``:
# the link a notice asks its one reader to follow, to confirm or to erase; not offered to
# staff templates).
RECIPIENT_FIELDS = ("name", "email", "unsubscribe_url", "view_url", "manage_url", "action_url")
_MARK = "@@mlr:{}@@"
MARKERS = {field: _MARK.format(field) for field in RECIPIENT_FIELDS}
_CLOSERS = set(",.!?;:")
# Sections a recipient's copy may leave out: one per event of a digest (mailer.interests).
SECTION_END = "@@mlr:end@@"


MAX_VARIANTS = 256  # variants of one part kept (distinct choices of events); more are made per copy


def section_start(event_id: int) -> str:
    return f"@@mlr:ev:{event_id}@@"


_SPLIT = re.compile("@@mlr:(" + "|".join(RECIPIENT_FIELDS) + r"|ev:\d+|end)@@")


# --- Limits on staff templates ----------------------------------------------------------
#
# Staff code runs in two fences. The sandbox below refuses, with a SecurityError naming it, the
# single expressions known to build huge values cheaply: repetition, powers, format widths
# (str.format, %, the format filter, strftime), padding and replacing (center, ljust, rjust,
# zfill, expandtabs, replace, indent), batches, lipsum; and it stops a render whose output
# passes the budget. What no single check sees (nested loops over long sequences, recursion,
# values built in {% set %} blocks) is stopped by the second fence: every render of staff
# templates runs in a forked child process (``compile_limited``) with a wall-clock deadline,
# a CPU-time limit and an address-space limit; the parent kills it when time is up. A blow-up
# costs the web worker at most the deadline, never its life (gunicorn's timeout is longer),
# and answers InvalidInput (a 400) naming the limit. A watchdog thread in the same process
# was rejected: it cannot interrupt one long C call ('x'.center(10**9)) nor bound memory.

MAX_WIDTH = 1000  # the widest field, padding or repetition count a template may ask for
MAX_VALUE = 100_000  # the longest string or list one expression may build
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d*)(?:\.(\*|\d*))?")
_STRFTIME = re.compile(r"%[-_0^#]*(\d+)")


class TemplateLimit(InvalidInput):
    """A staff template went past a render limit (time, output or memory)."""


@dataclass(frozen=True)
class Limits:
    seconds: float = 3.0
    output: int = 1024 * 1024  # characters of subject, HTML and text together
    memory: int = 256 * 1024 * 1024  # bytes the child may add to the parent's address space


def _too_wide(number: str | None) -> bool:
    return number == "*" or (bool(number) and int(number or 0) > MAX_WIDTH)


def _check_printf(template: str) -> None:
    for match in _PRINTF.finditer(template):
        if _too_wide(match.group(1)) or _too_wide(match.group(2)):
            raise SecurityError("a format width is too large")


def _check_format_spec(template: str) -> None:
    for _literal, _field, spec, _conversion in string.Formatter().parse(template):
        if spec:
            if "{" in spec:
                raise SecurityError("nested format fields are not allowed")
            if any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec)):
                raise SecurityError("a format width is too large")


def _check_size(size: int) -> None:
    if size > MAX_VALUE:
        raise SecurityError("the result would be too large")


def _str_method_check(name: str, text: str, args: tuple, kwargs: dict) -> None:
    """Refuse str methods whose result would be huge (the sandbox lets templates call them)."""
    if name in {"center", "ljust", "rjust", "zfill"} and args and isinstance(args[0], int):
        _check_size(args[0])
    elif name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else kwargs.get("tabsize", 8)
        _check_size(len(text) * max(1, int(size)))
    elif name == "replace" and len(args) >= 2 and isinstance(args[1], str):
        old, new = str(args[0]), args[1]
        count = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else len(text) + 1
        grows = max(0, len(new) - len(old))
        _check_size(len(text) + grows * min(count, len(text) + 1))
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)):
            _check_size(len(text) * len(items) + sum(len(str(item)) for item in items))


def _format_filter(value, *args, **kwargs):
    _check_printf(str(value))
    return jinja_filters.do_format(value, *args, **kwargs)


def _center_filter(value, width: int = 80):
    _check_size(int(width))
    return jinja_filters.do_center(value, width)


def _indent_filter(value, width=4, first=False, blank=False):
    pad = len(width) if isinstance(width, str) else int(width)
    if pad > MAX_WIDTH:
        raise SecurityError("an indent is too wide")
    _check_size(pad * (str(value).count("\n") + 1) + len(str(value)))
    return jinja_filters.do_indent(value, width, first, blank)


@pass_eval_context
def _replace_filter(eval_ctx, value, old, new, count=None):
    _str_method_check("replace", str(value), (old, str(new), count if count is not None else -1), {})
    return jinja_filters.do_replace(eval_ctx, value, old, new, count)


def _batch_filter(value, linecount, fill_with=None):
    if not 0 < int(linecount) <= MAX_WIDTH:
        raise SecurityError("a batch size is too large")
    return jinja_filters.do_batch(value, linecount, fill_with)


def _slice_filter(value, slices, fill_with=None):
    if not 0 < int(slices) <= MAX_WIDTH:
        raise SecurityError("too many slices")
    return jinja_filters.do_slice(value, slices, fill_with)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100):
    if not (0 <= n <= 20 and 0 <= min <= max <= 200):
        raise SecurityError("lipsum is limited to 20 paragraphs of 200 words")
    return generate_lorem_ipsum(n, html, min, max)


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing expressions that would build huge values (see above)."""

    intercepted_binops = frozenset({"*", "**", "%"})
    MAX_SIZE = MAX_VALUE

    def __init__(self, **options):
        super().__init__(**options)
        self.filters.update(format=_format_filter, center=_center_filter, indent=_indent_filter,
                            batch=_batch_filter, slice=_slice_filter, replace=_replace_filter)
        self.globals["lipsum"] = _lipsum

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 100:
            raise SecurityError("the exponent is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                        and len(seq) * times > self.MAX_SIZE:
                    raise SecurityError("the result would be too large")
        if operator == "%" and isinstance(left, str):
            _check_printf(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            _check_format_spec(value.__self__)
        return wrapper

    def call(__self, __context, __obj, *args, **kwargs):
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            _str_method_check(name, owner, args, kwargs)
        elif name == "strftime" and args and isinstance(args[0], str) \
                and any(int(n) > MAX_WIDTH for n in _STRFTIME.findall(args[0])):
            raise SecurityError("a format width is too large")
        return super().call(__context, __obj, *args, **kwargs)


sandbox = _Env(autoescape=True, undefined=StrictUndefined)
text_sandbox = _Env(autoescape=False, undefined=StrictUndefined)


class _Budget:
    """What a campaign's renders may still write, shared by its parts."""

    def __init__(self, characters: int):
        self.left = characters
        self.limit = characters

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise TemplateLimit("The template's output is larger than %(kb)s kB.", "html",
                                kb=self.limit // 1024)


def _sandbox_render(source: str, context: dict, what: str, env: _Env = sandbox,
                    budget: _Budget | None = None) -> str:
    """Render staff-written ``source`` within ``budget``; raises InvalidInput with the line of
    a mistake, TemplateLimit when the output is too large."""
    try:
        template = env.from_string(source)
        if budget is None:
            return template.render(context)
        parts = []
        for chunk in template.generate(context):
            budget.take(len(chunk))
            parts.append(chunk)
        return "".join(parts)
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
        # Sections: field index of each start -> (event id, index of its end); an unclosed
        # or nested start is not a section (its markers just vanish).
        self.sections: dict[int, tuple[int, int]] = {}
        self._variants: dict[frozenset[int] | None, Personalizer] = {}
        opened: int | None = None
        for index, field in enumerate(self.fields):
            if field.startswith("ev:"):
                opened = index
            elif field == "end" and opened is not None:
                self.sections[opened] = (int(self.fields[opened][3:]), index)
                opened = None

    def __call__(self, values: Mapping[str, str], events: frozenset[int] | None = None) -> str:
        """The part for one recipient; ``events``: the event sections to keep (None: all)."""
        if self.sections:
            return self._with_sections(values, events)
        out = [self.literals[0]]
        for field, literal in zip(self.fields, self.literals[1:], strict=True):
            value = values.get(field) or ""
            if not value and out[-1].endswith(" ") and literal[:1] in _CLOSERS:
                out[-1] = out[-1][:-1]  # "Dzień dobry {{ name }}," without a name
            out.append(str(escape(value)) if self.escape_values else value)
            out.append(literal)
        return "".join(out)

    def _with_sections(self, values: Mapping[str, str], events: frozenset[int] | None) -> str:
        """A copy with sections: each distinct choice of events is made once into a variant
        without section markers (the recipients of one campaign share a handful), then filled
        in as fast as a part without sections."""
        variant = self._variants.get(events)
        if variant is None:
            variant = Personalizer(self._select(events), self.escape_values)
            if len(self._variants) < MAX_VARIANTS:
                self._variants[events] = variant
        return variant(values)

    def _select(self, events: frozenset[int] | None) -> str:
        """The part with the sections of events outside ``events`` (None: none) left out and
        every section marker removed; recipient markers kept."""
        out = [self.literals[0]]
        index, count = 0, len(self.fields)
        while index < count:
            field = self.fields[index]
            if field.startswith("ev:") or field == "end":
                section = self.sections.get(index)
                if section is not None and events is not None and section[0] not in events:
                    index = section[1]  # leave the event out, up to its end marker
            else:
                out.append(MARKERS[field])
            out.append(self.literals[index + 1])
            index += 1
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

    def personalize(self, events: frozenset[int] | None = None, **values: str) -> Rendered:
        return Rendered(self.subject, self.html(values, events), self.text(values, events))


def compile_campaign(*, subject: str, preheader: str, layout_html: str, layout_text: str,
                     content_html: str, content_text: str, context: dict,
                     max_output: int | None = None) -> CompiledCampaign:
    """Render a campaign once: content inside its layout, CSS inlined, text part made
    (from the text sources, or from the HTML when they are empty). ``max_output``: the
    characters all parts may hold together. Raises InvalidInput when a template is broken,
    TemplateLimit past ``max_output``. Staff templates go through ``compile_limited``."""
    budget = _Budget(max_output) if max_output is not None else None
    recipient = {"name": MARKERS["name"], "email": MARKERS["email"]}
    base = {**context, "subject": subject, "preheader": preheader, "subscriber": recipient,
            "unsubscribe_url": MARKERS["unsubscribe_url"], "view_url": MARKERS["view_url"],
            "manage_url": MARKERS["manage_url"]}
    content = Markup(_sandbox_render(content_html, base, "content", sandbox, budget))
    html = inline_css(_sandbox_render(layout_html, {**base, "content": content}, "layout", sandbox, budget))
    if content_text.strip() and layout_text.strip():
        text_content = _sandbox_render(content_text, base, "text content", text_sandbox, budget)
        text = _sandbox_render(layout_text, {**base, "content": text_content}, "text layout",
                               text_sandbox, budget)
    else:
        text = html_to_text(html)
    if max_output is not None and len(subject) + len(html) + len(text) > max_output:
        raise TemplateLimit("The template's output is larger than %(kb)s kB.", "html", kb=max_output // 1024)
    return CompiledCampaign(subject, html, text)


def explain(exc: BaseException) -> InvalidInput:
    """Any failure of staff code (syntax, sandbox escape, a runtime error, a limit) as an
    InvalidInput with a clear message naming the field at fault."""
    if isinstance(exc, TemplateLimit):
        return exc
    cause = exc.__cause__ if isinstance(exc, InvalidInput) else exc
    if isinstance(cause, SecurityError):
        return InvalidInput("The template tries something that is not allowed in email templates "
                            "(%(detail)s).", "html", detail=str(cause))
    if isinstance(cause, TemplateSyntaxError):  # in words staff can act on, translatable
        return template_errors.invalid_input(cause, "html")
    if isinstance(cause, TemplateError):
        return InvalidInput("The template cannot be rendered: %(detail)s", "html", detail=str(cause))
    if isinstance(exc, InvalidInput):
        return exc
    if isinstance(exc, RecursionError):
        return InvalidInput("The template cannot be rendered: %(detail)s", "html",
                            detail="it calls itself too deeply")
    # staff code may divide by zero, index a missing item ...
    return InvalidInput("The template cannot be rendered: %(detail)s", "html",
                        detail=f"{type(exc).__name__}: {exc}"[:500])


# --- The hard fence: a child process ------------------------------------------------------

def _address_space() -> int:
    """This process's virtual memory size in bytes (the child's limit is counted from it)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(write_fd: int, limits: Limits, kwargs: dict) -> None:
    """In the forked child: limit itself, render, send the outcome, exit without cleanup."""
    try:
        gc.freeze()  # the parent's objects are never collected here (no finalizer runs twice)
        seconds = max(1, math.ceil(limits.seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
        room = _address_space() + limits.memory
        resource.setrlimit(resource.RLIMIT_AS, (room, room))
        try:
            compiled = compile_campaign(**kwargs, max_output=limits.output)
            outcome: tuple = ("ok", compiled.subject, compiled.html_source, compiled.text_source)
        except MemoryError:
            outcome = ("memory",)
        except BaseException as exc:  # everything staff code can raise, as a message
            error = explain(exc)
            outcome = ("error", type(error) is TemplateLimit, error.msgid, error.field, error.params)
        data = pickle.dumps(outcome)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:
        os._exit(3)
    os._exit(0)


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes before it closes the pipe, or None past the deadline."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _w, _x = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def compile_limited(limits: Limits, **kwargs) -> CompiledCampaign:
    """``compile_campaign`` in a forked child within ``limits``; raises InvalidInput (every
    mistake, explained) or TemplateLimit (time, output, memory)."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process: the child runs no threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(read_fd)
        _child(write_fd, limits, kwargs)
    os.close(write_fd)
    try:
        data = _read_all(read_fd, time.monotonic() + limits.seconds)
    finally:
        os.close(read_fd)
        if data is None:
            os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
    if data is None or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU):
        raise TemplateLimit("The template took longer than %(seconds)s seconds to render.", "html",
                            seconds=f"{limits.seconds:g}")
    if not data:
        raise TemplateLimit("The template needs more than %(mb)s MB of memory to render.", "html",
                            mb=limits.memory // (1024 * 1024))
    outcome = pickle.loads(data)
    if outcome[0] == "ok":
        return CompiledCampaign(*outcome[1:])
    if outcome[0] == "memory":
        raise TemplateLimit("The template needs more than %(mb)s MB of memory to render.", "html",
                            mb=limits.memory // (1024 * 1024))
    _kind, is_limit, msgid, field, params = outcome
    raise (TemplateLimit if is_limit else InvalidInput)(msgid, field, **params)
