# -*- coding: utf-8 -*-
"""Safe deletion, usage counting, JSON writing, lock tokens."""

import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store import usage
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import TamperedStoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.jsonfile import read_json_list, write_json_list
from ansible_collections.idmapguard.storage.plugins.module_utils.store.layout import is_valid_id
from ansible_collections.idmapguard.storage.plugins.module_utils.store.locks import LockFile, TOKEN_SIZE
from ansible_collections.idmapguard.storage.plugins.module_utils.store.safe_delete import remove_tree_at


def _tree(root, width=30, depth=6):
    path = root
    for level in range(depth):
        path = os.path.join(path, "d%d" % level)
        os.makedirs(path)
        for index in range(width):
            with open(os.path.join(path, "f%d" % index), "w") as handle:
                handle.write("x")
        os.symlink("/etc/passwd", os.path.join(path, "link"))
    return width * depth + depth * 2


def test_remove_tree_streams_and_never_follows_symlinks(tmp_path):
    target = tmp_path / "victim"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    target.mkdir()
    count = _tree(str(target))
    os.symlink(str(outside), str(target / "to-outside"))
    assert usage.tree_usage(str(tmp_path), "victim")[0] == count + 2
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert remove_tree_at(fd, "victim") is True
        assert remove_tree_at(fd, "victim") is False
    finally:
        os.close(fd)
    assert not target.exists() and (outside / "keep").read_text() == "keep"


@pytest.mark.parametrize("links_inside,links_outside", [(0, 0), (2, 0), (1, 1), (3, 2)])
def test_remove_tree_counts_inodes_freed_not_names(tmp_path, links_inside, links_outside):
    """Hard links (the seed-size userland image has them) free an inode with their last name:
    the count is the inodes freed, as tree_usage measures them (not the names removed)."""
    target = tmp_path / "victim"
    (target / "sub").mkdir(parents=True)
    (target / "file").write_text("x")
    for index in range(links_inside):
        os.link(str(target / "file"), str(target / "sub" / ("link%d" % index)))
    for index in range(links_outside):
        os.link(str(target / "file"), str(tmp_path / ("outside%d" % index)))
    measured = usage.tree_usage(str(tmp_path), "victim")[0]
    removed = [0]
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert remove_tree_at(fd, "victim", removed=removed) is True
    finally:
        os.close(fd)
    # victim, sub, and the file's inode unless a name outside keeps it
    expected = 2 + (0 if links_outside else 1)
    assert removed[0] == expected
    assert measured == 3 and not links_outside or removed[0] == measured - 1


def test_remove_tree_refuses_a_symlinked_root(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "file").write_text("x")
    os.symlink(str(tmp_path / "real"), str(tmp_path / "link"))
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(TamperedStoreError):
            remove_tree_at(fd, "link")
    finally:
        os.close(fd)
    assert (tmp_path / "real" / "file").exists()


def test_json_round_trip_keeps_unknown_fields(tmp_path):
    path = str(tmp_path / "layers.json")
    records = [{"id": "a" * 64, "zzz-future": {"nested": [1, 2]}, "names": ["é"]}]
    write_json_list(path, records)
    assert read_json_list(path) == records
    assert os.listdir(str(tmp_path)) == ["layers.json"]  # no temp file left
    with open(path, "w") as handle:
        handle.write("")
    assert read_json_list(path) == []


def test_lock_token_is_64_bytes_and_changes(tmp_path):
    path = str(tmp_path / "layers.lock")
    with open(path, "wb") as handle:
        handle.write(b"\0" * 64)
    lock = LockFile(path)
    lock.acquire(exclusive=True)
    tokens = set()
    for _round in range(3):
        lock.record_write()
        with open(path, "rb") as handle:
            tokens.add(handle.read())
    lock.release()
    assert len(tokens) == 3 and all(len(t) == TOKEN_SIZE for t in tokens)


def test_lock_never_creates_the_file(tmp_path):
    lock = LockFile(str(tmp_path / "missing.lock"))
    with pytest.raises(Exception):
        lock.acquire(exclusive=False)
    assert not (tmp_path / "missing.lock").exists()


def test_run_in_background_returns_raises_and_leaves_the_caller_alone():
    import threading
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import priority

    def mine():
        return (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                priority.get_io_priority())

    before = mine()
    value, taken = priority.run_in_background(mine)
    if taken["low_cpu"]:
        assert value[:2] == (os.SCHED_BATCH, 19)
    if taken["idle_io"]:
        assert value[2] == priority.idle_io_value()
    if os.geteuid() == 0:
        assert taken == {"low_cpu": True, "idle_io": True}
    assert mine() == before

    def fails():
        raise ValueError("walk failed")

    with pytest.raises(ValueError, match="walk failed"):
        priority.run_in_background(fails)


def test_id_check():
    assert is_valid_id("a" * 64)
    for bad in ("A" * 64, "a" * 63, "../" + "a" * 61, None, 5, "a" * 64 + "\n"):
        assert not is_valid_id(bad)
