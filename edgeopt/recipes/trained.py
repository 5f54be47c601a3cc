"""Committed fine-tunes: the trained result of a recipe that trains, stored in the repo like the base weights.

A fine-tune is training, and training takes too long to repeat in every CI run and on every fresh clone
(measured on an AMD EPYC, 2 cores, one thread each: 57 min for the ResNet's 8-epoch structured fine-tune,
35 min for MobileNetV2-CIFAR's 2-epoch one).  So, as with the base weights, it is run once by a command
and its state dict is committed with a manifest entry:

    edgeopt finetune cifar_resnet prune_structured

A build uses a committed state dict only when the model name, the digest of the weights the fine-tune
started from and the recipe's whole config all match the entry; then the artifact's cache key carries the
file's sha256, so a changed file rebuilds everything built on it.  In any other case (a user's model, a
changed recipe or base weights) the build fine-tunes, as before.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from edgeopt.machine import cpu_info, notable_flags
from edgeopt.models import WEIGHTS_DIR, load_state_dict
from edgeopt.recipes.base import Recipe, RecipeError

FINETUNED_DIR = WEIGHTS_DIR / "finetuned"
_MANIFEST = "manifest.json"
_enabled = contextvars.ContextVar("edgeopt_committed_finetunes", default=True)


def config_of(recipe: Recipe) -> dict:
    """The recipe's config as it is stored in the manifest (JSON types: tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(recipe)))


def manifest() -> dict:
    path = FINETUNED_DIR / _MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path} is not valid JSON ({exc}); restore it from git") from exc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entry_for(model: str, recipe: Recipe, base_digest: str) -> dict | None:
    """The manifest entry a build of ``recipe`` on ``model`` (starting from weights ``base_digest``) may use."""
    if not recipe.trains or not _enabled.get():
        return None
    entry = manifest().get(f"{model}/{recipe.name}")
    if entry is None or entry["base_weights"] != base_digest or entry["config"] != config_of(recipe):
        return None
    return entry


def load(entry: dict) -> dict:
    """The committed state dict of ``entry``, checked against its sha256 (loaded without unpickling code)."""
    path = FINETUNED_DIR / entry["file"]
    if not path.is_file():
        raise RecipeError(f"committed fine-tune {path} is missing (the manifest lists it); restore it from git")
    if (actual := _sha256(path)) != entry["sha256"]:
        raise RecipeError(f"committed fine-tune {path} has sha256 {actual[:12]}..., the manifest says "
                          f"{entry['sha256'][:12]}...; restore it from git or publish it again")
    return load_state_dict(path)


@contextlib.contextmanager
def disabled():
    """Builds inside this block fine-tune even where a committed result exists (how one is published)."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


def publish(spec, recipe: Recipe, data_dir: str | None = None, force: bool = False) -> dict:
    """Fine-tune ``recipe`` on ``spec``'s model here (or take that exact build from the cache) and commit its
    state dict and manifest entry to FINETUNED_DIR.  An existing entry is replaced only with ``force``."""
    from edgeopt.recipes import build, library_versions, weights_digest

    if not recipe.trains:
        raise RecipeError(f"{recipe.name} does not train; there is nothing to commit")
    key = f"{spec.name}/{recipe.name}"
    entries = manifest()
    if key in entries and not force:
        raise RecipeError(f"{key} is already committed ({entries[key]['file']}); pass --force to replace it")
    weights = spec.build()
    started = time.time()
    with disabled():
        artifact = build(spec, recipe, weights, data_dir=data_dir)
    directory = FINETUNED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{spec.name}-{recipe.name}.pt"
    tmp = directory / f".{name}.tmp"
    shutil.copyfile(artifact.path, tmp)
    entry = {
        "file": name, "sha256": _sha256(tmp), "base_weights": weights_digest(weights.module),
        "config": config_of(recipe), "finetune_minutes": artifact.meta.get("finetune_minutes"),
        "published_minutes": round((time.time() - started) / 60, 2),
        "versions": library_versions(recipe.libraries), "cpu": cpu_info()[0],
        "cpu_flags": notable_flags(), "artifact_meta": {k: v for k, v in artifact.meta.items() if k not in ("file", "format")},
    }
    os.replace(tmp, directory / name)
    entries[key] = entry
    tmp_manifest = directory / f".{_MANIFEST}.tmp"
    tmp_manifest.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_manifest, directory / _MANIFEST)
    return entry
