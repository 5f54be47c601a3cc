"""Bad input gets one line naming the file and what is wrong, never a traceback from inside a library."""
import json
import pickle

import numpy as np
import pytest
import torch

from edgeopt import cli
from edgeopt.backends import RunnerError
from edgeopt.data import InvalidData
from edgeopt.models import WeightsError, load_state_dict
from edgeopt.workbench import Workbench
from tests.conftest import TinyNet


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable image"),
    (b"this is not a jpeg", "not a readable image"),
])
def test_an_unreadable_image_is_a_failure_naming_the_file(tiny_model, data_dir, content, message):
    bad = data_dir / "tiny" / "test" / "cat" / "0002.png"
    bad.write_bytes(content)
    with pytest.raises(InvalidData, match=f"cat/0002.png: {message}"):
        Workbench(data_dir=data_dir).split("tiny_test")


def test_class_folders_that_do_not_fit_the_model_are_an_error(tiny_model, data_dir):
    extra = data_dir / "tiny" / "test" / "zebra"
    extra.mkdir()
    (extra / "0000.png").write_bytes((data_dir / "tiny" / "test" / "cat" / "0000.png").read_bytes())
    with pytest.raises(InvalidData, match="has 4 class folders .* but tiny_test predicts 3 classes"):
        Workbench(data_dir=data_dir).split("tiny_test")


def test_nan_outputs_fail_with_a_message_naming_nan(tiny_model, data_dir):
    wb = Workbench(data_dir=data_dir)
    with torch.no_grad():
        wb.weights("tiny_test").module.fc.bias.fill_(float("nan"))
    with pytest.raises(RunnerError, match="outputs hold NaN for 15 of 15 images"):
        wb.outputs("tiny_test", "fp32", "torch")
    assert not list((wb.cache_root or (data_dir.parent / "cache")).glob("outputs/*.npy"))  # nothing cached


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(torch.save.__doc__.encode()[:100]), "not a readable state dict"),
    (lambda p: p.write_bytes(p.read_bytes()[:300]), "not a readable state dict"),
    (lambda p: p.write_bytes(pickle.dumps({"w": np.zeros(2, dtype=object)})), "not a readable state dict|refused"),
    (lambda p: p.unlink(), "weights file not found"),
])
def test_unusable_weights_are_one_line(tmp_path, write, message):
    path = tmp_path / "w.pt"
    torch.save(TinyNet().state_dict(), path)
    write(path)
    with pytest.raises(WeightsError, match=message) as info:
        load_state_dict(path)
    assert "\n" not in str(info.value)


def test_weights_of_another_architecture_name_the_missing_and_unexpected_keys(tiny_model, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save({"features.0.weight": torch.zeros(1), **TinyNet(num_classes=5).state_dict()}, path)
    with pytest.raises(WeightsError) as info:
        tiny_model.build()
    line = str(info.value)
    assert "\n" not in line and line.startswith("tiny_test: the weights do not fit its architecture")
    assert "unexpected key(s) features.0.weight" in line and "size mismatch for fc.weight" in line


def test_cli_refuses_a_limit_of_zero_with_the_reason(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["measure", "simple_cnn", "fp32", "torch", "--limit", "0"])
    assert exit_.value.code == 2 and "--limit: must be >= 1, got 0" in capsys.readouterr().err


def test_cli_json_never_prints_nan(tiny_model, data_dir, capsys):
    assert cli.main(["measure", "tiny_test", "onnx_fp32", "onnxruntime", "--data", str(data_dir), "--json",
                     "--rounds", "2", "--warmup", "0"]) == 0
    result = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert result["top1_agreement"] == 1.0


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create the marker file if ever unpickled


def test_a_malicious_pickle_as_weights_is_refused_without_running_it(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"fc.weight": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="refused"):
        load_state_dict(path)
    assert not marker.exists()


def test_a_malicious_file_swapped_into_the_outputs_cache_is_rebuilt_not_loaded(tiny_model, data_dir, isolated_cache):
    wb = Workbench(data_dir=data_dir)
    good = wb.outputs("tiny_test", "fp32", "torch")
    cached = next(isolated_cache.glob("outputs/*.npy"))
    np.save(cached, np.array([_Payload(isolated_cache / "pwned")], dtype=object), allow_pickle=True)
    with pytest.warns(UserWarning, match="differs from what was written|bytes"):
        again = Workbench(data_dir=data_dir).outputs("tiny_test", "fp32", "torch")
    assert np.array_equal(good, again) and not (isolated_cache / "pwned").exists()
