"""Budgets: one reviewed TOML file, layered defaults -> variant -> model -> model-variant.

Keys are ``<metric>_min`` or ``<metric>_max`` where ``<metric>`` names a field of a measurement
(``top1_drop_max = 0.2``).  ``xfail = "reason"`` at a layer marks a known failure; ``backends``
limits it to some backends and ``tests`` to some concerns (``accuracy``, ``agreement``, ``size``,
``memory``, ``latency``); at a model's own layer, ``variants`` limits it to some variants (one runtime
failure shared by several recipes).  A layer can hold several as ``[[...xfails]]`` entries.  ``skip = "reason"``
leaves a model-variant out of the run, reported as a skip with its reason (e.g. a build too costly for CI);
with ``skip_cpu_without = [flags]`` only on a CPU that has none of those flags (``cpu_without`` scopes an
xfail the same way: a failure of kernels that only CPUs without, say, VNNI run; ``cpu_with`` the other
way round: a failure of kernels dispatched only on CPUs with one of the flags, say AVX-512).
``runtimes = {cv2 = ">=5"}`` scopes an xfail to runtime versions: it applies only where every named module
is importable and its ``__version__`` meets the PEP 440 specifier (a failure of OpenCV 5's new engine is not
expected of OpenCV 4).  Unknown metrics are an error at load time, so a typo cannot silently switch a budget off.

Example::

    [defaults]
    top1_agreement_min = 0.99
    [variant.onnx_fp32]
    max_abs_error_max = 1e-3
    [model.simple_cnn]
    top1_min = 0.75
    [model.simple_cnn.variant.onnx_fp32]
    size_ratio_max = 1.01
"""
from __future__ import annotations

import functools
import importlib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion

from edgeopt import machine

#: Measurement fields a budget may name, with their unit for messages.
METRICS = {
    "top1": "", "top1_drop": " pt", "top1_agreement": "", "max_abs_error": "", "sqnr_db": " dB",
    "size_bytes": " B", "size_ratio": "x", "compressed_ratio": "x", "macs": "", "peak_rss_mb": " MB",
    "model_rss_mb": " MB", "sparsity": "", "macs_ratio": "x",
}
_XFAIL_KEYS = ("xfail", "backends", "tests", "variants", "cpu_without", "cpu_with", "runtimes")
_META_KEYS = {*_XFAIL_KEYS, "note", "xfails", "skip", "skip_cpu_without"}
CONCERNS = ("accuracy", "agreement", "size", "memory", "latency")


class BudgetError(ValueError):
    """The budgets file is malformed; the message names the file and the offending key."""


@dataclass(frozen=True)
class Budget:
    limits: dict[str, float] = field(default_factory=dict)
    xfail: str | None = None
    skip: str | None = None

    def check(self, measurement: dict) -> list[str]:
        """Readable violations, one per limit broken; limits on metrics not in ``measurement`` are skipped."""
        out = []
        for key, limit in sorted(self.limits.items()):
            metric, bound = key.rsplit("_", 1)
            value = measurement.get(metric)
            if value is None:
                continue
            if (bound == "min" and not value >= limit) or (bound == "max" and not value <= limit):
                unit = METRICS[metric]
                out.append(f"{metric} = {_fmt(value)}{unit} breaks {key} = {_fmt(limit)}{unit}")
        return out


def _fmt(x: float) -> str:
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    return f"{x:.6g}" if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Budgets:
    table: dict
    source: str = "<dict>"

    @classmethod
    def load(cls, path: str | Path) -> "Budgets":
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise BudgetError(f"budgets file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise BudgetError(f"{path}: {exc}") from None
        budgets = cls(table, str(path))
        budgets.validate()
        return budgets

    def _layers(self, model: str, variant: str) -> list[tuple[str, dict]]:
        t = self.table
        m = t.get("model", {}).get(model, {})
        return [("defaults", t.get("defaults", {})),
                (f"variant.{variant}", t.get("variant", {}).get(variant, {})),
                (f"model.{model}", {k: v for k, v in m.items() if k != "variant"}),
                (f"model.{model}.variant.{variant}", m.get("variant", {}).get(variant, {}))]

    def validate(self) -> None:
        unknown = set(self.table) - {"defaults", "variant", "model"}
        if unknown:
            raise BudgetError(f"{self.source}: unknown top-level table(s) {sorted(unknown)}")
        layers = [("defaults", self.table.get("defaults", {}))]
        layers += [(f"variant.{v}", t) for v, t in self.table.get("variant", {}).items()]
        for m, t in self.table.get("model", {}).items():
            layers.append((f"model.{m}", {k: v for k, v in t.items() if k != "variant"}))
            layers += [(f"model.{m}.variant.{v}", vt) for v, vt in t.get("variant", {}).items()]
        for where, layer in layers:
            if "skip" in layer and not isinstance(layer["skip"], str):
                raise BudgetError(f"{self.source} [{where}]: skip needs a reason string")
            _check_flags(self.source, where, layer, "skip_cpu_without")
            for entry in _xfail_entries(layer):
                if not isinstance(entry.get("xfail"), str):
                    raise BudgetError(f"{self.source} [{where}]: an xfail needs a reason string")
                names = entry.get("variants", [])
                if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
                    raise BudgetError(f"{self.source} [{where}]: variants must be a list of variant names")
                _check_flags(self.source, where, entry, "cpu_without")
                _check_flags(self.source, where, entry, "cpu_with")
                _check_runtimes(self.source, where, entry)
                bad = set(entry.get("tests", [])) - set(CONCERNS)
                if bad:
                    raise BudgetError(f"{self.source} [{where}]: unknown tests {sorted(bad)}; use {CONCERNS}")
            for key, value in layer.items():
                if key in _META_KEYS:
                    continue
                metric, _, bound = key.rpartition("_")
                if bound not in ("min", "max") or metric not in METRICS:
                    raise BudgetError(f"{self.source} [{where}]: unknown budget {key!r}; "
                                      f"use <metric>_min/_max with metric in {sorted(METRICS)}")
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise BudgetError(f"{self.source} [{where}]: {key} must be a number, got {value!r}")

    def for_(self, model: str, variant: str, backend: str | None = None, test: str | None = None,
             cpu_flags: frozenset[str] | None = None, versions: Mapping[str, str | None] | None = None) -> Budget:
        """The merged limits for a case, and the reason of the most specific xfail that covers it.

        ``cpu_flags`` are the instruction-set flags ``cpu_without``/``cpu_with`` entries test (default: this
        machine's); ``versions`` maps module names to the versions ``runtimes`` entries test (default: the
        imported modules' ``__version__``; a module missing from the mapping or ``None`` is not installed)."""
        if cpu_flags is None:
            cpu_flags = machine.cpu_flags()
        version_of = (lambda module: versions.get(module)) if versions is not None else runtime_version
        limits: dict[str, float] = {}
        xfail = skip = None
        for _, layer in self._layers(model, variant):
            if "skip" in layer and not cpu_flags.intersection(layer.get("skip_cpu_without", ())):
                skip = layer["skip"]
            limits.update({k: float(v) for k, v in layer.items() if k not in _META_KEYS})
            for entry in _xfail_entries(layer):
                # An entry naming backends (tests) covers only cases of those backends (tests): not, for
                # example, the backend-independent size test of the same variant.
                if all(key not in entry or value in entry[key]
                       for key, value in (("backends", backend), ("tests", test), ("variants", variant))) \
                        and _cpu_matches(entry, cpu_flags) and _runtimes_match(entry, version_of):
                    xfail = entry["xfail"]
        return Budget(limits, xfail, skip)


def _check_flags(source, where: str, table: dict, key: str) -> None:
    flags = table.get(key, ["-"])
    if not isinstance(flags, list) or not flags or not all(isinstance(f, str) for f in flags):
        raise BudgetError(f"{source} [{where}]: {key} must be a non-empty list of CPU flags")


def _cpu_matches(entry: dict, cpu_flags: frozenset[str]) -> bool:
    """An xfail entry applies on a CPU with none of its ``cpu_without`` flags and, if it names ``cpu_with``, one of those."""
    if cpu_flags.intersection(entry.get("cpu_without", ())):
        return False
    return "cpu_with" not in entry or bool(cpu_flags.intersection(entry["cpu_with"]))


def _check_runtimes(source, where: str, entry: dict) -> None:
    runtimes = entry.get("runtimes", {"-": ""})
    if not isinstance(runtimes, dict) or not runtimes:
        raise BudgetError(f"{source} [{where}]: runtimes must be a table of module = \"version specifier\", "
                          f"e.g. {{cv2 = \">=5\"}}")
    for module, spec in runtimes.items():
        try:
            SpecifierSet(spec)
        except (InvalidSpecifier, TypeError):
            raise BudgetError(f"{source} [{where}]: runtimes.{module} = {spec!r} is not a version specifier "
                              f"such as \">=5\" or \"<1.21\"") from None


@functools.cache
def runtime_version(module: str) -> str | None:
    """``module.__version__`` of an importable module, else None."""
    try:
        return str(importlib.import_module(module).__version__)
    except (ImportError, AttributeError):
        return None


def _runtimes_match(entry: dict, version_of) -> bool:
    """An xfail entry naming ``runtimes`` applies only where every named module's version meets its specifier."""
    for module, spec in entry.get("runtimes", {}).items():
        version = version_of(module)
        try:
            if version is None or not SpecifierSet(spec).contains(version, prereleases=True):
                return False
        except InvalidVersion:
            return False
    return True


def _xfail_entries(layer: dict) -> list[dict]:
    entries = list(layer.get("xfails", []))
    if "xfail" in layer:
        entries.append({k: layer[k] for k in _XFAIL_KEYS if k in layer})
    return entries
