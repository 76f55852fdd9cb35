"""Errors of the linking layer."""

from kg.errors import KGFuseError


class LinkingError(KGFuseError):
    """The linker was misconfigured or handed input it refuses (e.g. a text over the limit)."""
