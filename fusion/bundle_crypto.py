"""Encrypted bundles: one ``.kgfe`` file holding a bundle folder, sealed with AES-256-GCM.

The file (all integers big-endian)::

    header, 60 bytes
      magic          8   b"\\x89KGFENC\\n" (the high byte and newline catch a text-mode copy)
      version        1   1
      reserved       1   0
      chunk_size     4   plaintext bytes per chunk (1 MiB; a reader accepts 1 KiB to 16 MiB)
      key_id         8   SHA-256("kgfuse-bundle-key-id" || key)[:8]: names the key, so a wrong
                         one is told apart from a damaged file
      salt          16   random per file: the file key is HKDF-SHA256(key, salt)
      nonce_prefix   6   random per file
      header_tag    16   HMAC-SHA256(file MAC key, the 44 bytes before)[:16]
    chunks
      AES-256-GCM(file key, nonce, plaintext chunk, aad = header || last) || 16-byte tag
      nonce = nonce_prefix || counter (u40, from 0) || last (1 byte: 1 on the final chunk)

The plaintext is an uncompressed POSIX (pax) tar of ``bundle.json`` and every file its manifest lists
(fusion/manifest.py), in manifest order: regular files only, so extraction writes no more bytes
than the file holds (no decompression bomb) and creates no link, device or path outside the
output. Every chunk but the last holds exactly ``chunk_size`` bytes; the last holds fewer (maybe
none). This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015): a chunk moved,
dropped, repeated or appended, a truncated file, a changed header each fail a tag, and no chunk
is trusted before the whole file was: decryption writes into a temporary folder that replaces
the output only after the last chunk authenticated and the manifest matched. Memory holds a
chunk and a tar buffer (a few MiB), whatever the bundle's size.

The key is 32 random bytes, stored as one line of base64 (`generate_key`, ``kgfuse bundle
keygen``); commands read it from ``--key-file`` or the ``KGFUSE_BUNDLE_KEY`` variable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import os
import secrets
import shutil
import struct
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fusion.manifest import META_FILE, first_mismatch, is_manifest
from kg.errors import KGFuseError
from kg.files import atomic_directory, atomic_file, writing
from kg.stop_signals import raising_on_stop_signals

MAGIC = b"\x89KGFENC\n"
VERSION = 1
KEY_ENV = "KGFUSE_BUNDLE_KEY"
KEY_BYTES = 32
CHUNK_SIZE = 1 << 20
MIN_CHUNK, MAX_CHUNK = 1 << 10, 1 << 24  # a reader's bounds: no header makes it allocate more
TAG = 16
_FIELDS = struct.Struct(">8sBBI8s16s6s")  # magic .. nonce_prefix: what header_tag covers
HEADER_SIZE = _FIELDS.size + TAG
_MAX_COUNTER = (1 << 40) - 1
KEYGEN = "make one with `kgfuse bundle keygen -o KEYFILE`"
log = logging.getLogger("kgfuse.bundle")


class BundleCryptoError(KGFuseError):
    """An encrypted bundle, its key or its output cannot be used; the message names the fix."""


class Header(NamedTuple):
    """The fixed fields of a ``.kgfe`` file (see the module docstring)."""

    chunk_size: int
    key_id: bytes
    salt: bytes
    nonce_prefix: bytes

    def pack(self, mac_key: bytes) -> bytes:
        fields = _FIELDS.pack(
            MAGIC, VERSION, 0, self.chunk_size, self.key_id, self.salt, self.nonce_prefix
        )
        return fields + hmac.new(mac_key, fields, "sha256").digest()[:TAG]


# ----------------------------------------------------------------------------------- keys


def generate_key() -> str:
    """A fresh key: 32 random bytes as base64 (44 characters)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_id(key: bytes) -> bytes:
    """The 8 bytes that name ``key`` in a file's header (shown as hex by the commands)."""
    return hashlib.sha256(b"kgfuse-bundle-key-id" + key).digest()[:8]


def parse_key(text: str, source: str) -> bytes:
    """The 32 bytes of a base64 key; ``source`` names where it came from. The key is never shown.

    Raises:
        BundleCryptoError: not base64, or not 32 bytes."""
    try:
        key = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BundleCryptoError(f"the bundle key in {source} is not base64; {KEYGEN}") from None
    if len(key) != KEY_BYTES:
        raise BundleCryptoError(
            f"the bundle key in {source} is {len(key)} bytes, not {KEY_BYTES} (AES-256); {KEYGEN}"
        )
    return key


def read_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> bytes:
    """The key from ``key_file`` if given, else from the ``KGFUSE_BUNDLE_KEY`` variable.

    Raises:
        BundleCryptoError: no key given, an unreadable file, or a malformed key."""
    environ = os.environ if environ is None else environ
    if key_file is not None:
        try:
            text = Path(key_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not ASCII text"
            raise BundleCryptoError(f"cannot read the key file {key_file}: {why}") from None
        return parse_key(text, str(key_file))
    if environ.get(KEY_ENV):
        return parse_key(environ[KEY_ENV], KEY_ENV)
    raise BundleCryptoError(
        f"no bundle key given: pass --key-file KEYFILE or set {KEY_ENV} (base64); {KEYGEN}"
    )


def write_key(path: Path, force: bool = False) -> bytes:
    """Write a new key to ``path`` (readable by its owner only, 0600); its key id.

    Raises:
        BundleCryptoError: ``path`` exists and ``force`` is off."""
    _refuse_existing(path, force)
    text = generate_key()
    with writing(path), atomic_file(path) as f:
        os.fchmod(f.fileno(), 0o600)  # before the key is written (a replaced key's mode too)
        f.write(text + "\n")
    return key_id(base64.b64decode(text))


def _derive(key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """The file's encryption key and header MAC key."""
    okm = HKDF(hashes.SHA256(), 64, salt, b"kgfuse-bundle v1").derive(key)
    return okm[:32], okm[32:]


# ----------------------------------------------------------------------------------- header


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` is a file that starts with the ``.kgfe`` magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_header(path: Path, f: IO[bytes], key: bytes) -> tuple[bytes, bytes]:
    """Check the header of ``f`` against ``key``; the raw header and the file key.

    Raises:
        BundleCryptoError: not a ``.kgfe`` file, another version, another key, or a damaged
            header."""
    raw = f.read(HEADER_SIZE)
    if raw[: len(MAGIC)] != MAGIC:
        raise BundleCryptoError(
            f"{path} is not an encrypted bundle (it does not start with the .kgfe magic); "
            "make one with `kgfuse bundle encrypt BUNDLE -o FILE.kgfe`"
        )
    if len(raw) < HEADER_SIZE:
        raise BundleCryptoError(f"{path} is truncated inside its header; copy it again")
    _, version, _, chunk_size, stored_id, salt, _ = _FIELDS.unpack(raw[: _FIELDS.size])
    if version != VERSION:
        raise BundleCryptoError(
            f"{path} is encrypted bundle format version {version}; this kgfuse reads version "
            f"{VERSION}: decrypt it with the kgfuse that wrote it"
        )
    if stored_id != key_id(key):
        raise BundleCryptoError(
            f"wrong key for {path}: it was encrypted with key id {stored_id.hex()}, the key given "
            f"has id {key_id(key).hex()}; give the key it was encrypted with (--key-file or "
            f"{KEY_ENV})"
        )
    file_key, mac_key = _derive(key, salt)
    expected = hmac.new(mac_key, raw[: _FIELDS.size], "sha256").digest()[:TAG]
    if not (MIN_CHUNK <= chunk_size <= MAX_CHUNK) or not hmac.compare_digest(
        expected, raw[_FIELDS.size :]
    ):
        raise BundleCryptoError(f"{path}: its header is damaged or was modified; copy it again")
    return raw, file_key


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(5, "big") + (b"\x01" if last else b"\x00")


# ----------------------------------------------------------------------------------- streams


class _SealingWriter(io.RawIOBase):
    """A write-only stream that seals what it is given into ``out``, chunk by chunk."""

    def __init__(self, out: IO[bytes], header: bytes, file_key: bytes, prefix: bytes, size: int):
        self.out, self.header, self.prefix, self.size = out, header, prefix, size
        self.aead = AESGCM(file_key)
        self.buffer = bytearray()
        self.counter = 0
        out.write(header)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.buffer += data
        while len(self.buffer) >= self.size + 1:  # a full chunk is never the last one
            self._seal(bytes(self.buffer[: self.size]), last=False)
            del self.buffer[: self.size]
        return len(data)

    def finish(self) -> None:
        """Seal what is left as the last chunk (shorter than ``size``; maybe empty)."""
        if len(self.buffer) == self.size:
            self._seal(bytes(self.buffer), last=False)
            self.buffer.clear()
        self._seal(bytes(self.buffer), last=True)

    def _seal(self, chunk: bytes, last: bool) -> None:
        if self.counter > _MAX_COUNTER:
            raise BundleCryptoError("the bundle is too large to encrypt (over 2^40 chunks)")
        aad = self.header + (b"\x01" if last else b"\x00")
        self.out.write(self.aead.encrypt(_nonce(self.prefix, self.counter, last), chunk, aad))
        self.counter += 1


class _OpeningReader(io.RawIOBase):
    """A read-only stream of the plaintext of an encrypted file, each chunk checked as read;
    `done` tells whether the last chunk was reached and authenticated."""

    def __init__(self, path: Path, f: IO[bytes], header: bytes, file_key: bytes):
        self.path, self.f, self.header = path, f, header
        self.prefix = header[_FIELDS.size - 6 : _FIELDS.size]
        self.size = _FIELDS.unpack(header[: _FIELDS.size])[3]
        self.aead = AESGCM(file_key)
        self.pending = memoryview(b"")  # the opened chunk's bytes not yet read: no copy per read
        self.counter = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.pending and not self.done:
            self.pending = memoryview(self._open_next())
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def _open_next(self) -> bytes:
        sealed = self.f.read(self.size + TAG)
        last = len(sealed) < self.size + TAG
        if len(sealed) < TAG:
            raise self._damaged("it is truncated")
        aad = self.header + (b"\x01" if last else b"\x00")
        try:
            plain = self.aead.decrypt(_nonce(self.prefix, self.counter, last), sealed, aad)
        except InvalidTag:
            what = f"chunk {self.counter} fails its authentication tag"
            raise self._damaged(
                f"{what}: cut short, extended or changed" if last else what
            ) from None
        self.counter += 1
        self.done = last
        return plain

    def finish(self) -> None:
        """Read to the end (the tar's padding): the last chunk must come, and nothing after."""
        while not self.done:
            self._open_next()
        if self.f.read(1):
            raise self._damaged("it holds data after its last chunk")

    def _damaged(self, what: str) -> BundleCryptoError:
        return BundleCryptoError(
            f"{self.path} is damaged or was modified ({what}); nothing was written: copy it "
            "again from its source, or encrypt the bundle again"
        )


# ----------------------------------------------------------------------------------- commands


@contextmanager
def exit_on_stop_signals() -> Iterator[None]:
    """A signal that would end the process outright (SIGHUP when the terminal closes,
    SIGTERM, ...) raises SystemExit meanwhile, so cleanup runs instead of a decrypted bundle
    (or a half-written file) being left behind (`kg.stop_signals.raising_on_stop_signals`)."""
    with raising_on_stop_signals(lambda signum: SystemExit(128 + signum)):
        yield


def _refuse_existing(path: Path, force: bool) -> None:
    if (path.exists() or path.is_symlink()) and not force:
        raise BundleCryptoError(f"{path} exists; choose another output or pass --force")


def _bundle_files(folder: Path) -> list[str]:
    """``bundle.json`` and every file its manifest lists, after checking them against it."""
    meta_path = folder / META_FILE
    if not folder.is_dir() or not meta_path.is_file():
        raise BundleCryptoError(
            f"{folder} is not a bundle folder (no {META_FILE}); give a folder written by "
            "`kgfuse train` or `kgfuse export`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleCryptoError(f"{meta_path} is not readable JSON ({e}); train it again") from None
    manifest = meta.get("files") if isinstance(meta, dict) else None
    if not is_manifest(manifest):
        raise BundleCryptoError(
            f"{meta_path} lists no file checksums, so the bundle cannot be checked before it is "
            f"encrypted; write a checked copy with `kgfuse export {folder} -o NEW`"
        )
    assert isinstance(manifest, dict)
    bad = first_mismatch(folder, manifest)
    if bad is not None:
        raise BundleCryptoError(
            f"{folder / bad.path} is {bad.problem} against bundle.json; encrypt a sound bundle "
            "(`kgfuse bundle verify` names the problem)"
        )
    return [META_FILE, *manifest]


def encrypt_bundle(
    folder: Path, out: Path, key: bytes, force: bool = False, chunk_size: int = CHUNK_SIZE
) -> int:
    """Write ``folder`` (a checked bundle) encrypted to ``out``, atomically; the bytes written.

    Raises:
        BundleCryptoError: ``folder`` is not a sound bundle, or ``out`` exists without ``force``.
    """
    folder, out = Path(folder), Path(out)
    if is_encrypted(folder):
        raise BundleCryptoError(f"{folder} is already an encrypted bundle")
    names = _bundle_files(folder)
    _refuse_existing(out, force)
    salt, prefix = secrets.token_bytes(16), secrets.token_bytes(6)
    file_key, mac_key = _derive(key, salt)
    header = Header(chunk_size, key_id(key), salt, prefix).pack(mac_key)
    with exit_on_stop_signals(), writing(out), atomic_file(out, "wb") as f:
        sealing = _SealingWriter(f, header, file_key, prefix, chunk_size)
        with tarfile.open(
            fileobj=sealing, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK_SIZE
        ) as tar:
            for name in names:
                path = folder / name
                info = tarfile.TarInfo(name)
                info.size, info.mode = path.stat().st_size, 0o644
                with path.open("rb") as src:
                    tar.addfile(info, src)
        sealing.finish()
    return out.stat().st_size


def _extract(reader: _OpeningReader, dest: Path) -> None:
    """Unpack the plaintext tar into ``dest``: regular files under it, nothing else."""
    with tarfile.open(fileobj=reader, mode="r|", bufsize=CHUNK_SIZE) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isreg() or member.name.startswith("/") or ".." in parts or not parts:
                raise BundleCryptoError(
                    f"{reader.path} holds {member.name!r}, which is not a plain file of a bundle; "
                    "it was not written by `kgfuse bundle encrypt`"
                )
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            with open(target, "xb") as out:
                shutil.copyfileobj(source, out, CHUNK_SIZE)
    reader.finish()


def _check_manifest(path: Path, dest: Path) -> None:
    """The decrypted bundle matches its own manifest (`kgfuse bundle verify` would pass)."""
    try:
        meta = json.loads((dest / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    manifest = meta.get("files") if isinstance(meta, dict) else None
    if not is_manifest(manifest) or first_mismatch(dest, manifest) is not None:  # type: ignore[arg-type]
        raise BundleCryptoError(
            f"{path} decrypts to a bundle whose files do not match its bundle.json; encrypt the "
            "bundle again from a sound copy"
        )


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    """``path`` open for reading; a file that cannot be opened is a `BundleCryptoError`."""
    try:
        f = path.open("rb")
    except OSError as e:
        raise BundleCryptoError(f"cannot read {path}: {e.strerror}") from None
    with f:
        yield f


def decrypt_into(path: Path, key: bytes, dest: Path, check: bool = True) -> None:
    """Decrypt ``path`` into the empty folder ``dest`` and (``check``) the bundle's manifest
    there. On an error ``dest`` may hold part of the bundle: callers write into a temporary
    folder.

    Raises:
        BundleCryptoError: not an encrypted bundle, a wrong key, a damaged file."""
    if path.is_dir():
        raise BundleCryptoError(f"{path} is not an encrypted bundle but a folder: use it as it is")
    with _opened(path) as f:
        header, file_key = read_header(path, f, key)
        try:
            _extract(_OpeningReader(path, f, header, file_key), dest)
        except (tarfile.TarError, FileExistsError) as e:  # authentic, yet not what we write
            raise BundleCryptoError(f"{path} holds no bundle archive ({e})") from None
    if check:
        _check_manifest(path, dest)


def decrypt_bundle(path: Path, out: Path, key: bytes, force: bool = False) -> None:
    """Decrypt ``path`` to the bundle folder ``out``, atomically (nothing is left on an error).

    Raises:
        BundleCryptoError: see `decrypt_into`; ``out`` exists without ``force``."""
    path, out = Path(path), Path(out)
    _refuse_existing(out, force)
    with exit_on_stop_signals(), writing(out), atomic_directory(out) as tmp:
        decrypt_into(path, key, tmp)


def private_tmp_root(need: int = 0) -> Path | None:
    """Where plaintext may lie briefly: /dev/shm (RAM) when writable with ``need`` bytes free
    (a container's is often 64 MB), else None: the system's temporary folder."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK | os.X_OK)):
        return None
    return shm if shutil.disk_usage(shm).free > need else None


@contextmanager
def decrypted_bundle(path: Path, key: bytes) -> Iterator[Path]:
    """Yield the bundle ``path`` decrypted into a private (0700) temporary folder, RAM-backed
    when /dev/shm has room (else the system's temporary folder, with a warning); the folder is
    removed on leaving, whatever happened. The manifest is left to the loader, which checks it
    anyway (`fusion.bundle.load_bundle`).

    Raises:
        BundleCryptoError: see `decrypt_into`; no room to decrypt."""
    need = path.stat().st_size
    root = private_tmp_root(need)
    if root is None:
        log.warning(
            "decrypting %s into %s: /dev/shm is missing or has under %d MB free, so the "
            "plaintext may touch a disk until it is loaded (give the container more shared "
            "memory, e.g. docker --shm-size)",
            path,
            tempfile.gettempdir(),
            need // 1_000_000 + 1,
        )
    with exit_on_stop_signals():  # also while the caller loads from the folder
        tmp = Path(tempfile.mkdtemp(prefix="kgfuse-bundle-", dir=root))
        try:
            try:
                decrypt_into(path, key, tmp, check=False)
            except OSError as e:
                raise BundleCryptoError(
                    f"cannot decrypt {path} into {tmp.parent}: {e.strerror or e}; free space "
                    "there, or point TMPDIR at a private folder with room"
                ) from None
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
