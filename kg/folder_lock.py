"""One writer per output: a second process that would write an output another one is writing (a
run folder, a study, a predictions file) is refused, instead of the two mixing their work.

The lock is an exclusive ``flock`` on a lock file beside or inside the output. The operating
system releases it when the process ends, however it ends (a crash or ``kill -9`` included), so
a stopped writer never leaves an output locked. A writer that ends normally removes the file; one
that was killed leaves it, unlocked, and the next writer takes it over. Linux only, like the rest
of kgfuse's file handling.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from kg.errors import OutputError

LOCK_FILE = ".kgfuse.lock"  # a folder's lock file, inside it


@contextmanager
def output_lock(lock_file: Path, output: Path, what: str, fix: str) -> Iterator[None]:
    """Hold ``lock_file``'s lock meanwhile (its folder exists), for writing ``output``.

    Raises:
        OutputError: another process holds it, naming ``output``, ``what`` holds it (a process
            id) and ``fix``.
    """
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            by = f" (process {holder})" if holder.isdigit() else ""
            raise OutputError(f"{output} is in use by {what}{by}; {fix}") from None
        if _same_file(fd, lock_file):
            break
        os.close(fd)  # its last holder removed it after we opened it: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        lock_file.unlink(missing_ok=True)  # while still held: no one else can be holding it
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def folder_lock(folder: Path, what: str, fix: str) -> AbstractContextManager[None]:
    """`output_lock` of ``folder`` (it exists), with its lock file `LOCK_FILE` inside it."""
    return output_lock(folder / LOCK_FILE, folder, what, fix)


def refuse_locked_folder(folder: Path, what: str, fix: str) -> None:
    """`folder_lock`'s refusal, checked now, if ``folder`` has a lock file: so that a second
    writer stops before its set-up, not after. It holds nothing afterwards."""
    if (folder / LOCK_FILE).is_file():
        with folder_lock(folder, what, fix):
            pass
