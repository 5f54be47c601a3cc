"""A user brings a model and data without editing edgeopt or copying its suite, and runs the suite on them: the
packaged concern tests (``pytest --pyargs edgeopt.suite``) through the installed plugin's entry points."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_image_folder

REPO = Path(__file__).resolve().parent.parent

USER_MODELS = '''
from pathlib import Path

import torch
from torch import nn

from edgeopt.data import DatasetSpec
from edgeopt.models import ModelSpec, load_state_dict, register_model

HERE = Path(__file__).parent


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def load(module):
    module.load_state_dict(load_state_dict(HERE / "user_net.pt"))
    return "user_net.pt"


register_model(ModelSpec(
    "user_net", UserNet, load, DatasetSpec("userdata", eval_dir="userdata/test", calib_dir="userdata/train", crop=8),
    input_size=(3, 8, 8), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_classes=3, eval_batch=8))

# The same network with no trained weights (as MobileNetV2-ImageNet on a machine without them).
register_model(ModelSpec(
    "user_net_untrained", UserNet, None,
    DatasetSpec("userdata", eval_dir="userdata/test", calib_dir="userdata/train", crop=8),
    input_size=(3, 8, 8), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), num_classes=3, eval_batch=8))
'''


@pytest.fixture
def user_project(pytester, tmp_path):
    pytester.makepyprojecttoml('[tool.edgeopt]\nmodels = ["user_models"]\nbudgets = "budgets.toml"\n')
    pytester.makepyfile(user_models=USER_MODELS)
    # The user's own reviewed budgets: a 5 KB network carries relatively more graph overhead in ONNX.
    (pytester.path / "budgets.toml").write_text(
        "[defaults]\ntop1_drop_max = 0.1\ntop1_agreement_min = 1.0\nsqnr_db_min = 80.0\nsize_ratio_max = 2.5\n")
    data = tmp_path / "userdata_root"
    write_image_folder(data / "userdata" / "test", per_class=6, seed=3)
    write_image_folder(data / "userdata" / "train", per_class=2, seed=4)
    pytester.run(sys.executable, "-c", "import torch, user_models; torch.manual_seed(0); "
                 "torch.save(user_models.UserNet().state_dict(), 'user_net.pt')")
    return data


def run_suite(pytester, *args):
    return pytester.runpytest_subprocess("--pyargs", "edgeopt.suite", "--edgeopt-models", "user_net", "--benchmark-disable",
                                         "--edgeopt-variants", "fp32,torchscript,onnx_fp32",
                                         "-p", "no:cacheprovider", "-v", *args)


def test_suite_runs_on_a_registered_user_model(pytester, user_project):
    result = run_suite(pytester, "--edgeopt-data", str(user_project))
    result.assert_outcomes(passed=26)  # 6 backend cases x 4 concerns + 3 sizes - 1 reference agreement
    result.stdout.fnmatch_lines(["*test_accuracy.py::test_accuracy?user_net-onnx_fp32-opencv? PASSED*",
                                 "*test_size.py::test_size?user_net-torchscript? PASSED*",
                                 "*capability matrix*"])
    assert "simple_cnn" not in result.stdout.str()


def test_untrained_model_gates_lossless_agreement_and_skips_approximate_unmeasured(pytester, user_project):
    result = pytester.runpytest_subprocess(
        "--pyargs", "edgeopt.suite", "--edgeopt-models", "user_net_untrained", "--edgeopt-variants", "fp32,onnx_fp32,onnx_fp16",
        "--edgeopt-backends", "torch,onnxruntime", "--edgeopt-data", str(user_project), "--benchmark-disable",
        "-p", "no:cacheprovider", "-v", "-rs", "-k", "agreement or accuracy")
    result.assert_outcomes(passed=1, skipped=4)  # onnx_fp32 agreement; 3 accuracy skips and onnx_fp16 agreement
    result.stdout.fnmatch_lines(["*test_agreement?user_net_untrained-onnx_fp32-onnxruntime? PASSED*",
                                 "*user_net_untrained-onnx_fp16-onnxruntime: approximate variant on random weights "
                                 "(user_net_untrained declares no weights): agreement not gated, so not measured*"])


def test_a_broken_budget_fails_with_every_violation_and_its_figure(pytester, user_project):
    strict = pytester.path / "strict.toml"
    strict.write_text("[defaults]\ntop1_min = 1.01\n[model.user_net.variant.onnx_fp32]\nsize_ratio_max = 0.5\n")
    result = run_suite(pytester, "--edgeopt-data", str(user_project), "--edgeopt-budgets", str(strict),
                       "-k", "accuracy or size")
    result.assert_outcomes(passed=2, failed=7)
    result.stdout.fnmatch_lines(["*user_net-onnx_fp32-onnxruntime over budget:*",
                                 "*top1 = * breaks top1_min = 1.01*",
                                 "*size_ratio = * breaks size_ratio_max = 0.5*"])


def test_missing_data_skips_with_the_path_and_layout(pytester, user_project):
    result = run_suite(pytester, "--edgeopt-data", str(pytester.path / "nowhere"), "-rs", "-k", "accuracy or size")
    result.assert_outcomes(passed=3, skipped=6)
    result.stdout.fnmatch_lines(["*data folder not found: *nowhere/userdata/test; expected an ImageFolder tree*"])


def test_a_run_whose_every_case_skipped_fails_naming_the_reason(pytester, user_project):
    result = run_suite(pytester, "--edgeopt-data", str(pytester.path / "nowhere"), "-k", "accuracy")
    result.assert_outcomes(skipped=6)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*edgeopt: nothing measured*",
                                 "*all 6 suite cases skipped, nothing was measured; most often (6x): data folder not found*"])


def test_unknown_budget_key_is_a_usage_error(pytester, user_project):
    bad = pytester.path / "bad.toml"
    bad.write_text("[defaults]\ntop_1_min = 0.9\n")
    result = run_suite(pytester, "--edgeopt-budgets", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown budget 'top_1_min'*"])


@pytest.mark.parametrize("args, message", [
    (["--edgeopt-backends", "onnxrt"], "*--edgeopt-backends 'onnxrt' matches nothing; backends: *onnxruntime*"),
    (["--edgeopt-budgets", "typo.toml"], "*typo.toml ?variant.onnx_fp23?: no variant matches 'onnx_fp23'*"),
])
def test_a_selection_or_budget_naming_nothing_fails_instead_of_a_green_empty_run(pytester, user_project, args, message):
    (pytester.path / "typo.toml").write_text("[variant.onnx_fp23]\ntop1_drop_max = 0.1\n")
    result = run_suite(pytester, "--edgeopt-data", str(user_project), "-k", "size", *args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([message])


def test_without_a_budgets_file_the_suite_stops_and_says_how_to_give_one(pytester, user_project):
    pytester.makepyprojecttoml('[tool.edgeopt]\nmodels = ["user_models"]\n')
    result = run_suite(pytester, "--edgeopt-data", str(user_project), "-k", "size")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*no budgets file; pass --edgeopt-budgets FILE or set budgets*"])


def test_the_suite_runs_from_an_installed_wheel(pytester, user_project, tmp_path, monkeypatch):
    """Built and installed (--target) from a copy of the package: the repository is nowhere on sys.path."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "edgeopt", src / "edgeopt", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src], check=True)
    wheel = next((tmp_path / "dist").glob("edgeopt-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel], check=True)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    where = pytester.run(sys.executable, "-c", "import edgeopt.suite.plugin as p; print(p.__file__)")
    assert str(tmp_path / "site") in where.stdout.str()
    result = run_suite(pytester, "--edgeopt-data", str(user_project), "-k", "size or accuracy")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines([f"*{tmp_path.name}/site/edgeopt/suite/test_size.py::test_size?user_net-onnx_fp32? PASSED*"])


def test_gate_mode_times_the_latency_cases_against_a_base_and_saves_the_verdict(pytester, user_project, tmp_path):
    base_cache = tmp_path / "base-artifacts"  # an empty artifact cache: the base side builds its own
    base_cache.mkdir()
    result = run_suite(pytester, "--edgeopt-data", str(user_project), "-k", "latency", "--edgeopt-backends",
                       "torch,onnxruntime", "--edgeopt-gate-base", str(base_cache), "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    verdict = json.loads((pytester.path / "gate-results" / "verdict.json").read_text())
    assert sorted(r["case"] for r in verdict["cases"]) == ["user_net-fp32-torch", "user_net-onnx_fp32-onnxruntime"]
    assert all(len(r["samples_s"]["base"]) == r["rounds"] for r in verdict["cases"])


def test_gate_mode_refuses_xdist_workers(pytester, user_project):
    result = run_suite(pytester, "--edgeopt-gate-base", "HEAD", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--edgeopt-gate-base times both sides on this machine*"])


def test_compare_relative_on_a_kind_without_baseline_checks_ratios_to_the_reference(pytester, user_project):
    # Stored on another kind: fp32 at 0.01x the reference (any real run is far slower relative to it: flagged),
    # torchscript at 100x (never flagged).
    stored = pytester.path / "baselines" / "other-kind-1t" / "Linux-CPython-3.11-64bit"
    stored.mkdir(parents=True)
    (stored / "0001_other.json").write_text(json.dumps({"datetime": "2026-01-01T00:00:00", "benchmarks": [
        {"param": f"user_net-{case}", "stats": {"median": median}} for case, median in (
            ("onnx_fp32-onnxruntime", 1e-3), ("fp32-torch", 1e-5), ("torchscript-torchscript", 1e-1))]}))
    result = run_suite(pytester, "--edgeopt-data", str(user_project), "-k", "latency", "--benchmark-enable",
                       "--benchmark-max-time", "0.05", "--benchmark-min-rounds", "5", "--edgeopt-backends",
                       "torch,torchscript,onnxruntime", "--edgeopt-baselines", "baselines", "--edgeopt-compare-relative")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*user_net-fp32-torch slower relative to user_net-onnx_fp32-onnxruntime: * in "
                                 "other-kind-1t/0001_other.json*"])


@pytest.mark.parametrize("pyproject, models, message", [
    ('[tool.edgeopt]\nmodels = ["broken_models"]\nbudgets = "budgets.toml"\n', "x = 1\nraise ValueError('no GPU')\n",
     "*cannot import 'broken_models': ValueError: no GPU (*broken_models.py:2)*"),
    ('[tool.edgeopt]\nmodels = ["user_models"]\nbudget = "budgets.toml"\n', "",
     "*unknown key(s) budget in ?tool.edgeopt?; known: models, budgets*"),
])
def test_a_broken_user_setting_is_one_usage_error(pytester, user_project, pyproject, models, message):
    pytester.makepyprojecttoml(pyproject)
    pytester.makepyfile(broken_models=models)
    result = run_suite(pytester, "-k", "size")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
