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


def _read_only_mounts_work(tmp_path) -> bool:
    """A real read-only file system needs a mount namespace (root, or unprivileged user namespaces)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {probe}"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_cache_on_a_read_only_file_system_is_one_clear_error(tmp_path):
    from tests.conftest import write_image_folder
    from tests.test_user_project import USER_MODELS

    if not _read_only_mounts_work(tmp_path):
        pytest.skip("no mount namespace here (unshare --user --mount refused): cannot mount a read-only file system")
    (tmp_path / "user_models.py").write_text(USER_MODELS)
    write_image_folder(tmp_path / "data" / "userdata" / "test", per_class=2, seed=3)
    write_image_folder(tmp_path / "data" / "userdata" / "train", per_class=2, seed=4)
    env = {**os.environ, "EDGEOPT_CACHE": str(tmp_path / "ro-cache"), "PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import torch, user_models; torch.save(user_models.UserNet().state_dict(), "
                    "'user_net.pt')"], cwd=tmp_path, env=env, check=True)
    (tmp_path / "ro-cache").mkdir()
    measure = (f"{sys.executable} -m edgeopt.cli --models-from user_models measure user_net onnx_fp32 onnxruntime "
               f"--data {tmp_path / 'data'} --limit 4")
    run = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                          f"mount -t tmpfs -o ro tmpfs {tmp_path / 'ro-cache'} && exec {measure}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr[-2000:]
    assert "ro-cache" in run.stderr and "Read-only file system" in run.stderr and "EDGEOPT_CACHE" in run.stderr
