"""On-disk cache: content-addressed entries created once, atomically, under a file lock, and sealed.

Safe under ``pytest -n``: concurrent workers wait on the same lock and the loser finds the
entry already there.  A failed build leaves nothing behind (it writes to a temporary name and
renames only on success), so a cached entry is never half-written nor overwritten; what a killed
build left behind is removed by the next build of the same entry.  Every entry carries a seal (size and
sha256 of each file, written with it) checked when it is used: an entry whose bytes changed since is rebuilt
with a warning naming it, never reused.  A wait on a lock whose holder is stopped (Ctrl-Z) ends after
``EDGEOPT_LOCK_PATIENCE`` seconds (default 60) with an error naming the holder's pid.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout


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


SEAL = ".edgeopt-seal.json"
_NO_SEAL = "has no readable integrity record (written by an interrupted or older edgeopt)"


class CacheError(RuntimeError):
    """The cache cannot be used (not writable, locked by a stopped process); the message says which and why."""


class CacheWarning(UserWarning):
    """A cache entry failed its integrity check and was rebuilt."""


def _seal_path(path: Path) -> Path:
    return path / SEAL if path.is_dir() else path.with_name(f"{path.name}.seal.json")


def _contents(path: Path) -> dict[str, list]:
    """relative name -> [size, sha256] of every file of the entry (a file, or a directory's files)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.name != SEAL)
    return {("." if p == path else p.relative_to(path).as_posix()): [p.stat().st_size, file_sha256(p)] for p in files}


def _write_seal(entry: Path, seal: Path) -> None:
    tmp = seal.with_name(f".{seal.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_contents(entry), sort_keys=True))
    os.replace(tmp, seal)


@functools.lru_cache(maxsize=4096)
def _problem_cached(path: str, stamp: tuple) -> str | None:
    entry = Path(path)
    try:
        recorded = json.loads(_seal_path(entry).read_text())
    except (OSError, ValueError):
        return _NO_SEAL
    try:
        actual = {name: [size, None] for name, (size, _) in recorded.items()}  # sizes first: no hashing needed
        for name in recorded:
            f = entry / name if name != "." else entry
            actual[name][0] = f.stat().st_size
        if any(actual[n][0] != recorded[n][0] for n in recorded):
            bad = next(n for n in recorded if actual[n][0] != recorded[n][0])
            return f"{bad} is {actual[bad][0]} bytes, {recorded[bad][0]} when written"
        current = _contents(entry)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if current != recorded:
        bad = sorted(set(current) ^ set(recorded)) or [n for n in recorded if current.get(n) != recorded[n]]
        return f"{bad[0]} differs from what was written (sha256 changed, or files added or removed)"
    return None


def problem(path: Path) -> str | None:
    """Why the cache entry at ``path`` cannot be trusted, or None (checked once per process while unchanged)."""
    try:
        stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (path, _seal_path(path)))
    except OSError:
        return _NO_SEAL
    return _problem_cached(str(path), stamps)


def _remove(path: Path) -> None:
    seal = _seal_path(path)
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    seal.unlink(missing_ok=True)


def _lock(path: Path) -> FileLock:
    """The entry's lock, acquired; while waiting, a holder stopped for longer than the patience is an error."""
    lock, owner = FileLock(str(path) + ".lock"), Path(str(path) + ".owner.lock")
    patience = float(os.environ.get("EDGEOPT_LOCK_PATIENCE", "60"))
    stopped_since = None
    while True:
        try:
            lock.acquire(timeout=min(5.0, patience))
            break
        except Timeout:
            pid = owner.read_text().strip() if owner.is_file() else "?"
            if _process_state(pid) != "T":
                stopped_since = None
                continue  # the holder is working (a long build or evaluation): keep waiting
            stopped_since = stopped_since or time.monotonic()
            if time.monotonic() - stopped_since >= patience:
                raise CacheError(f"{path.name}: its lock {lock.lock_file} is held by process {pid}, which is stopped "
                                 f"(Ctrl-Z?); gave up after {patience:.0f} s. Resume or end that process, or use "
                                 "another EDGEOPT_CACHE") from None
    owner.write_text(str(os.getpid()))
    return lock


def _process_state(pid: str) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, D, T, ...), or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def get_or_create(path: Path, build: Callable[[Path], None]) -> Path:
    """Return ``path``, calling ``build(tmp)`` first if it does not exist yet or fails its integrity check.

    ``build`` writes a file or a directory at ``tmp``; it is sealed and renamed to ``path`` only on success.
    """
    path = Path(path)
    if path.exists() and problem(path) is None:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(path)
    except OSError as exc:
        raise CacheError(f"cache folder {path.parent} is not usable ({exc.strerror or exc}); set EDGEOPT_CACHE to "
                         "a writable folder") from None
    try:
        if path.exists():
            if (why := problem(path)) is None:
                return path
            warnings.warn(CacheWarning(f"cache entry {path} {why}: rebuilding it"), stacklevel=2)
            _remove(path)
        # Under the lock nobody else is building this entry: leftovers are from a killed run.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            if not stale.name[len(path.name) + 2:-4].isdigit():  # another entry whose name extends this one
                continue
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            build(tmp)
            # A directory carries its seal inside (renamed with it); a file's seal is written first, so whoever
            # sees the file also finds its seal.
            _write_seal(tmp, tmp / SEAL if tmp.is_dir() else _seal_path(path))
            os.replace(tmp, path)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            elif tmp.exists():
                tmp.unlink()
    finally:
        lock.release()
    return path
