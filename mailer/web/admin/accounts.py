"""Staff pages: accounts."""

from . import bp  # noqa: F401
