"""On-disk cache: content-addressed entries created once, atomically, under a file lock.

Safe under ``pytest -n``: concurrent workers wait on the same lock and the loser finds the
entry already there.  A failed build leaves nothing behind (it writes to a temporary name and
renames only on success), so a cached entry is never half-written nor overwritten; what a killed
build left behind is removed by the next build of the same entry.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from filelock import FileLock


def cache_dir() -> Path:
    """``EDGEOPT_CACHE`` if set, else ``.edgeopt-cache`` in the current project."""
    return Path(os.environ.get("EDGEOPT_CACHE", ".edgeopt-cache")).resolve()


def digest(obj) -> str:
    """Stable sha256 of a JSON-serialisable object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.cache
def source_digest(package_dir: str | os.PathLike, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over every ``.py`` file under ``package_dir`` (relative path and content), read once per process,
    leaving out the relative paths (files or folders) in ``exclude``.

    Part of the key of a cached result that the package's own code computed: any change to that code
    invalidates it.
    """
    root = Path(package_dir)
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def get_or_create(path: Path, build: Callable[[Path], None]) -> Path:
    """Return ``path``, calling ``build(tmp)`` first if it does not exist yet.

    ``build`` writes a file or a directory at ``tmp``; it is renamed to ``path`` only on success.
    """
    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            return path
        # Under the lock nobody else is building this entry: leftovers are from a killed run.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            if not stale.name[len(path.name) + 2:-4].isdigit():  # another entry whose name extends this one
                continue
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            build(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()
    return path
