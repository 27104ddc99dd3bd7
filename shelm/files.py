"""Writing files so that a reader never sees half of one, and where shelm keeps its per-user caches.

Every file shelm writes into a run directory or a cache is written to a temporary name beside it, flushed to disk
and renamed into place: a process killed at any moment leaves the previous version or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole (temporary file, fsync, rename), readable by other users of a shared folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from other users of a shared run folder
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """`obj` as indented JSON, written whole; NaN and infinities are refused (they are not JSON)."""
    write_atomic(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def cache_dir() -> Path:
    """shelm's per-user cache folder: `$XDG_CACHE_HOME/shelm`, else `~/.cache/shelm` (converted models, CLIP word
    databases). Everything in it can be deleted; it is rebuilt on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "shelm"
