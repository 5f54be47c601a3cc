"""Where a known failure applies: the CPU-flag and runtime-version scopes of a budgets xfail entry."""
from __future__ import annotations

import functools
import importlib

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion


def flags_problem(table: dict, key: str) -> str | None:
    flags = table.get(key, ["-"])
    if not isinstance(flags, list) or not flags or not all(isinstance(f, str) for f in flags):
        return f"{key} must be a non-empty list of CPU flags"
    return None


def cpu_matches(entry: dict, cpu_flags: frozenset[str]) -> bool:
    """An entry applies on a CPU with none of its ``cpu_without`` flags and, if it names ``cpu_with``, one of those."""
    if cpu_flags.intersection(entry.get("cpu_without", ())):
        return False
    return "cpu_with" not in entry or bool(cpu_flags.intersection(entry["cpu_with"]))


def runtimes_problem(entry: dict) -> str | None:
    runtimes = entry.get("runtimes", {"-": ""})
    if not isinstance(runtimes, dict) or not runtimes:
        return "runtimes must be a table of module = \"version specifier\", e.g. {cv2 = \">=5\"}"
    for module, spec in runtimes.items():
        try:
            SpecifierSet(spec)
        except (InvalidSpecifier, TypeError):
            return f"runtimes.{module} = {spec!r} is not a version specifier such as \">=5\" or \"<1.21\""
    return None


@functools.cache
def runtime_version(module: str) -> str | None:
    """``module.__version__`` of an importable module, else None."""
    try:
        return str(importlib.import_module(module).__version__)
    except (ImportError, AttributeError):
        return None


def runtimes_match(entry: dict, version_of=runtime_version) -> bool:
    """An entry naming ``runtimes`` applies only where every named module's version meets its specifier."""
    for module, spec in entry.get("runtimes", {}).items():
        version = version_of(module)
        try:
            if version is None or not SpecifierSet(spec).contains(version, prereleases=True):
                return False
        except InvalidVersion:
            return False
    return True
