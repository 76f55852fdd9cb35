"""One writer per output folder: a second process that would write into a folder another one is
writing is refused, instead of the two mixing their checkpoints, metrics and bundles.

The lock is an exclusive ``flock`` on the folder's `LOCK_FILE`. The operating system releases it
when the process ends, however it ends (a crash or ``kill -9`` included), so a stopped run never
leaves a folder locked: the file may stay, the lock does not. Linux only, like the rest of
kgfuse's file handling.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kg.errors import OutputError

LOCK_FILE = ".kgfuse.lock"


@contextmanager
def folder_lock(folder: Path, what: str, fix: str) -> Iterator[None]:
    """Hold ``folder``'s lock meanwhile (``folder`` exists). Raises `OutputError` naming
    ``what`` holds it (a process id) and ``fix`` when another process does."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            by = f" (process {holder})" if holder.isdigit() else ""
            raise OutputError(f"{folder} is in use by {what}{by}; {fix}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def refuse_locked_folder(folder: Path, what: str, fix: str) -> None:
    """`folder_lock`'s refusal, checked now, if ``folder`` has a lock file: so that a second
    process stops before its set-up, not after. It holds nothing afterwards."""
    if (folder / LOCK_FILE).is_file():
        with folder_lock(folder, what, fix):
            pass
