"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of either.

Everything kgfuse writes for later reading (compiled KGs, bundles, indexes, caches, reports,
prediction files) goes through this module. Each writer assembles its output under a temporary
name beside the target, in the same folder and so on the same file system, and renames it into
place only when the write succeeded; on any error the temporary is removed and the target is left
as it was. `read_json` reads a JSON file back, with an error that names the file and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from safetensors import SafetensorError

from kg.errors import KGFuseError, OutputError


@contextmanager
def atomic_file(
    path: str | Path, mode: Literal["w", "wb"] = "w", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Yield a file opened for writing (UTF-8 text for ``"w"``, bytes for ``"wb"``); on
    success it replaces ``path``, on error it vanishes. The parent folder is created."""
    path = Path(path)
    _refuse_unwritable_file_path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _exclusive(
            path, lambda name: os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        )
    try:
        f: IO[Any] = (
            os.fdopen(fd, "wb")
            if mode == "wb"
            else os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        )
        with _named_as(path), f:
            if path.exists():  # a replaced file keeps its permissions, as an in-place write would
                os.chmod(f.fileno(), stat.S_IMODE(path.stat().st_mode))
            yield f
        with writing(path):
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path) as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path, "wb") as f:
        f.write(data)


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (UTF-8, non-ASCII kept, a final newline) to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def as_path(value: object, what: str) -> Path:
    """``value`` as a `Path`; a `TypeError` naming ``what`` when it is not a str or a path
    (a list of paths, a graph, None...)."""
    if isinstance(value, str | os.PathLike) and not isinstance(os.fspath(value), bytes):
        return Path(value)
    raise TypeError(
        f"{what} is a path (a str or pathlib.Path), not {type(value).__name__} {value!r}"
    )


def refuse_foreign_folder(target: str | Path, markers: tuple[str, ...], what: str) -> None:
    """Refuse to replace ``target`` when it is a folder that holds files but none of
    ``markers`` (the file every ``what`` holds): an atomic write replaces the whole folder, and
    a user's files in it would be lost. An empty folder, or an older ``what``, may be replaced.

    Raises:
        OutputError: naming the folder, a few of its files and the fix.
    """
    target = Path(target)
    if not target.is_dir() or any((target / m).is_file() for m in markers):
        return
    found = sorted(p.name for p in target.iterdir())
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise OutputError(
            f"{target} holds other files ({shown}), not {what}; writing {what} there would "
            f"replace the whole folder: choose a new or empty folder, e.g. {target / 'out'}"
        )


def read_json(path: Path, error: type[KGFuseError], fix: str) -> Any:
    """The JSON value in ``path`` (a file kgfuse wrote, say with `write_json`).

    Raises:
        error: ``path`` cannot be read or is not JSON, naming the file, the reason and ``fix``.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: JSON, or a 5,000-digit int
        raise error(f"{path} is not valid JSON ({e}); {fix}") from e


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target``, on error it vanishes.

    An existing ``target`` is moved aside first and removed only once the new folder is in
    place, so a failed rename puts the old one back."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists and is not a folder; choose another output path")
    _refuse_file_in_the_way(target.parent, target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp, _ = _exclusive(target, lambda name: os.mkdir(name, 0o777))
    try:
        with _named_as(target):
            yield tmp
        _umask_private_files(tmp)
        old = None
        if target.exists():
            if not target.is_dir():
                raise OutputError(
                    f"{target} exists and is not a folder; choose another output path"
                )
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
        try:
            tmp.rename(target)
        except BaseException:
            if old is not None:
                old.rename(target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _current_umask() -> int:
    """The process's umask, read from /proc where it can be (setting it to read it back races
    with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _umask_private_files(folder: Path) -> None:
    """Give the files that a library created private (safetensors' ``save_file`` and so PEFT's
    ``save_pretrained`` write 0600) the mode the umask gives any other file: a bundle or index
    built by one user is read by a server running as another. With umask 077 they stay 0600."""
    mode = 0o666 & ~_current_umask()
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 != mode:
                os.chmod(path, mode)


T = TypeVar("T")


def make_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) unless it exists; ``path``.

    Raises:
        OutputError: it cannot be made (a file stands in its way, no permission, a read-only
            file system), naming the folder, the reason and the fix.
    """
    path = Path(path)
    _refuse_file_in_the_way(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def check_folder_writable(path: str | Path) -> None:
    """Refuse, before any work, an output folder that could not be made later: ``path`` or
    a folder above it is a file, or the nearest existing folder above it cannot be written.

    Raises:
        OutputError: naming the folder, the reason and the fix.
    """
    path = Path(path)
    _refuse_file_in_the_way(path)
    _refuse_unwritable(path)


def check_file_writable(path: str | Path) -> None:
    """Refuse, before any work, an output file that could not be written later: ``path`` is a
    folder, a folder above it is a file, or the nearest existing folder cannot be written.

    Raises:
        OutputError: naming the file, the reason and the fix.
    """
    path = Path(path)
    _refuse_unwritable_file_path(path)
    _refuse_unwritable(path)


def _refuse_unwritable_file_path(path: Path) -> None:
    """An `OutputError` when no file can be written at ``path``: it is a folder, or a folder
    above it is a file."""
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; choose a file name")
    _refuse_file_in_the_way(path.parent, path)


def _refuse_unwritable(path: Path) -> None:
    nearest = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {path}: {nearest} is not writable; choose a folder you may "
            "write to, or change its permissions"
        )


def _refuse_file_in_the_way(folder: Path, output: Path | None = None) -> None:
    """An `OutputError` naming ``output`` (default: ``folder``) when ``folder`` or one above it
    exists as something other than a folder (so no folder can be made there)."""
    output = output or folder
    blocker = _file_in_the_way(folder)
    if blocker is not None:
        where = "it" if blocker == output else str(blocker)
        raise OutputError(
            f"cannot write {output}: {where} is a file, not a folder; choose another output path"
        )


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest of ``folder`` and the folders above it that exists, when it is not a folder
    (so ``folder`` cannot be made); None when that one is a folder."""
    nearest = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return None if nearest is None or nearest.is_dir() else nearest


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a file-system error met while creating ``path`` into an `OutputError` that names it
    and what to do (the parts of a path that are files, a permission, a read-only disk)."""
    try:
        yield
    except OutputError:
        raise  # named already, by an inner write
    except OSError as e:
        raise OutputError(f"cannot write {path}: {_write_problem(path, e)}") from None


# errors of a full disk or quota: met while a temporary is filled, they concern its output
OUT_OF_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def _named_as(output: Path) -> Iterator[None]:
    """A full disk met while the temporary of ``output`` is written is an `OutputError` naming
    ``output`` and the fix; the temporary's hidden name (``.out.1f2e.tmp``) meant nothing to
    the user, and it is gone by the time they read the message."""
    try:
        yield
    except OutputError:
        raise  # named already, by an inner write
    except OSError as e:
        if e.errno in OUT_OF_ROOM:
            raise OutputError(f"cannot write {output}: {_write_problem(output, e)}") from None
        raise
    except SafetensorError as e:  # its writer's I/O errors are no OSError: "... (os error 28)"
        code = re.search(r"\(os error (\d+)\)", str(e))
        if code is None or int(code[1]) not in OUT_OF_ROOM:
            raise
        error = OSError(int(code[1]), os.strerror(int(code[1])))
        raise OutputError(f"cannot write {output}: {_write_problem(output, error)}") from None


def _write_problem(path: Path, error: OSError) -> str:
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        return f"{blocker} is a file, not a folder; choose another output path"
    if isinstance(error, IsADirectoryError) or path.is_dir():
        return "it is a folder; choose another output path"
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        return f"{reason}; choose a folder you may write to, or change its permissions"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{reason}; free space or choose another output path"
    return f"{reason}; choose another output path"


def _exclusive(target: Path, create: Callable[[Path], T]) -> tuple[Path, T]:
    """Create a fresh temporary beside ``target`` with ``create`` (which must refuse an existing
    name). Unlike tempfile's, which are private (0600/0700), it gets the permissions the umask
    gives any new file or folder, so what is renamed into place is as readable as a plain write."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, create(tmp)
        except FileExistsError:
            continue


def marked_block(text: str, begin: str, end: str, body: str, source: str = "the text") -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` replaced by ``body``
    (generated README tables); a `KGFuseError` names ``source`` and the markers it lacks."""
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise KGFuseError(f"{source} has no {begin} ... {end} block to rewrite: add the markers")
    return f"{head}{begin}\n{body}{end}{tail}"


def rewrite_marked_block(path: str | Path, begin: str, end: str, body: str) -> None:
    """Replace the block between ``begin`` and ``end`` in the file ``path``, atomically."""
    path = Path(path)
    if not path.is_file():
        raise KGFuseError(f"{path} not found")
    text = path.read_text(encoding="utf-8")
    write_text(path, marked_block(text, begin, end, body, str(path)))
