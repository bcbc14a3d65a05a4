"""Staff pages: lists."""

from . import bp  # noqa: F401
