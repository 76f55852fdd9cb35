"""kg.files: every write is all or nothing."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kg.errors import KGStoreError, OutputError
from kg.files import (
    atomic_directory,
    atomic_file,
    read_json,
    write_bytes,
    write_json,
    write_text,
)

from .conftest import REPO


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text(target, "first")
    write_text(target, "sécond")
    assert target.read_text(encoding="utf-8") == "sécond"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_json_and_bytes(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"name": "Pikachu é"})
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == {"name": "Pikachu é"}
    assert (tmp_path / "a.json").read_text(encoding="utf-8").endswith("\n")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_written_files_and_folders_get_the_umask_permissions_not_private_ones(
    tmp_path: Path,
) -> None:
    """A bundle or prediction file must be as readable as one written in place (tempfile's
    temporaries are 0600/0700, which a server running as another user could not read)."""
    import os

    from kg.files import atomic_directory

    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "new.txt", "x")
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "inside.txt").write_text("y", encoding="utf-8")
        existing = tmp_path / "kept.txt"
        existing.write_text("old", encoding="utf-8")
        existing.chmod(0o640)
        write_text(existing, "new")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755
    assert existing.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_safetensors_written_in_a_folder_get_the_umask_mode_too(
    tmp_path: Path, umask: int, mode: int
) -> None:
    """safetensors' save_file (and PEFT's save_pretrained through it) creates 0600 files: the
    bundle's weights were unreadable to a server running as another user."""
    import os

    import numpy as np
    from safetensors.numpy import save_file

    from kg.files import atomic_directory

    before = os.umask(umask)
    try:
        with atomic_directory(tmp_path / "bundle") as tmp:
            save_file({"w": np.zeros(3)}, str(tmp / "model.safetensors"))
    finally:
        os.umask(before)
    assert (tmp_path / "bundle" / "model.safetensors").stat().st_mode & 0o777 == mode


def test_read_json_reads_back_and_names_a_broken_file_and_its_fix(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    write_json(target, {"n": "é"})
    assert read_json(target, KGStoreError, "rebuild it") == {"n": "é"}
    target.write_text('{"n": ', encoding="utf-8")  # cut short
    with pytest.raises(KGStoreError, match=r"meta\.json is not valid JSON .*; rebuild it$"):
        read_json(target, KGStoreError, "rebuild it")
    with pytest.raises(KGStoreError, match=r"missing\.json is not valid JSON"):
        read_json(tmp_path / "missing.json", KGStoreError, "rebuild it")


# `kgfuse kg load` in a process that may write files of at most 4 KB (as a full disk would
# stop it: a write fails part-way, with EFBIG where a disk gives ENOSPC)
SMALL_FILES = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
sys.argv = ["kgfuse", *sys.argv[1:]]
from api.cli import main
main()
"""


def test_an_output_that_outgrows_the_room_left_is_named_not_its_temporary(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.nt"
    big.write_text(
        "".join(f"<http://x/e{i}> <http://x/r> <http://x/e{i + 1}> .\n" for i in range(500))
    )
    out = tmp_path / "compiled"
    result = subprocess.run(
        [sys.executable, "-c", SMALL_FILES, "kg", "load", str(big), "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot write {out}: File too large")
    assert ".tmp" not in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.nt"]  # nothing left behind


def test_a_full_disk_is_named_by_the_file_being_written(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    with pytest.raises(OutputError) as refused, atomic_file(target) as f:
        f.write("{")
        raise OSError(errno.ENOSPC, "No space left on device")  # as f.flush() would
    assert str(refused.value) == (
        f"cannot write {target}: No space left on device; free space or choose another output path"
    )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError), atomic_directory(tmp_path / "folder"):
        (tmp_path / "missing.txt").read_text()  # not a write problem: passed on as it is
    assert list(tmp_path.iterdir()) == []
