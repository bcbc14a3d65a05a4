"""Staff pages: outbox."""

from . import bp  # noqa: F401
