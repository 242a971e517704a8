"""Searching the files a process wrote for copies of secret bytes."""

from __future__ import annotations

from pathlib import Path

__all__ = ["holding"]


def holding(directory: Path, needles: list[bytes]) -> list[tuple[Path, bytes]]:
    """``(file, needle)`` for every needle found in any file under ``directory``.

    A file that goes away between listing and reading (a temporary file of a rewrite or a
    save in progress, renamed into place) holds nothing any more and is passed over; its
    content is searched again under its final name on the next call.
    """
    found: list[tuple[Path, bytes]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            continue
        found += [(path, needle) for needle in needles if needle in content]
    return found
