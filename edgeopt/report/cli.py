"""``edgeopt report RESULTS.json [MORE.json ...] [--out DIR]``: report.md, results.csv, charts, index.html."""
from __future__ import annotations

from pathlib import Path

from edgeopt.atomic import write_atomically
from edgeopt.report import html, tables
from edgeopt.report.results import ReportError, load_all


def add_parser(sub) -> None:
    r = sub.add_parser("report", help="report.md, results.csv, charts and index.html from benchmark JSON files")
    r.add_argument("results", nargs="+", help="pytest-benchmark JSON written by the suite (any machine or env)")
    r.add_argument("--out", default="edgeopt-report", help="folder to write into (default: %(default)s)")
    r.add_argument("--no-charts", action="store_true", help="tables only (no matplotlib needed)")


def build(paths: list[str], out: Path, charts: bool = True) -> list[Path]:
    runs = load_all(paths)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create {out}: {exc.strerror}") from None
    files: dict[str, str | bytes] = {}
    made: dict[str, list[str]] = {}
    if charts:
        from edgeopt.report import charts as chart_mod

        for name, png in chart_mod.all_charts(runs).items():
            files[name] = png
            made.setdefault(name.split("-", 1)[0].removeprefix("charts/"), []).append(name)
    files["results.csv"] = tables.to_csv(runs)
    files["report.md"] = tables.markdown(runs, made)
    machines = [line for run in runs for line in tables.machine_lines(run)]
    files["index.html"] = html.page(runs, {k: v for k, v in files.items() if k.endswith(".png")}, machines)
    written = []
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out / name, data)  # a failed run never leaves a half-written report over a good one
        written.append(out / name)
    return written


def cmd_report(args) -> int:
    written = build(args.results, Path(args.out), charts=not args.no_charts)
    print(f"edgeopt report: {len(written)} files in {args.out}/ (open {Path(args.out) / 'report.md'})")
    return 0
