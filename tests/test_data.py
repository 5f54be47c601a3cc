import numpy as np
import pytest

from edgeopt import data
from edgeopt.data import DataError, DatasetSpec, load_split, normalize
from tests.conftest import TINY_DATASET, write_image_folder


def test_load_split_decodes_labels_in_sorted_class_order(data_dir):
    split = load_split(TINY_DATASET, "eval", data_dir)
    assert split.images.shape == (15, 8, 8, 3) and split.images.dtype == np.uint8
    assert split.classes == ("cat", "dog", "frog")
    assert list(split.labels) == [0] * 5 + [1] * 5 + [2] * 5
    assert split.files[0] == "cat/0000.png"


def test_second_load_comes_from_cache_without_decoding(data_dir, monkeypatch):
    first = load_split(TINY_DATASET, "eval", data_dir)
    monkeypatch.setattr(data, "_decode", lambda *a: pytest.fail("decoded again despite the cache"))
    second = load_split(TINY_DATASET, "eval", data_dir)
    np.testing.assert_array_equal(first.images, second.images)


def test_changed_tree_invalidates_cache(data_dir):
    before = len(load_split(TINY_DATASET, "eval", data_dir))
    write_image_folder(data_dir / "tiny" / "test", per_class=6, seed=1)
    assert len(load_split(TINY_DATASET, "eval", data_dir)) == before + 3


def test_single_tree_holdout_partition_never_overlaps(tmp_path):
    write_image_folder(tmp_path / "one", per_class=10)
    spec = DatasetSpec("one", eval_dir="one", holdout_every=4, crop=8)
    ev, cal = load_split(spec, "eval", tmp_path), load_split(spec, "calib", tmp_path)
    assert len(ev) + len(cal) == 30
    assert not set(ev.files) & set(cal.files)
    assert cal.files == tuple(f for i, f in enumerate(sorted(ev.files + cal.files)) if i % 4 == 0)


def test_separate_calibration_tree(data_dir):
    ev, cal = load_split(TINY_DATASET, "eval", data_dir), load_split(TINY_DATASET, "calib", data_dir)
    assert len(ev) == 15 and len(cal) == 12


def test_resize_and_centre_crop(tmp_path):
    write_image_folder(tmp_path / "big", per_class=1, size=40)
    spec = DatasetSpec("big", eval_dir="big", calib_dir="big", resize=20, crop=16)
    assert load_split(spec, "eval", tmp_path).images.shape == (3, 16, 16, 3)


def test_image_smaller_than_input_is_a_clear_error(tmp_path):
    write_image_folder(tmp_path / "small", per_class=1, size=8)
    spec = DatasetSpec("small", eval_dir="small", calib_dir="small", crop=32)
    with pytest.raises(DataError, match="smaller than the 32x32 input"):
        load_split(spec, "eval", tmp_path)


def test_missing_folder_names_path_and_layout(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(TINY_DATASET, "eval", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "tiny" / "test") in str(err.value)
    assert "<class_name>/<image>" in str(err.value)


def test_folder_without_class_dirs_or_images(tmp_path):
    (tmp_path / "tiny" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        load_split(TINY_DATASET, "eval", tmp_path)
    (tmp_path / "tiny" / "test" / "cat").mkdir()
    (tmp_path / "tiny" / "test" / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no images"):
        load_split(TINY_DATASET, "eval", tmp_path)


def test_normalize_is_nchw_float32():
    x = normalize(np.full((2, 4, 4, 3), 255, np.uint8), (0.5, 0.5, 0.5), (0.5, 0.25, 0.5))
    assert x.shape == (2, 3, 4, 4) and x.dtype == np.float32
    assert x[0, :, 0, 0].tolist() == [1.0, 2.0, 1.0]


def test_subset_is_evenly_spaced_across_classes(data_dir):
    split = load_split(TINY_DATASET, "eval", data_dir)
    small = split.subset(3)
    assert list(small.labels) == [0, 1, 2]
    assert small.files == ("cat/0000.png", "dog/0002.png", "frog/0004.png")
    assert split.subset(None) is split and split.subset(100) is split


def test_split_files_matches_load_split_without_decoding(data_dir, monkeypatch):
    from edgeopt.data import split_files

    expected = load_split(TINY_DATASET, "calib", data_dir).subset(5).files
    monkeypatch.setattr(data, "_decode", lambda *a: pytest.fail("decoded"))
    assert split_files(TINY_DATASET, "calib", data_dir, 5) == expected
