"""Progress bars that show in a terminal and stay silent in CI or when output is captured."""
from __future__ import annotations

import os
import sys


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable, desc: str = "", total: int | None = None):
    if not enabled():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)
