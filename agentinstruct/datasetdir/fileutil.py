"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: reading the umask means setting it, and flipping it process-wide on every write would race
# with files other threads create meanwhile.
_UMASK = _read_umask()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    Example:
        >>> atomic_write(Path("/tmp/x.txt"), lambda p: p.write_text("hi"))
    """
    tmp = staging_file(path)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def staging_file(path: Path) -> Path:
    """A new, empty, hidden temp file beside ``path``, with the mode a plain write would give it: where a write
    that takes many steps (a data file streamed row group by row group) goes before ``os.replace`` puts it at
    ``path``.

    Example:
        >>> tmp = staging_file(Path("/tmp/x.txt"))
        >>> tmp.name.startswith(".x.txt."), tmp.stat().st_size
        (True, 0)
        >>> tmp.unlink()
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file 0600; a dataset dir is shared and served, so give it the usual umask-based mode.
    os.chmod(tmp_name, 0o666 & ~_UMASK)
    return Path(tmp_name)


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to disk, so a rename that follows never exposes a file a crash could empty."""
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes.

    Example:
        >>> len(sha256_file(Path("/etc/hostname")))
        64
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
