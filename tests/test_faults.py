"""Faults the cache must survive: changed bytes, truncation, a stopped lock holder, an unusable folder."""
import os
import signal
import subprocess
import sys
import time

import pytest

from edgeopt import cache


def _build_dir(calls):
    def build(tmp):
        calls.append(tmp)
        tmp.mkdir()
        (tmp / "model.onnx").write_bytes(bytes(range(256)) * 40)
    return build


def test_an_entry_whose_bytes_changed_at_the_same_size_is_rebuilt_with_a_warning(tmp_path):
    calls, entry = [], tmp_path / "m-onnx_fp32-abc"
    cache.get_or_create(entry, _build_dir(calls))
    with open(entry / "model.onnx", "r+b") as fh:  # 100 bytes overwritten, size unchanged
        fh.seek(1000)
        fh.write(b"\0" * 100)
    with pytest.warns(cache.CacheWarning, match="m-onnx_fp32-abc model.onnx differs from what was written"):
        cache.get_or_create(entry, _build_dir(calls))
    assert len(calls) == 2 and (entry / "model.onnx").read_bytes() == bytes(range(256)) * 40


def test_a_truncated_file_entry_is_rebuilt(tmp_path):
    calls, entry = [], tmp_path / "outputs.npy"
    build = lambda tmp: (calls.append(tmp), tmp.write_bytes(b"x" * 4096))  # noqa: E731
    cache.get_or_create(entry, build)
    entry.write_bytes(b"x" * 10)
    with pytest.warns(cache.CacheWarning, match=r"outputs.npy \. is 10 bytes, 4096 when written"):
        cache.get_or_create(entry, build)
    assert entry.stat().st_size == 4096 and len(calls) == 2


def test_an_entry_without_its_seal_is_not_trusted(tmp_path):
    entry = tmp_path / "old-entry"
    entry.mkdir()
    (entry / "model.onnx").write_text("from an edgeopt before seals, or a killed write")
    with pytest.warns(cache.CacheWarning, match="no readable integrity record"):
        cache.get_or_create(entry, _build_dir([]))


HOLDER = """
import sys, time
from edgeopt import cache
def build(tmp):
    print("holding", flush=True)
    time.sleep(600)
cache.get_or_create(__import__("pathlib").Path(sys.argv[1]), build)
"""


def test_a_lock_held_by_a_stopped_process_is_an_error_naming_it_after_a_bounded_wait(tmp_path, monkeypatch):
    entry = tmp_path / "entry"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(entry)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        os.kill(holder.pid, signal.SIGSTOP)  # Ctrl-Z
        monkeypatch.setenv("EDGEOPT_LOCK_PATIENCE", "1")
        start = time.monotonic()
        with pytest.raises(cache.CacheError, match=f"held by process {holder.pid}, which is stopped"):
            cache.get_or_create(entry, _build_dir([]))
        assert time.monotonic() - start < 30
    finally:
        holder.kill()
        holder.wait()


def test_an_unusable_cache_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(cache.CacheError, match="not-a-folder/artifacts is not usable .*set EDGEOPT_CACHE"):
        cache.get_or_create(blocker / "artifacts" / "entry", _build_dir([]))
