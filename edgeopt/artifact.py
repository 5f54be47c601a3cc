"""What a recipe produced: a file on disk in one format, with the recipe and the hash of its inputs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

FORMATS = ("torch", "torchscript", "onnx")


@dataclass(frozen=True)
class Artifact:
    """A built model variant.

    ``path`` is the one file a deployment would ship.  ``factory`` is set for the ``torch`` format
    only: the file is a state dict, and the network definition comes from the model's code.
    """

    model: str
    variant: str
    format: str
    path: Path
    key: str
    recipe: Any
    factory: Callable | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown artifact format {self.format!r}; expected one of {FORMATS}")

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    @property
    def id(self) -> str:
        return f"{self.model}-{self.variant}"


def write_meta(directory: Path, **meta) -> None:
    (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))


def read_meta(directory: Path) -> dict:
    return json.loads((directory / "meta.json").read_text())
