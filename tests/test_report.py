"""`edgeopt report` on the JSON of a real suite run (a tiny user model, timed latency), and on bad inputs."""
import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt import cli
from edgeopt.report.results import COLUMNS
from tests.conftest import write_image_folder
from tests.test_user_project import USER_MODELS


@pytest.fixture(scope="module")
def results_json(tmp_path_factory) -> Path:
    """pytest-benchmark JSON of the packaged suite on a 3-class 8x8 model: FP32, ONNX and two simulated low-bit
    variants, every backend, timed."""
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text('[tool.edgeopt]\nmodels = ["user_models"]\nbudgets = "budgets.toml"\n')
    (root / "user_models.py").write_text(USER_MODELS)
    (root / "budgets.toml").write_text("[defaults]\ntop1_drop_max = 0.1\nsize_ratio_max = 2.5\n")
    write_image_folder(root / "data" / "userdata" / "test", per_class=6, seed=3)
    write_image_folder(root / "data" / "userdata" / "train", per_class=2, seed=4)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_XDIST_WORKER"}  # else pytest-benchmark stays off
    env["EDGEOPT_CACHE"] = str(root / "cache")
    subprocess.run([sys.executable, "-c", "import torch, user_models; torch.manual_seed(0); "
                    "torch.save(user_models.UserNet().state_dict(), 'user_net.pt')"], cwd=root, env=env, check=True)
    out = root / "results.json"
    run = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "edgeopt.suite", "--edgeopt-models", "user_net",
                          "--edgeopt-variants", "fp32,onnx_fp32,lowbit_w8a8,lowbit_w4a8", "--edgeopt-data", str(root / "data"),
                          "--benchmark-max-time=0.05", "--benchmark-min-rounds=12", f"--benchmark-json={out}",
                          "-p", "no:cacheprovider", "-q"], cwd=root, env=env, capture_output=True, text=True)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-2000:]
    return out


def report(tmp_path: Path, *files: Path) -> Path:
    assert cli.main(["report", *map(str, files), "--out", str(tmp_path / "out")]) == 0
    return tmp_path / "out"


def test_the_tables_hold_the_json_figures(results_json, tmp_path):
    out = report(tmp_path, results_json)
    bench = {b["param"]: b for b in json.loads(results_json.read_text())["benchmarks"]}
    rows = {f"{r['model']}-{r['variant']}-{r['backend']}": r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == set(bench) and list(next(iter(rows.values()))) == list(COLUMNS)
    for case, b in bench.items():
        assert float(rows[case]["latency_median_ms"]) == pytest.approx(1e3 * b["stats"]["median"], rel=1e-12)
        assert float(rows[case]["top1"]) == b["extra_info"]["top1"]
        assert rows[case]["budget_verdict"] in ("ok", "xfail") or rows[case]["budget_verdict"].startswith("over: ")
    fp32 = bench["user_net-fp32-torch"]
    md = (out / "report.md").read_text()
    assert f"| fp32 | torch | {100 * fp32['extra_info']['top1']:.2f} |" in md
    assert f"{1e3 * fp32['stats']['median']:.3f}" in md
    assert "- fastest (within budget): **" in md


def test_simulated_cases_are_labelled_and_kept_off_the_latency_front(results_json, tmp_path):
    from edgeopt.report import charts, results

    rows = {(r["variant"], r["backend"]): r for r in csv.DictReader((report(tmp_path, results_json) / "results.csv").open())}
    assert rows[("lowbit_w8a8", "torchscript")]["simulated"] == "True" and rows[("fp32", "torch")]["simulated"] == "False"
    assert float(rows[("lowbit_w8a8", "torchscript")]["bitops_ratio"]) == 8 * 8 / (32 * 32) and not rows[("fp32", "torch")]["bitops_ratio"]
    run = results.load(results_json)
    real = [r for r in run.rows if not r["simulated"]]
    assert charts.latency_points(run.rows) == charts.latency_points(real) and charts.latency_points(real)
    assert charts.bitops_chart("user_net", real) is None  # no low-bit points: no chart


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_every_chart_is_a_png_a_person_can_read(results_json, tmp_path):
    charts = sorted((report(tmp_path, results_json) / "charts").glob("*.png"))
    assert {p.stem for p in charts} >= {"user_net-size", "user_net-latency", "user_net-top1", "user_net-pareto",
                                        "user_net-memory", "user_net-bitops", "capability"}
    for p in charts:
        width, height = png_size(p)
        assert width >= 400 and height >= 250, (p.name, width, height)


def test_two_runs_side_by_side(results_json, tmp_path):
    other = tmp_path / "other-machine.json"
    shutil.copy(results_json, other)
    out = report(tmp_path, results_json, other)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["source"] for r in rows} == {"results.json", "other-machine.json"}
    md = (out / "report.md").read_text()
    assert "**results.json**" in md and "**other-machine.json**" in md
    assert (out / "charts" / "user_net-latency-other-machine.png").exists()
    assert "other-machine.json / results.json" in md and "| 1.00x |" in md  # the same file: every ratio is 1
    assert png_size(out / "charts" / "user_net-compare.png")[0] >= 400


@pytest.mark.parametrize("content, message", [
    ("", "empty file"), ("{not json", "not JSON"), ('{"results": []}', "not a pytest-benchmark JSON"),
    ('{"machine_info": {}, "benchmarks": [{"name": "test_x", "stats": {}}]}', "no edgeopt latency cases"),
    (None, "no such file; pytest-benchmark writes it only when a latency case ran"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    if content is not None:  # None: the file a run whose latency cases all skipped never wrote
        bad.write_text(content)
    assert cli.main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "bad.json" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not shutil.which("chromium"), reason="no chromium (Debian: apt-get install chromium)")
def test_the_html_page_renders_its_tables_and_charts_in_a_headless_browser(results_json, tmp_path):
    out = report(tmp_path, results_json)
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (out / "index.html").as_uri() + "#check-sort"], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r'<body data-images-decoded="(\d+)" data-table-rows="(\d+)" data-sort-check="(\w+)"', dom)
    assert body, dom[:500]
    cases = len(json.loads(results_json.read_text())["benchmarks"])
    assert (int(body[1]), int(body[2]), body[3]) == (len(list((out / "charts").glob("*.png"))), cases, "ascending")


@pytest.mark.parametrize("xfails, verdict", [({"agreement": "known"}, "xfail"), ({}, "over: top1_agreement"),
                                             ({"size": "known"}, "over: top1_agreement"), (None, "over: ")])
def test_a_broken_limit_is_xfail_only_where_its_own_concern_expects_the_miss(xfails, verdict):
    from edgeopt.report.results import budget_verdict as _verdict

    extra = {"budget": {"top1_agreement_min": 0.97, "size_ratio_max": 0.3}, "top1_agreement": 0.95,
             "size_ratio": 0.26, "budget_xfails": xfails}
    assert _verdict(extra).startswith(verdict)
    assert _verdict({**extra, "top1_agreement": 0.99}) == "ok"


def test_the_run_names_the_fastest_case_within_budget_per_model_and_runtime():
    from edgeopt.suite.case import Case
    from edgeopt.suite.reports import fastest_within_budget

    lines = []
    tr = type("Reporter", (), {"section": lambda self, title: lines.append(title),
                               "write_line": lambda self, line: lines.append(line)})()
    fastest_within_budget(tr, {Case("m", "onnx_fp32", "onnxruntime"): (4e-3, "ok"),
                               Case("m", "int8_bad", "onnxruntime"): (1e-3, "over: top1_drop = 3 pt breaks ..."),
                               Case("m", "int8", "onnxruntime"): (2e-3, "ok"),
                               Case("m", "simulated", "torchscript"): (1e-4, None),
                               Case("m", "fp32", "torch"): (8e-3, "ok")})
    rows = [line.split() for line in lines[2:]]
    assert rows == [["m", "onnxruntime", "int8", "2.000", "2.00x", "4.00x"], ["m", "torch", "fp32", "8.000", "0.50x", "1.00x"]]


def test_the_accuracy_chart_draws_a_model_whose_every_variant_is_far_below_its_reference():
    from edgeopt.report.charts import accuracy_chart

    rows = [{"variant": "ort_w4a8", "backend": b, "top1": 0.16, "reference_top1": 0.88, "budget_limits": {}}
            for b in ("onnxruntime", "openvino")]
    assert accuracy_chart("collapsed", rows)[:8] == b"\x89PNG\r\n\x1a\n"
