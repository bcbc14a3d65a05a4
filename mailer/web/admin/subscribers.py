"""Staff pages: subscribers."""

from . import bp  # noqa: F401
