"""Staff pages: dashboard."""

from . import bp  # noqa: F401
