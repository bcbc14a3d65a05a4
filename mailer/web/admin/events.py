"""Staff pages: events."""

from . import bp  # noqa: F401
