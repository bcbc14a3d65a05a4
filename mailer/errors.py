"""Domain errors. The web layer maps them to 4xx answers; the domain never speaks HTTP."""


class DomainError(Exception):
    """Base of every rule broken by input; ``message`` is safe to show to the user."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """Malformed or out-of-range input."""

    status = 400


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    """The request contradicts the current state (e.g. editing a sent campaign)."""

    status = 409


class BadToken(DomainError):
    """A token that is forged, tampered with, of another purpose, or already used."""

    status = 400


class ExpiredToken(BadToken):
    """A genuine token past its age; carries the payload so a new one can be offered."""

    def __init__(self, message: str, payload=None):
        super().__init__(message)
        self.payload = payload
