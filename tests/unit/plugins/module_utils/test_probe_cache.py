# -*- coding: utf-8 -*-
"""containers/storage's cached probe answers in the runroot: reading them, clearing one."""

import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.probe_cache import (
    ProbeCacheError,
    clear_negative_marker,
    read_probe_cache,
)


def runroot(tmp_path, *names):
    cache = tmp_path / "overlay"
    cache.mkdir()
    for name in names:
        (cache / name).write_text("")
    return str(tmp_path)


def test_reads_what_podman_5_8_writes(tmp_path):
    root = runroot(tmp_path, "idmapped-lower-dir-false", "metacopy()-false", "native-diff()-true",
                   "overlay-true", "volatile-true")
    (tmp_path / "overlay" / "overlay-true").write_text("")
    cache = read_probe_cache(root)
    assert cache["present"] is True and cache["dir"] == str(tmp_path / "overlay")
    assert cache["markers"] == {"idmapped-lower-dir": False, "metacopy()": False, "native-diff()": True,
                                "overlay": True, "volatile": True}
    assert cache["negative_sharing"] == ["idmapped-lower-dir"]
    assert cache["files"]["idmapped-lower-dir"] == str(tmp_path / "overlay" / "idmapped-lower-dir-false")


def test_true_wins_as_in_containers_storage_and_texts_are_kept(tmp_path):
    root = runroot(tmp_path, "overlay-true", "overlay-false", "native-diff(nodev)-false")
    (tmp_path / "overlay" / "native-diff(nodev)-false").write_text("Not using native diff: EINVAL")
    cache = read_probe_cache(root)
    assert cache["markers"] == {"overlay": True, "native-diff(nodev)": False}
    assert cache["texts"] == {"native-diff(nodev)": "Not using native diff: EINVAL"}
    assert cache["negative_sharing"] == []


def test_missing_cache_other_driver_and_odd_entries(tmp_path):
    assert read_probe_cache(str(tmp_path / "nope"))["present"] is False
    assert read_probe_cache(str(tmp_path), "vfs")["dir"] is None
    root = runroot(tmp_path, "alive", "idmapped-lower-dir-maybe")
    os.mkdir(str(tmp_path / "overlay" / "overlay-false"))           # not a regular file
    os.symlink("/etc/passwd", str(tmp_path / "overlay" / "volatile-true"))
    assert read_probe_cache(root)["markers"] == {}


def test_clear_removes_only_the_negative_file_and_is_idempotent(tmp_path):
    root = runroot(tmp_path, "idmapped-lower-dir-false", "overlay-true")
    marker = tmp_path / "overlay" / "idmapped-lower-dir-false"
    checked = clear_negative_marker(root, "idmapped-lower-dir", check_mode=True)
    assert checked == {"path": str(marker), "existed": True, "removed": True, "text": ""}
    assert marker.exists()
    done = clear_negative_marker(root, "idmapped-lower-dir")
    assert done["removed"] is True and not marker.exists()
    assert sorted(os.listdir(str(tmp_path / "overlay"))) == ["overlay-true"]
    again = clear_negative_marker(root, "idmapped-lower-dir")
    assert again["removed"] is False and again["existed"] is False


def test_clear_refuses_anything_but_a_regular_negative_file(tmp_path):
    root = runroot(tmp_path)
    os.mkdir(str(tmp_path / "overlay" / "overlay-false"))
    with pytest.raises(ProbeCacheError, match="not a regular file.*nothing was changed"):
        clear_negative_marker(root, "overlay")
    assert (tmp_path / "overlay" / "overlay-false").is_dir()
    target = tmp_path / "keep"
    target.write_text("x")
    os.symlink(str(target), str(tmp_path / "overlay" / "idmapped-lower-dir-false"))
    with pytest.raises(ProbeCacheError):
        clear_negative_marker(root, "idmapped-lower-dir")
    assert target.read_text() == "x"
    with pytest.raises(ProbeCacheError, match="not a cached probe that decides sharing"):
        clear_negative_marker(root, "metacopy()")
