"""Result files are written whole or not at all: into a temporary file beside the target,
then renamed over it (``os.replace`` is atomic on one file system). A crash mid-write
leaves the previous file, or none, never a truncated one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` writes the content to the temporary path; then it becomes ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: Path, data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_parquet(path: Path, frame) -> Path:
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
