import json
import subprocess
import sys

import pytest

from edgeopt import cli

USER_MODULE = '''
import torch
from edgeopt.models import register_model
from tests.conftest import TINY_DATASET, TinyNet
from edgeopt.models import ModelSpec

def load(module):
    return "seeded"

register_model(ModelSpec("cli_tiny", TinyNet, load, TINY_DATASET, (3, 8, 8), (0.5,) * 3, (0.25,) * 3, 3, eval_batch=4))
'''


def test_models_lists_the_registry(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "simple_cnn" in out and "efficientnet_lite0" in out


def test_models_json_with_a_pattern(capsys):
    assert cli.main(["models", "mobilenet*", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)]
    assert names == ["mobilenet_v2", "mobilenet_v2_cifar"]


def test_measure_prints_one_json_object(tmp_path, data_dir, monkeypatch, capsys):
    (tmp_path / "cli_user_models.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = cli.main(["--models-from", "cli_user_models", "measure", "cli_tiny", "onnx_fp32", "onnxruntime",
                   "--data", str(data_dir), "--limit", "10", "--rounds", "5", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["eval_images"] == 10 and result["compared_images"] == 10
    assert result["top1_drop"] == pytest.approx(0.0, abs=1e-9) and result["top1_agreement"] == 1.0
    assert result["size_bytes"] > 0 and result["latency_median_ms"] > 0
    for key in ("top1", "sqnr_db", "max_abs_error", "macs"):
        assert key in result


@pytest.mark.parametrize("args, message", [
    (["measure", "nope", "fp32", "torch"], "unknown model 'nope'"),
    (["measure", "simple_cnn", "int3", "torch"], "unknown variant 'int3'"),
    (["measure", "simple_cnn", "onnx_fp32", "torch"], "backend 'torch' does not run onnx_fp32"),
    (["measure", "simple_cnn", "fp32", "torch", "--data", "/nonexistent"], "data folder not found: /nonexistent"),
    (["finetune", "simple_cnn", "prune_l1_50"], "prune_l1_50 does not train"),
    (["finetune", "simple_cnn", "prune_finetune_50"], "already committed"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgeopt: error: ") and message in err and "Traceback" not in err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "edgeopt.cli", "models"], capture_output=True, text=True, check=True)
    assert "mobilenet_v2_cifar" in out.stdout
