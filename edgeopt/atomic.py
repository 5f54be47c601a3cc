"""One way to write a file that is never seen half-written: beside it under a hidden name, then renamed."""
from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, fsync: bool = False) -> None:
    """``path`` holds either its old content or all of ``data``, whatever kills the writer. The temporary name is
    hidden (leading dot) so no glob of the folder's files picks it up; ``fsync`` also survives a power cut."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:  # open's default mode honours the umask (mkstemp's 0600 would not)
            fh.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
