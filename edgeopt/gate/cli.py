"""``edgeopt gate``: the same-runner A/B latency gate of head against a base (a git ref, a checkout, an artifact
cache, or another interpreter), with the verdict as JSON (raw samples included) and as Markdown."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from edgeopt.atomic import write_atomically
from edgeopt.gate import ab, stats
from edgeopt.gate.markdown import summary

#: The cases a pull request is gated on by default: every runtime, FP32 and INT8, on the model that builds in
#: seconds.  Wider sets are a --models/--variants choice (CI time: see README.md).
DEFAULT_MODELS, DEFAULT_VARIANTS = "simple_cnn", "fp32,torchscript,onnx_fp32,ort_int8_static,torch_int8_pt2e"
GITHUB_SUMMARY_LIMIT = 1 << 20


def select_cases(models: str, variants: str, backends: str) -> list[tuple[str, str, str]]:
    from edgeopt.backends import backends_for
    from edgeopt.models import get_model, list_models, matches
    from edgeopt.recipes import VARIANTS

    cases = [(m, v, b) for m in list_models(models) for v, recipe in VARIANTS.items() if matches(v, variants)
             and not recipe.unsupported_reason(get_model(m)) for b in backends_for(recipe.format) if matches(b, backends)]
    if not cases:
        raise ValueError(f"no case matches --models {models!r} --variants {variants!r} --backends {backends!r}")
    return cases


def _git(*args: str, cwd: Path) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise ValueError(f"git {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout.strip()


def base_side(base: str, repo: Path, cache_root: Path, python: str) -> ab.Side:
    """A checkout (a directory with ``edgeopt/``), an artifact cache directory, or a git ref (checked out once per
    commit into a worktree, with an artifact cache of its own: the base's recipes build the base's artifacts)."""
    path = Path(base)
    if path.is_dir() and (path / "edgeopt" / "__init__.py").is_file():
        return ab.Side(f"base:{path}", code=path.resolve(), python=python)
    if path.is_dir():
        return ab.Side(f"base-artifacts:{path}", cache=path.resolve(), python=python)
    commit = _git("rev-parse", "--verify", f"{base}^{{commit}}", cwd=repo)
    tree = cache_root / "gate" / "worktrees" / commit
    if not (tree / "edgeopt" / "__init__.py").is_file():
        _git("worktree", "add", "--detach", "--force", str(tree), commit, cwd=repo)
    return ab.Side(f"base:{base}@{commit[:12]}", code=tree, python=python, cache=cache_root / "gate" / f"base-{commit}")


def write_outputs(verdict: dict, out: Path) -> tuple[Path, Path]:
    """verdict.json and summary.md in ``out`` (written whole, then renamed); the summary also goes to
    ``$GITHUB_STEP_SUMMARY`` when set."""
    out.mkdir(parents=True, exist_ok=True)
    md = summary(verdict, limit=GITHUB_SUMMARY_LIMIT - 1024)
    paths = out / "verdict.json", out / "summary.md"
    for path, text in zip(paths, (json.dumps(verdict, indent=1, allow_nan=False), md)):
        write_atomically(path, text)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as fh:
            fh.write(md + "\n")
    return paths


def add_parser(sub) -> None:
    g = sub.add_parser("gate", help="A/B latency gate of head against a base on this machine (interleaved rounds)")
    g.add_argument("--base", required=True, help="git ref, checkout directory, or artifact cache directory")
    g.add_argument("--head", default=".", help="checkout to gate (default: this one)")
    g.add_argument("--base-python", default=sys.executable, help="interpreter of the base side (e.g. a tox env's)")
    g.add_argument("--head-python", default=sys.executable, help="interpreter of the head side")
    g.add_argument("--models", default=DEFAULT_MODELS, metavar="GLOB[,GLOB]")
    g.add_argument("--variants", default=DEFAULT_VARIANTS, metavar="GLOB[,GLOB]")
    g.add_argument("--backends", default="*", metavar="GLOB[,GLOB]")
    g.add_argument("--threshold", type=float, default=stats.GateSettings.threshold,
                   help="smallest slowdown (or speed-up) reported, as a fraction (default %(default)s)")
    g.add_argument("--alpha", type=float, default=stats.GateSettings.alpha,
                   help="chance of any false alarm in the whole run (Holm over the cases; default %(default)s)")
    g.add_argument("--seconds-per-case", type=float, default=ab.Timing.seconds_per_case)
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--data", default=None, help="data root (default: $EDGEOPT_DATA or ../shared/data)")
    g.add_argument("--out", default="gate-results", help="folder for verdict.json and summary.md")
    g.add_argument("--seed", type=int, default=0)


def cmd_gate(args) -> int:
    from edgeopt.cache import cache_dir
    from edgeopt.data import default_data_dir
    from edgeopt.progress import progress

    if not 0 < args.threshold < 1 or not 0 < args.alpha < 1 or args.seconds_per_case <= 0 or args.threads < 1:
        raise ValueError("--threshold and --alpha must be in (0, 1), --seconds-per-case > 0, --threads >= 1")
    head_dir = Path(args.head).resolve()
    if not (head_dir / "edgeopt" / "__init__.py").is_file():
        raise ValueError(f"--head {args.head}: not an edgeopt checkout (no edgeopt/__init__.py)")
    cases = select_cases(args.models, args.variants, args.backends)
    base = replace(base_side(args.base, head_dir, cache_dir(), args.base_python), models_from=tuple(args.models_from))
    head = ab.Side(f"head:{args.head}", code=head_dir, python=args.head_python, models_from=tuple(args.models_from))
    data = str(Path(args.data or default_data_dir()).resolve())
    out = Path(args.out)
    verdict = ab.run_gate(base, head, cases, stats.GateSettings(args.threshold, args.alpha),
                          ab.Timing(seconds_per_case=args.seconds_per_case), args.threads, data, out, args.seed,
                          progress=lambda it: progress(it, desc="gate", total=len(cases)))
    json_path, md_path = write_outputs(verdict, out)
    for r in verdict["cases"]:
        figure = f"{r['ratio']:.3f}x [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if "ratio" in r else str(r.get("errors"))
        print(f"{r['case']:<52} {r['verdict']:<11} {figure}")
    print(f"edgeopt gate: {verdict['regressions']} regression(s), {verdict['speedups']} speed-up(s) in "
          f"{len(verdict['cases'])} cases, {verdict['wall_s']:.0f} s; {json_path}, {md_path}")
    return 1 if verdict["regressions"] else 0
