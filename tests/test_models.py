import pytest
import torch

from edgeopt.models import ModelSpec, WeightsUnavailable, get_model, list_models, register_model, unregister_model
from tests.conftest import TINY_DATASET, TinyNet

BUILTINS = ["cifar_resnet", "efficientnet_lite0", "mobilenet_v2", "mobilenet_v2_cifar", "simple_cnn"]


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(list_models())
    assert list_models("mobilenet*") == ["mobilenet_v2", "mobilenet_v2_cifar"]
    assert list_models("simple_cnn, efficientnet_*") == ["efficientnet_lite0", "simple_cnn"]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_specs_build_a_network_of_the_declared_shape(name):
    spec = get_model(name)
    module = spec.factory().eval()
    with torch.no_grad():
        out = module(torch.zeros(1, *spec.input_size))
    assert out.shape == (1, spec.num_classes)


def test_efficientnet_lite0_loads_real_imagenet_weights_safely():
    weights = get_model("efficientnet_lite0").build()
    assert weights.pretrained and weights.source.endswith(".pth")
    assert weights.module.training is False


def test_unknown_model_lists_the_registry():
    with pytest.raises(KeyError, match="unknown model 'nope'; registered: .*simple_cnn"):
        get_model("nope")


def test_duplicate_registration_is_refused():
    spec = ModelSpec("dup_test", TinyNet, None, TINY_DATASET, (3, 8, 8), (0.5,) * 3, (0.5,) * 3, 3)
    register_model(spec)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_model(ModelSpec("dup_test", TinyNet, None, TINY_DATASET, (3, 8, 8), (0,) * 3, (1,) * 3, 3))
    finally:
        unregister_model("dup_test")


def test_unavailable_weights_fall_back_to_seeded_random_with_the_reason():
    def missing(module):
        raise WeightsUnavailable("weights live on a hub this machine cannot reach")

    spec = ModelSpec("nohub_test", TinyNet, missing, TINY_DATASET, (3, 8, 8), (0.5,) * 3, (0.5,) * 3, 3)
    a, b = spec.build(), spec.build()
    assert not a.pretrained and "cannot reach" in a.missing_reason
    assert torch.equal(a.module.fc.weight, b.module.fc.weight)  # seeded: agreement runs are reproducible


def test_mobilenet_v2_imagenet_weights_load_from_the_hub_cache_when_present(tmp_path, monkeypatch):
    """Offline here: simulate a user who has the file, by placing a state dict under torchvision's name."""
    import torch
    from torchvision.models import MobileNet_V2_Weights

    spec = get_model("mobilenet_v2")
    monkeypatch.delenv("EDGEOPT_MOBILENET_V2_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    missing = spec.build()
    assert not missing.pretrained and str(tmp_path / "checkpoints") in missing.missing_reason

    torch.manual_seed(1)
    saved = spec.factory().state_dict()
    path = tmp_path / "mine.pth"
    torch.save(saved, path)
    monkeypatch.setenv("EDGEOPT_MOBILENET_V2_WEIGHTS", str(path))
    loaded = spec.build()
    assert loaded.pretrained and loaded.source == str(path)
    assert torch.equal(loaded.module.classifier[1].weight, saved["classifier.1.weight"])
    monkeypatch.setenv("EDGEOPT_MOBILENET_V2_WEIGHTS", str(tmp_path / "typo.pth"))
    assert "is not a file" in spec.build().missing_reason
    assert MobileNet_V2_Weights.IMAGENET1K_V1.url.endswith(".pth")
