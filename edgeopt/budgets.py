"""Budgets: one reviewed TOML file of limits in layers, and the known failures as entries of their own.

Limits are keys ``<metric>_min`` or ``<metric>_max`` where ``<metric>`` names a field of a measurement
(``top1_drop_max = 0.2``), layered ``[defaults]`` -> every ``[family.NAME]`` whose ``variants`` globs match
(in file order; one naming ``backends`` only for those backends' cases) -> ``[variant.V]`` -> ``[model.M]`` -> families that also name ``models`` (globs) ->
``[model.M.variant.V]``, a later layer overriding.
``skip = "reason"`` at a layer leaves a model-variant out of the run, reported as a skip with its reason (e.g. a
build too costly for CI); with ``skip_cpu_without = [flags]`` only on a CPU that has none of those flags.

A known failure is an ``[[xfail]]`` entry: ``xfail = "reason"`` plus any of ``models``, ``variants``,
``backends`` (lists of globs), ``tests`` (concerns: ``accuracy``, ``agreement``, ``size``, ``memory``,
``latency``), ``cpu_without``/``cpu_with`` (CPU flags: a failure of kernels that only CPUs without, say, VNNI
run, or only CPUs with AVX-VNNI) and ``runtimes = {cv2 = ">=5"}`` (every named module importable and its
``__version__`` within the PEP 440 specifier); a key left out matches everything.  ``name = "id"`` names an entry
and ``like = "id"`` starts from an earlier one's keys (one failure on another runtime, or another model's words).
The figures behind the reasons live in one file of their own, named by a top-level ``measured = "FILE"`` (relative
to the budgets file): a table per entry name holding a figure per model (``simple_cnn = "..."``) or per model and
variant (``simple_cnn.prune_l1_50 = "..."``), substituted for ``{measured}`` in that entry's reason (and those
``like`` it); an entry with figures covers only the cases it has a figure for, so each figure is written once.
The last entry that covers a case wins; a layer may still hold ``xfail`` (or ``[[...xfails]]``), which wins
over the entries.  Unknown metrics or keys are an error at load time, so a typo cannot silently switch a
budget off.

Example::

    [defaults]
    top1_agreement_min = 0.99
    [family.int8]
    variants = ["*int8*"]
    top1_drop_max = 1.0
    [model.simple_cnn.variant.fp32]
    top1_min = 0.75
    [[xfail]]
    xfail = "OpenCV has no DynamicQuantizeLinear"
    variants = ["*int8_dynamic*"]
    backends = ["opencv*"]
"""
from __future__ import annotations

import fnmatch
import functools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt import machine, scopes

#: Measurement fields a budget may name, with their unit for messages.
METRICS = {
    "top1": "", "top1_drop": " pt", "top1_agreement": "", "max_abs_error": "", "sqnr_db": " dB",
    "size_bytes": " B", "size_ratio": "x", "compressed_ratio": "x", "macs": "", "peak_rss_mb": " MB",
    "model_rss_mb": " MB", "sparsity": "", "macs_ratio": "x", "bitops_ratio": "x", "weight_memory_ratio": "x",
}
_XFAIL_KEYS = ("xfail", "backends", "tests", "variants", "cpu_without", "cpu_with", "runtimes")
_ENTRY_KEYS = {*_XFAIL_KEYS, "models", "name", "like"}
_META_KEYS = {*_XFAIL_KEYS, "note", "xfails", "skip", "skip_cpu_without", "models"}
CONCERNS = ("accuracy", "agreement", "size", "memory", "latency")
#: The metrics each concern test measures (and so the limits it checks); latency is held to no limit.
CONCERN_METRICS = {"accuracy": ("top1", "top1_drop"), "agreement": ("top1_agreement", "max_abs_error", "sqnr_db"),
                   "size": ("size_bytes", "size_ratio", "compressed_ratio", "macs", "sparsity", "macs_ratio", "bitops_ratio",
                            "weight_memory_ratio"),
                   "memory": ("peak_rss_mb", "model_rss_mb")}


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
    #: The measured figures by entry name (the file the budgets' top-level ``measured`` names).
    figures: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "Budgets":
        path = Path(path)
        table = _read_toml(path, "budgets")
        figures = table.pop("measured", None)
        if figures is not None:
            if not isinstance(figures, str):
                raise BudgetError(f"{path}: measured must name the file of measured figures, got {figures!r}")
            figures = _read_toml(path.parent / figures, "measured figures")
        budgets = cls(table, str(path), figures or {})
        budgets.validate()
        return budgets

    def _layers(self, model: str, variant: str, backend: str | None) -> list[tuple[str, dict]]:
        t = self.table
        m = t.get("model", {}).get(model, {})
        # A family naming backends holds only those backends' cases (not the backend-independent size test).
        families = [(f"family.{name}", f) for name, f in t.get("family", {}).items()
                    if _glob(variant, f["variants"]) and _glob(model, f.get("models", [model]))
                    and ("backends" not in f or (backend is not None and _glob(backend, f["backends"])))]
        return [("defaults", t.get("defaults", {})), *[f for f in families if "models" not in f[1]],
                (f"variant.{variant}", t.get("variant", {}).get(variant, {})),
                (f"model.{model}", {k: v for k, v in m.items() if k != "variant"}),
                *[f for f in families if "models" in f[1]],  # a family naming models outranks a model's table
                (f"model.{model}.variant.{variant}", m.get("variant", {}).get(variant, {}))]

    def validate(self) -> None:
        unknown = set(self.table) - {"defaults", "family", "variant", "model", "xfail"}
        if unknown:
            raise BudgetError(f"{self.source}: unknown top-level table(s) {sorted(unknown)}")
        layers = [("defaults", self.table.get("defaults", {}))]
        for name, family in self.table.get("family", {}).items():
            _check_names(self.source, f"family.{name}", family.get("variants"), "variants")
            _check_names(self.source, f"family.{name}", family.get("models", ["*"]), "models")
            _check_names(self.source, f"family.{name}", family.get("backends", ["*"]), "backends")
            if {"xfail", "xfails"} & set(family):
                raise BudgetError(f"{self.source} [family.{name}]: a family holds limits and skips; known failures "
                                  f"go in [[xfail]] entries")
            layers.append((f"family.{name}", family))
        layers += [(f"variant.{v}", t) for v, t in self.table.get("variant", {}).items()]
        for m, t in self.table.get("model", {}).items():
            layers.append((f"model.{m}", {k: v for k, v in t.items() if k != "variant"}))
            layers += [(f"model.{m}.variant.{v}", vt) for v, vt in t.get("variant", {}).items()]
        for where, layer in layers:
            if "skip" in layer and not isinstance(layer["skip"], str):
                raise BudgetError(f"{self.source} [{where}]: skip needs a reason string")
            if problem := scopes.flags_problem(layer, "skip_cpu_without"):
                raise BudgetError(f"{self.source} [{where}]: {problem}")
            for entry in _xfail_entries(layer):
                _check_entry(self.source, where, entry)
            for key, value in layer.items():
                if key in _META_KEYS:
                    continue
                metric, _, bound = key.rpartition("_")
                if bound not in ("min", "max") or metric not in METRICS:
                    raise BudgetError(f"{self.source} [{where}]: unknown budget {key!r}; "
                                      f"use <metric>_min/_max with metric in {sorted(METRICS)}")
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise BudgetError(f"{self.source} [{where}]: {key} must be a number, got {value!r}")
        self.entries  # noqa: B018 (validates the [[xfail]] entries now, not at the first case)

    def check_names(self, models: list[str], variants: list[str], backends: list[str]) -> None:
        """Every table, glob and figure names something that exists, so a typo cannot leave a budget unused."""
        def check(where: str, kind: str, patterns, names: list[str]) -> None:
            for pattern in [patterns] if isinstance(patterns, str) else patterns:
                if not any(_glob(n, [pattern]) for n in names):
                    raise BudgetError(f"{self.source} [{where}]: no {kind} matches {pattern!r}; "
                                      f"{kind}s: {', '.join(sorted(names))}")
        for v in self.table.get("variant", {}):
            check(f"variant.{v}", "variant", v, variants)
        for name, family in self.table.get("family", {}).items():
            check(f"family.{name}", "variant", family["variants"], variants)
            check(f"family.{name}", "model", family.get("models", []), models)
            check(f"family.{name}", "backend", family.get("backends", []), backends)
        for m, table in self.table.get("model", {}).items():
            check(f"model.{m}", "model", m, models)
            check(f"model.{m}", "variant", list(table.get("variant", {})), variants)
        for i, entry in enumerate(self.entries):
            where = f"xfail #{i + 1}"
            for key, kind, names in (("models", "model", models), ("variants", "variant", variants),
                                     ("backends", "backend", backends)):
                check(where, kind, entry.get(key, []), names)
            for m, figure in entry.get("measured", {}).items():
                check(f"{where} measured", "model", m, models)
                check(f"{where} measured.{m}", "variant", list(figure) if isinstance(figure, dict) else [], variants)

    @functools.cached_property
    def entries(self) -> list[dict]:
        """The top-level ``[[xfail]]`` entries with ``like`` resolved, validated."""
        out, named = [], {}
        for i, raw in enumerate(self.table.get("xfail", [])):
            where = f"xfail #{i + 1}" + (f" ({raw['name']})" if "name" in raw else "")
            bad = set(raw) - _ENTRY_KEYS
            if bad:
                raise BudgetError(f"{self.source} [{where}]: unknown key(s) {sorted(bad)}; use {sorted(_ENTRY_KEYS)}")
            if "like" in raw and raw["like"] not in named:
                raise BudgetError(f"{self.source} [{where}]: like = {raw['like']!r} names no earlier entry")
            entry = {**named.get(raw.get("like"), {}), **{k: v for k, v in raw.items() if k not in ("like", "name")}}
            if raw.get("name") in self.figures:
                entry["measured"] = self.figures[raw["name"]]
            _check_entry(self.source, where, entry)
            _check_names(self.source, where, entry.get("models", ["*"]), "models")
            _check_names(self.source, where, entry.get("backends", ["*"]), "backends")
            if ("measured" in entry) != ("{measured}" in entry["xfail"]):
                raise BudgetError(f"{self.source} [{where}]: a reason with {{measured}} needs measured figures (a "
                                  f"table of its name in the measured file), and figures need {{measured}} in it")
            if "name" in raw:
                named[raw["name"]] = entry
            out.append(entry)
        if unused := set(self.figures) - set(named):
            raise BudgetError(f"{self.source}: measured figures for {sorted(unused)} name no [[xfail]] entry")
        return out

    def for_(self, model: str, variant: str, backend: str | None = None, test: str | None = None,
             cpu_flags: frozenset[str] | None = None, versions: Mapping[str, str | None] | None = None) -> Budget:
        """The merged limits for a case, and the reason of the most specific xfail that covers it.

        ``cpu_flags`` are the instruction-set flags ``cpu_without``/``cpu_with`` entries test (default: this
        machine's); ``versions`` maps module names to the versions ``runtimes`` entries test (default: the
        imported modules' ``__version__``; a module missing from the mapping or ``None`` is not installed)."""
        if cpu_flags is None:
            cpu_flags = machine.cpu_flags()
        version_of = (lambda module: versions.get(module)) if versions is not None else scopes.runtime_version
        limits: dict[str, float] = {}
        xfail = skip = None
        for entry in self.entries:
            figure = _figure(entry, model, variant)
            # An entry naming backends (tests) covers only cases of those backends (tests): not, for example, the
            # backend-independent size test of the same variant.
            if figure is not None and all(key not in entry or (value is not None and _glob(value, entry[key]))
                                          for key, value in (("models", model), ("variants", variant),
                                                             ("backends", backend))) \
                    and ("tests" not in entry or test in entry["tests"]) \
                    and scopes.cpu_matches(entry, cpu_flags) and scopes.runtimes_match(entry, version_of):
                xfail = entry["xfail"].replace("{measured}", figure)
        for _, layer in self._layers(model, variant, backend):
            if "skip" in layer and not cpu_flags.intersection(layer.get("skip_cpu_without", ())):
                skip = layer["skip"]
            limits.update({k: float(v) for k, v in layer.items() if k not in _META_KEYS})
            for entry in _xfail_entries(layer):
                # An entry naming backends (tests) covers only cases of those backends (tests): not, for
                # example, the backend-independent size test of the same variant.
                if all(key not in entry or value in entry[key]
                       for key, value in (("backends", backend), ("tests", test), ("variants", variant))) \
                        and scopes.cpu_matches(entry, cpu_flags) and scopes.runtimes_match(entry, version_of):
                    xfail = entry["xfail"]
        return Budget(limits, xfail, skip)


def _read_toml(path: Path, what: str) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BudgetError(f"{what} file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BudgetError(f"{path}: {exc}") from None


def _glob(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _figure(entry: dict, model: str, variant: str) -> str | None:
    """The measured figure an entry records for a case ("" if it records none at all), None if not this case's."""
    if "measured" not in entry:
        return ""
    figure = entry["measured"].get(model)
    return figure.get(variant) if isinstance(figure, dict) else figure


def _check_names(source, where: str, names, key: str) -> None:
    if not isinstance(names, list) or not names or not all(isinstance(v, str) for v in names):
        raise BudgetError(f"{source} [{where}]: {key} must be a non-empty list of names or globs")


def _check_entry(source, where: str, entry: dict) -> None:
    if not isinstance(entry.get("xfail"), str):
        raise BudgetError(f"{source} [{where}]: an xfail needs a reason string")
    _check_names(source, where, entry.get("variants", ["*"]), "variants")
    for problem in (scopes.flags_problem(entry, "cpu_without"), scopes.flags_problem(entry, "cpu_with"),
                    scopes.runtimes_problem(entry)):
        if problem:
            raise BudgetError(f"{source} [{where}]: {problem}")
    bad = set(entry.get("tests", [])) - set(CONCERNS)
    if bad:
        raise BudgetError(f"{source} [{where}]: unknown tests {sorted(bad)}; use {CONCERNS}")
    measured = entry.get("measured", {})
    if not isinstance(measured, dict) or not all(
            isinstance(f, str) or (isinstance(f, dict) and all(isinstance(v, str) for v in f.values()))
            for f in measured.values()):
        raise BudgetError(f"{source} [{where}]: measured must map a model to a figure, or to variant = figure")


def _xfail_entries(layer: dict) -> list[dict]:
    entries = list(layer.get("xfails", []))
    if "xfail" in layer:
        entries.append({k: layer[k] for k in _XFAIL_KEYS if k in layer})
    return entries
