"""Image datasets: ImageFolder trees decoded once, cached on disk, split into evaluation and calibration.

A dataset is described by a frozen :class:`DatasetSpec`; :func:`load_split` returns the decoded
uint8 images (N, H, W, 3) and labels.  Evaluation and calibration images never overlap: either they
come from different trees (CIFAR-10 test vs. train) or from a fixed, documented partition of one tree
(the ImageNet sample: every ``holdout_every``-th image in sorted order is kept for calibration).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt import cache
from edgeopt.progress import progress

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_REPO = Path(__file__).resolve().parent.parent
# ``../shared/data`` seen from the repository (then from its further ancestors, for a clone nested one
# level deeper, then from the working directory when edgeopt is installed elsewhere).
DEFAULT_DATA_DIRS = tuple(p / "shared" / "data" for p in _REPO.parents) + (Path("..") / "shared" / "data",)


class DataError(RuntimeError):
    """A data folder is missing or not laid out as expected; the message says which and how."""


class InvalidData(DataError):
    """Data that is there but wrong (an unreadable image, class folders that do not fit the model): a failure."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where a model's images live and how they are preprocessed.

    ``eval_dir`` / ``calib_dir`` are paths relative to the data root (or absolute).  When
    ``calib_dir`` is None the evaluation tree is partitioned: sorted image index ``i`` goes to
    calibration when ``i % holdout_every == 0`` and to evaluation otherwise.
    ``resize`` (shorter side) then centre ``crop`` give the model's input size; ``None`` keeps the
    images as they are (they must then already be ``crop`` x ``crop``).
    """

    name: str
    eval_dir: str
    calib_dir: str | None = None
    holdout_every: int = 10
    resize: int | None = None
    crop: int = 32

    @property
    def has_training_tree(self) -> bool:
        """True when training images come from their own tree (``calib_dir``), apart from the evaluation images."""
        return self.calib_dir is not None

    def root(self, data_dir: str | os.PathLike) -> Path:
        return Path(data_dir)

    def split_dir(self, split: str, data_dir: str | os.PathLike) -> Path:
        rel = self.eval_dir if split == "eval" or self.calib_dir is None else self.calib_dir
        if split not in ("eval", "calib", "train"):
            raise ValueError(f"unknown split {split!r}: expected 'eval', 'calib' or 'train'")
        return Path(data_dir) / rel


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, H, W, 3)
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, limit: int | None) -> "Split":
        """``limit`` evenly spaced images (every class is represented in a class-sorted tree), or all."""
        if limit is None or limit >= len(self):
            return self
        idx = subset_indices(len(self), limit)
        return Split(self.images[idx], self.labels[idx], self.classes, tuple(self.files[i] for i in idx))


def subset_indices(total: int, limit: int | None) -> np.ndarray:
    """Indices of ``limit`` evenly spaced items out of ``total`` (all of them when ``limit`` is None or larger)."""
    if limit is None or limit >= total:
        return np.arange(total)
    return np.linspace(0, total - 1, num=limit).round().astype(np.int64)


def default_data_dir() -> Path:
    """``EDGEOPT_DATA`` if set, else ``../shared/data`` next to the repository."""
    if os.environ.get("EDGEOPT_DATA"):
        return Path(os.environ["EDGEOPT_DATA"])
    return next((d for d in DEFAULT_DATA_DIRS if d.is_dir()), DEFAULT_DATA_DIRS[0])


def scan_image_folder(folder: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """List ``(relative_file, class_index)`` of an ImageFolder tree, sorted; raise DataError if malformed."""
    layout = f"expected an ImageFolder tree: {folder}/<class_name>/<image>.jpg (one folder per class)"
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}; {layout}. Set EDGEOPT_DATA or --edgeopt-data.")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"no class folders in {folder}; {layout}")
    items = []
    for index, name in enumerate(classes):
        for f in sorted((folder / name).iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                items.append((f"{name}/{f.name}", index))
    if not items:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}; {layout}")
    return items, classes


def _decode(path: Path, resize: int | None, crop: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return _fit(im.convert("RGB"), path, resize, crop)
    except (OSError, SyntaxError, ValueError) as exc:  # PIL: unidentified, truncated, or a broken header
        raise InvalidData(f"{path}: not a readable image ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]}); "
                        "remove or replace it") from None


def _fit(im, path: Path, resize: int | None, crop: int) -> np.ndarray:
    from PIL import Image

    if resize is not None:
        w, h = im.size
        scale = resize / min(w, h)
        im = im.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), Image.BILINEAR)
    w, h = im.size
    if (w, h) != (crop, crop):
        if w < crop or h < crop:
            raise InvalidData(f"{path} is {w}x{h}, smaller than the {crop}x{crop} input; set resize in its DatasetSpec")
        left, top = int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0))
        im = im.crop((left, top, left + crop, top + crop))
    return np.asarray(im, dtype=np.uint8)


def _select(items, split: str, spec: DatasetSpec):
    if spec.calib_dir is not None:
        return items
    if split == "calib":
        return [it for i, it in enumerate(items) if i % spec.holdout_every == 0]
    return [it for i, it in enumerate(items) if i % spec.holdout_every != 0]


def _split_items(spec: DatasetSpec, split: str, data_dir: str | os.PathLike | None):
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if split == "train" and not spec.has_training_tree:
        raise DataError(f"dataset {spec.name} has no training tree (calib_dir), only a calibration hold-out of "
                        f"its evaluation tree: training or fine-tuning on it would leak evaluation images")
    folder = spec.split_dir(split, data_dir)
    items, classes = scan_image_folder(folder)
    items = _select(items, split, spec)
    if not items:
        raise DataError(f"split {split!r} of {folder} is empty")
    return folder, items, classes


def split_files(spec: DatasetSpec, split: str, data_dir: str | os.PathLike | None = None,
                limit: int | None = None) -> tuple[str, ...]:
    """The files :func:`load_split` (then ``.subset(limit)``) would return, without loading any image."""
    _, items, _ = _split_items(spec, split, data_dir)
    return tuple(items[i][0] for i in subset_indices(len(items), limit))


def load_split(spec: DatasetSpec, split: str, data_dir: str | os.PathLike | None = None,
               cache_dir: Path | None = None) -> Split:
    """Decoded images of one split, from the on-disk cache when the tree has not changed."""
    folder, items, classes = _split_items(spec, split, data_dir)
    key_src = json.dumps({
        "folder": str(folder.resolve()),
        "resize": spec.resize, "crop": spec.crop,
        "files": [(f, (folder / f).stat().st_size, (folder / f).stat().st_mtime_ns) for f, _ in items],
    })
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    # Keyed by content, not split name: a calibration split that is the training tree shares its cache.
    path = (cache_dir or cache.cache_dir()) / "data" / f"{spec.name}-{key}.npz"
    labels = np.array([c for _, c in items], dtype=np.int64)
    files = tuple(f for f, _ in items)

    def build(tmp: Path) -> None:
        images = np.stack([_decode(folder / f, spec.resize, spec.crop)
                           for f, _ in progress(items, desc=f"decode {spec.name}/{split}")])
        with open(tmp, "wb") as fh:
            np.savez(fh, images=images)

    cache.get_or_create(path, build)
    with np.load(path, allow_pickle=False) as z:
        images = z["images"]
    if len(images) != len(labels):
        raise DataError(f"cache {path} does not match {folder}; delete it")
    return Split(images, labels, tuple(classes), files)


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, ``(x/255 - mean) / std`` per channel."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def batches(images: np.ndarray, mean, std, batch_size: int):
    """Yield normalized float32 NCHW batches."""
    for start in range(0, len(images), batch_size):
        yield normalize(images[start:start + batch_size], mean, std)
