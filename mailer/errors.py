"""Domain errors: what went wrong, as an English message id and its parameters.

The domain never speaks HTTP and never translates. The web layer maps each class to a
status once (``mailer.web.errors``) and translates ``msgid`` with ``params`` in the
language of the page; ``str(error)`` is the English text, for logs and the CLI.
"""

from typing import Any


class DomainError(Exception):
    """Base of every rule broken by input. ``msgid`` is a catalogue message id (English, with
    ``%(name)s`` placeholders filled from ``params``); ``field`` names the input at fault."""

    def __init__(self, msgid: str, field: str | None = None, **params: Any):
        self.msgid = msgid
        self.field = field
        self.params = params
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The English text: ``msgid`` with its parameters."""
        return self.msgid % self.params if self.params else self.msgid

    def __str__(self) -> str:
        return self.message


class InvalidInput(DomainError):
    """Malformed or out-of-range input. ``errors``: every mistake a validation found (this
    one first), when it checked every field (``FieldErrors``); else just this one."""

    all_errors: list["InvalidInput"]

    @property
    def errors(self) -> list["InvalidInput"]:
        return self.__dict__.get("all_errors") or [self]


class FieldErrors:
    """A validation that checks every field before it refuses, so that a form shows all its
    mistakes at once: ``check(function, ...)`` runs one check and keeps its InvalidInput
    (returning None), ``raise_if_any()`` raises the first one found, carrying them all."""

    def __init__(self) -> None:
        self.found: list[InvalidInput] = []

    def check(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except InvalidInput as exc:
            self.found.append(exc)
            return None

    def add(self, exc: InvalidInput) -> None:
        self.found.append(exc)

    def failed(self, *fields: str) -> bool:
        return any(exc.field in fields for exc in self.found)

    def raise_if_any(self) -> None:
        if self.found:
            first = self.found[0]
            first.all_errors = list(self.found)
            raise first


class NotFound(DomainError):
    """No such item."""


class Conflict(DomainError):
    """The request contradicts the current state (e.g. editing a sent campaign)."""


class BadToken(DomainError):
    """A token that is forged, tampered with, of another purpose, or already used."""


class ExpiredToken(BadToken):
    """A genuine token past its age; carries the payload so a new one can be offered."""

    def __init__(self, msgid: str, payload: Any = None, field: str | None = None, **params: Any):
        super().__init__(msgid, field, **params)
        self.payload = payload
