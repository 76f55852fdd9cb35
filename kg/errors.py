"""Errors a user can act on.

Every error names what went wrong, the value received and how to fix it. `KGFuseError` is the
root of all kgfuse errors: the CLI turns it into one line and a non-zero exit, the API into a 4xx
JSON body. `assert` is kept for internal invariants only.
"""

from __future__ import annotations

from pathlib import Path


class KGFuseError(Exception):
    """Base class of every error kgfuse raises on purpose (bad input, missing files, ...)."""


class KGLoadError(KGFuseError):
    """A triples file could not be read.

    Args:
        message: what was wrong and what was expected.
        path: the file, when one is to blame.
        line: 1-based line number inside that file, when known.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class KGStoreError(KGFuseError):
    """A compiled KG folder is missing, incomplete, corrupt or of another format version."""


class OutputError(KGStoreError, OSError):
    """An output file or folder cannot be written (a file where a folder must be, no
    permission, a read-only or full disk). Also an `OSError`, as the error it replaces, so
    code that handles a failed write as one keeps doing so."""


class InvalidIRIError(KGFuseError, ValueError):
    """A string given as an IRI is not one, so no SPARQL query can name it."""


class KGReadOnlyError(KGFuseError):
    """The KG cannot be changed here (it lives in a triple store that kgfuse only reads)."""


class EntityNotFoundError(KGFuseError, KeyError):
    """No entity matches an IRI or a label."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class AmbiguousEntityError(KGFuseError):
    """A label names several entities; the caller must pass an IRI."""
