"""Files only their owner may read: generated tokens, the embedded Redis's password,
exports."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import structlog

__all__ = ["open_private", "read_private", "write_private"]

log = structlog.get_logger(__name__)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (mode 0600 from creation on)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_private(path: Path) -> str:
    """Read a file :func:`write_private` wrote; tighten its mode to 0600 if it was looser."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("file.mode_tightened", path=str(path), mode=oct(mode))
        path.chmod(0o600)
    return path.read_text(encoding="utf-8")


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing (truncated) with mode 0600, also when it existed with a
    looser mode: it is made 0600 before anything is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")
