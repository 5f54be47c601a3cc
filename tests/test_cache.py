import pytest

from edgeopt import cache


def test_entry_is_built_once(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        tmp.write_text("v1")

    path = tmp_path / "entry.txt"
    assert cache.get_or_create(path, build).read_text() == "v1"
    assert cache.get_or_create(path, build).read_text() == "v1"
    assert len(calls) == 1


def test_failed_build_leaves_nothing_and_keeps_existing_entries(tmp_path):
    good = tmp_path / "good"
    cache.get_or_create(good, lambda tmp: tmp.mkdir())

    def broken(tmp):
        tmp.mkdir()
        (tmp / "half.onnx").write_text("partial")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        cache.get_or_create(tmp_path / "bad", broken)
    assert sorted(p.name for p in tmp_path.iterdir() if ".lock" not in p.name) == ["good"]


def test_digest_is_order_independent_and_content_sensitive():
    assert cache.digest({"a": 1, "b": 2}) == cache.digest({"b": 2, "a": 1})
    assert cache.digest({"a": 1}) != cache.digest({"a": 2})


def test_leftovers_of_a_killed_build_are_removed_by_the_next_build_of_that_entry(tmp_path):
    killed = tmp_path / ".entry.12345.tmp"
    killed.mkdir()
    (killed / "half.onnx").write_text("partial")
    other = tmp_path / ".other-entry.12345.tmp"  # another entry's build may still be running: left alone
    other.write_text("in progress")
    longer = tmp_path / ".entry.v2.12345.tmp"  # the build of an entry named "entry.v2"
    longer.write_text("in progress")
    cache.get_or_create(tmp_path / "entry", lambda tmp: tmp.mkdir())
    assert not killed.exists() and other.exists() and longer.exists() and (tmp_path / "entry").is_dir()


BUILD_MODULE = '''
from dataclasses import dataclass
import torch
from edgeopt.artifact import write_meta
from edgeopt.recipes.base import Recipe, build_into

@dataclass(frozen=True)
class Scaled(Recipe):
    name: str = "scaled"
    format = "torch"

@build_into.register
def _(recipe: Scaled, model, ctx, directory):
    torch.save({k: v * SCALE for k, v in model.state_dict().items()}, directory / "model.pt")
    write_meta(directory, file="model.pt")
'''


def test_an_edited_build_function_rebuilds_its_artifact(tiny_model, tmp_path, monkeypatch):
    import importlib

    from edgeopt.recipes import build

    monkeypatch.syspath_prepend(str(tmp_path))
    module = tmp_path / "user_recipe.py"
    module.write_text(BUILD_MODULE.replace("SCALE", "1.0"))
    recipe_mod = importlib.import_module("user_recipe")
    first = build(tiny_model, recipe_mod.Scaled(), tiny_model.build())
    assert build(tiny_model, recipe_mod.Scaled(), tiny_model.build()).path == first.path  # unchanged: cached
    module.write_text(BUILD_MODULE.replace("SCALE", "0.5"))
    recipe_mod = importlib.reload(recipe_mod)
    second = build(tiny_model, recipe_mod.Scaled(), tiny_model.build())
    assert second.key != first.key and second.path.exists() and first.path.exists()
    import torch
    assert not torch.equal(*(torch.load(a.path, weights_only=True)["fc.weight"] for a in (first, second)))


def test_an_edited_build_helper_rebuilds_its_artifact(tiny_model, tmp_path, monkeypatch):
    import importlib

    from edgeopt.recipes import build

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "user_helper.py").write_text("SCALE = 1.0\n")
    (tmp_path / "user_recipe2.py").write_text(BUILD_MODULE.replace('"torch"\n', '"torch"\n    build_helpers = ("user_helper",)\n')
                                              .replace("SCALE", "__import__('user_helper').SCALE"))
    recipe = importlib.import_module("user_recipe2").Scaled()
    first = build(tiny_model, recipe, tiny_model.build())
    (tmp_path / "user_helper.py").write_text("SCALE = 0.5\n")
    importlib.reload(importlib.import_module("user_helper"))
    assert build(tiny_model, recipe, tiny_model.build()).key != first.key
