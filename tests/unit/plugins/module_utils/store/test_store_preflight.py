# -*- coding: utf-8 -*-
"""Pre-flight (inode flags that stop a deletion) and stranded staging, on a synthetic store
with real inode flags (FS_IOC_SETFLAGS: root on ext4/xfs/btrfs/tmpfs; skipped elsewhere)."""

import ctypes
import errno
import fcntl
import os
import sys

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store import libc, preflight
from ansible_collections.idmapguard.storage.plugins.module_utils.store.preflight import (
    FS_APPEND_FL, FS_IMMUTABLE_FL, flags_at, flags_by_statx, flags_of_fd, preflight_copy,
)

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import standard

FS_IOC_SETFLAGS = (1 << 30) | (ctypes.sizeof(ctypes.c_long) << 16) | (ord("f") << 8) | 2


def _set(path, flag, on):
    parent, name = os.path.split(path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        # All the inode's flags (ext4's extents flag too: clearing that one is a migration).
        current = flags_of_fd(fd)
        new = (current | flag) if on else (current & ~flag)
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, new.to_bytes(4, sys.byteorder) + b"\0" * 4)
    finally:
        os.close(fd)


@pytest.fixture
def chattr():
    """chattr(path, flag, on): sets/clears an inode flag; every flag set is cleared at the end."""
    set_flags = []

    def change(path, flag, on=True):
        try:
            _set(path, flag, on)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
                pytest.skip("inode flags cannot be set here: %s" % exc)
            raise
        if on:
            set_flags.append((path, flag))

    yield change
    for path, flag in reversed(set_flags):
        try:
            _set(path, flag, False)
        except OSError:
            pass


def _flags(path, reader=flags_at):
    parent, name = os.path.split(path)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return reader(fd, name, os.lstat(path).st_mode) if reader is flags_at else reader(fd, name)
    finally:
        os.close(fd)


def test_statx_struct_is_the_kernels_layout():
    # include/uapi/linux/stat.h: 0x100 bytes, the offsets its comments give.
    assert ctypes.sizeof(libc.Statx) == 0x100
    offsets = {name: getattr(libc.Statx, name).offset for name in (
        "stx_attributes", "stx_nlink", "stx_mode", "stx_ino", "stx_blocks", "stx_attributes_mask",
        "stx_rdev_major", "stx_mnt_id")}
    assert offsets == {"stx_attributes": 0x08, "stx_nlink": 0x10, "stx_mode": 0x1c, "stx_ino": 0x20,
                       "stx_blocks": 0x30, "stx_attributes_mask": 0x38, "stx_rdev_major": 0x80,
                       "stx_mnt_id": 0x90}


def test_statx_agrees_with_lstat(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"x" * 5000)
    os.link(str(target), str(tmp_path / "g"))
    os.symlink("f", str(tmp_path / "s"))
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("f", "s"):
            buf = libc.statx(fd, name, libc.AT_SYMLINK_NOFOLLOW, 0x7ff)  # STATX_BASIC_STATS
            if buf is None:
                pytest.skip("no statx here")
            st = os.lstat(str(tmp_path / name))
            assert (buf.stx_ino, buf.stx_nlink, buf.stx_mode, buf.stx_size, buf.stx_blocks) == (
                st.st_ino, st.st_nlink, st.st_mode, st.st_size, st.st_blocks)
        with pytest.raises(FileNotFoundError):
            libc.statx(fd, "missing", libc.AT_SYMLINK_NOFOLLOW, 0)
    finally:
        os.close(fd)


def test_flagged_lstat_measures_like_lstat(tmp_path, monkeypatch):
    """The pre-flight's one statx per entry counts exactly what the lstat walk counts (hard
    links once, symlinks, directories), with statx and in its os.stat fallback."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import usage

    root = tmp_path / "tree"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"y" * 10000)
    os.link(str(root / "d" / "f"), str(root / "d" / "e" / "hard"))
    os.symlink("../f", str(root / "d" / "e" / "s"))
    os.mkfifo(str(root / "fifo"))
    plain = usage.tree_usage(str(tmp_path), "tree")
    assert plain[0] == 6  # tree, d, e, f (hard counted once), s, fifo
    fd = os.open(str(root / "d"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("f", "e"):
            got, st = preflight.flagged_lstat(fd, name), os.lstat(str(root / "d" / name))
            assert (got.st_mode, got.st_nlink, got.st_dev, got.st_ino, got.st_blocks) == (
                st.st_mode, st.st_nlink, st.st_dev, st.st_ino, st.st_blocks)
    finally:
        os.close(fd)
    assert usage.tree_usage(str(tmp_path), "tree", lstat_at=preflight.flagged_lstat) == plain
    # The pre-flight's own loop (statx into one buffer) counts the same.
    assert preflight.walk_part(str(tmp_path), "tree", preflight._Walker(str(tmp_path))) == plain
    assert preflight.walk_part(str(root / "d"), "f", preflight._Walker(str(root / "d"))) == \
        usage.tree_usage(str(root / "d"), "f")
    assert preflight.walk_part(str(tmp_path), "missing", preflight._Walker(str(tmp_path))) == (0, 0)
    monkeypatch.setattr(preflight, "statx", lambda *args: None)
    assert usage.tree_usage(str(tmp_path), "tree", lstat_at=preflight.flagged_lstat) == plain
    assert preflight.walk_part(str(tmp_path), "tree", preflight._Walker(str(tmp_path))) == plain
    monkeypatch.setattr(preflight, "statx_buffer", lambda: None)  # no statx in libc at all
    assert preflight.walk_part(str(tmp_path), "tree", preflight._Walker(str(tmp_path))) == plain


def _unreported_attributes():
    """A raw statx that answers, but as a filesystem that does not report the flags' bits."""
    raw = libc.statx_buffer()
    call, buf = raw[0], raw[1]

    def answer(*args):
        done = call(*args)
        buf.stx_attributes_mask = 0
        buf.stx_attributes = 0
        return done

    return (answer,) + tuple(raw[1:])


@pytest.mark.parametrize("what", ["file", "dir", "hardlink"])
def test_walk_finds_flags_in_its_own_loop_and_where_statx_cannot_tell(tmp_path, chattr, monkeypatch, what):
    """walk_part reads the flags from statx in its loop, and takes the ioctl for an entry whose
    filesystem does not report them through statx; both give the reasons the general walk
    gives (for a directory the flags, and no unwritable line besides)."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import usage

    root = tmp_path / "tree"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"y")
    os.link(str(root / "d" / "f"), str(root / "d" / "e" / "hard"))
    target = {"file": root / "d" / "f", "dir": root / "d" / "e", "hardlink": root / "d" / "e" / "hard"}[what]
    chattr(str(target), FS_APPEND_FL if what == "dir" else FS_IMMUTABLE_FL)
    if _flags(str(target), flags_by_statx) is None:
        pytest.skip("this filesystem does not report immutable/append-only through statx")

    def reasons(walk):
        walker = preflight._Walker(str(tmp_path))
        counted = walk(walker)
        return counted, sorted(walker.reasons)

    general = reasons(lambda w: usage.tree_usage(str(tmp_path), "tree", w, preflight.flagged_lstat))
    word = "append-only" if what == "dir" else "immutable"
    # A hard-linked file is flagged under each of its names (either name stops the unlink).
    named = [str(root / "d" / "f"), str(root / "d" / "e" / "hard")] if what != "dir" else [str(target)]
    assert general[1] == sorted("%s: %s" % (path, word) for path in named)
    assert reasons(lambda w: preflight.walk_part(str(tmp_path), "tree", w)) == general
    monkeypatch.setattr(preflight, "statx_buffer", _unreported_attributes)
    assert reasons(lambda w: preflight.walk_part(str(tmp_path), "tree", w)) == general


@pytest.mark.parametrize("kind,flag,word", [
    ("file", FS_IMMUTABLE_FL, "immutable"), ("file", FS_APPEND_FL, "append-only"),
    ("dir", FS_IMMUTABLE_FL, "immutable"), ("dir", FS_APPEND_FL, "append-only"),
])
def test_flags_are_read_by_statx_and_by_the_ioctl_fallback_alike(tmp_path, chattr, monkeypatch, kind, flag, word):
    target = tmp_path / "t"
    if kind == "dir":
        target.mkdir()
    else:
        target.write_text("x")
    assert _flags(str(target)) == 0
    chattr(str(target), flag)
    by_statx = _flags(str(target), flags_by_statx)
    if by_statx is None:
        pytest.skip("this filesystem does not report immutable/append-only through statx")
    assert by_statx == flag and _flags(str(target)) == flag
    assert preflight.flag_words(_flags(str(target))) == word
    # The fallback: no statx at all, and a filesystem that does not report these attributes.
    ioctl_calls = []
    real_ioctl = preflight._flags_by_ioctl

    def counting(*args):
        ioctl_calls.append(args[1])
        return real_ioctl(*args)

    monkeypatch.setattr(preflight, "_flags_by_ioctl", counting)
    monkeypatch.setattr(preflight, "statx", lambda *args: None)
    assert _flags(str(target)) == flag and ioctl_calls == ["t"]
    monkeypatch.setattr(preflight, "statx", lambda *args: libc.Statx())  # attributes_mask 0
    assert _flags(str(target)) == flag and ioctl_calls == ["t", "t"]


def test_walk_reads_flags_without_opening_files_where_statx_reports_them(fake_store, chattr, monkeypatch):
    ids = standard(fake_store)
    victim = ids["copies"][1]
    etc = fake_store.path("overlay", victim, "diff", "etc")
    target = os.path.join(etc, sorted(os.listdir(etc))[0])
    chattr(target, FS_IMMUTABLE_FL)
    if _flags(target, flags_by_statx) is None:
        pytest.skip("this filesystem does not report immutable/append-only through statx")
    opened = []
    monkeypatch.setattr(preflight, "_flags_by_ioctl", lambda *args: opened.append(args[1]) or 0)
    layout = Store(StoreLocation(fake_store.graphroot, fake_store.runroot)).layout
    with open(fake_store.path("overlay", victim, "link")) as handle:
        link = handle.read().strip()
    inodes, _size, reasons, _seen = preflight_copy(layout, victim, link)
    assert opened == [] and inodes > 3
    assert reasons == ["%s: immutable" % target]


def test_walk_falls_back_to_the_ioctl_without_statx(fake_store, chattr, monkeypatch):
    ids = standard(fake_store)
    victim = ids["copies"][1]
    etc = fake_store.path("overlay", victim, "diff", "etc")
    chattr(etc, FS_APPEND_FL)
    monkeypatch.setattr(preflight, "statx", lambda *args: None)
    monkeypatch.setattr(preflight, "statx_buffer", lambda: None)
    layout = Store(StoreLocation(fake_store.graphroot, fake_store.runroot)).layout
    _inodes, _size, reasons, _seen = preflight_copy(layout, victim, None)
    assert reasons == ["%s: append-only" % etc]


def _staging_left(fake_store):
    found = []
    for root in (fake_store.path("idmapguard-staging"), fake_store.path("overlay", "tempdirs")):
        for dirpath, dirnames, filenames in os.walk(root):
            found.extend(os.path.join(dirpath, name) for name in dirnames + filenames)
    return found


@pytest.mark.parametrize("what,flag,word", [
    ("file", FS_IMMUTABLE_FL, "immutable"),
    ("dir", FS_APPEND_FL, "append-only"),
])
def test_undeletable_copy_is_skipped_whole_and_the_rest_goes_on(fake_store, chattr, what, flag, word):
    ids = standard(fake_store)
    victim, other = ids["copies"][1], ids["copies"][2]
    etc = fake_store.path("overlay", victim, "diff", "etc")
    target = etc if what == "dir" else os.path.join(etc, sorted(os.listdir(etc))[0])
    chattr(target, flag)
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60)
    assert victim not in plan.layer_ids and other in plan.layer_ids
    assert plan.undeletable == [{"layer_id": victim, "reason": "undeletable",
                                 "why": ["undeletable: %s: %s" % (target, word)]}]
    layers_before = open(fake_store.path("overlay-layers", "layers.json"), "rb").read()
    victim_files = sorted(os.walk(fake_store.path("overlay", victim)))
    result = store.prune(plan, 60)
    assert [s["reason"] for s in result.not_removed] == ["undeletable"]
    assert other in [c.layer_id for c in result.removed]
    assert victim not in [c.layer_id for c in result.removed]
    assert sorted(os.walk(fake_store.path("overlay", victim))) == victim_files
    layers = {r["id"] for r in fake_store.read("overlay-layers/layers.json")}
    assert victim in layers and other not in layers and layers_before != b""
    assert any(victim in (i.get("mapped-layers") or []) for i in fake_store.read("overlay-images/images.json"))
    assert result.stranded == [] and _staging_left(fake_store) == []
    # The cause removed, the next run removes it, with no staging left.
    chattr(target, flag, on=False)
    again = store.prune(store.prune_plan(60), 60)
    assert [c.layer_id for c in again.removed] == [victim] and again.not_removed == []
    assert not os.path.exists(fake_store.path("overlay", victim)) and _staging_left(fake_store) == []


def test_flags_set_between_the_walk_and_the_staging_hold_the_copy_back(fake_store, chattr):
    ids = standard(fake_store)
    victim = ids["copies"][1]
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60)
    assert victim in plan.layer_ids
    diff = fake_store.path("overlay", victim, "diff")
    chattr(diff, FS_IMMUTABLE_FL)
    result = store.prune(plan, 60)
    held = [s for s in result.not_removed if s["layer_id"] == victim]
    assert held and held[0]["reason"] == "undeletable"
    assert "flags changed since the pre-flight walk (none -> immutable)" in held[0]["why"][0]
    assert os.path.isdir(diff) and victim in {r["id"] for r in fake_store.read("overlay-layers/layers.json")}
    assert _staging_left(fake_store) == []


def test_staged_entry_that_cannot_be_deleted_is_stranded_reported_and_retried_once(fake_store, chattr):
    ids = standard(fake_store)
    victim = ids["copies"][1]
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60)
    deep = fake_store.path("overlay", victim, "diff", "etc")
    name = sorted(os.listdir(deep))[0]
    steps = []

    def hook(step):
        steps.append(step)
        if step == "released":  # a flag set after the staging step (deep in the tree)
            staged = [p for p in _staging_left(fake_store)
                      if p.endswith(os.path.join(victim + ".overlay", "diff", "etc", name))]
            chattr(staged[0], FS_IMMUTABLE_FL)

    result = store.prune(plan, 60, hook=hook)
    assert result.changed  # the records and the other copies really went
    assert victim in [c.layer_id for c in result.removed]
    assert len(result.stranded) == 1
    stranded = result.stranded[0]
    assert stranded["errno"] == "EPERM" and stranded["path"].endswith(victim + ".overlay.stranded-EPERM")
    assert "/idmapguard-staging/stranded-" in stranded["path"]
    assert stranded["blocked_by"].endswith(os.path.join("etc", name)) and os.path.exists(stranded["blocked_by"])
    assert "chattr -i -a" in stranded["what_to_do"]
    # Never taken for the leftover of a crash (the bug: its own run reported stale: true).
    assert result.recovered == [] and not any("died" in c for c in result.changes)
    assert store.inventory().stranded[0]["path"] == stranded["path"]
    assert store.stale_staging() == []
    # Each later run retries once and says so; nothing changed means changed is false.
    retry = store.finish_staging()
    assert retry.changed is False and retry.retried and "still stranded (EPERM)" in retry.retried[0]
    assert [s["path"] for s in retry.stranded] == [stranded["path"]]
    # The cause removed: the next run deletes it, and no staging is left.
    chattr(stranded["blocked_by"], FS_IMMUTABLE_FL, on=False)
    done = store.finish_staging()
    assert done.changed and done.stranded == [] and "0 still stranded" in done.retried[0]
    assert _staging_left(fake_store) == [] and not os.path.exists(fake_store.path("idmapguard-staging"))


def test_pre_flight_walk_holds_no_store_lock_and_visits_each_entry_once(fake_store, monkeypatch):
    """The walk's cost grows with the data: it must run with every store lock released, and be
    the measuring walk itself (one visit per entry, no second pass for the flags)."""
    from ansible_collections.idmapguard.storage.plugins.module_utils.store import analysis, locks, usage

    ids = standard(fake_store)
    held = []
    real_acquire, real_release = locks.LockFile.acquire, locks.LockFile.release

    def acquire(self, exclusive):
        real_acquire(self, exclusive)
        held.append(self.path)

    def release(self):
        if self.path in held:
            held.remove(self.path)
        real_release(self)

    monkeypatch.setattr(locks.LockFile, "acquire", acquire)
    monkeypatch.setattr(locks.LockFile, "release", release)
    walks = []
    real_preflight = analysis.preflight_copy

    def watched(layout, layer_id, link):
        assert held == [], "the pre-flight walk ran under %s" % held
        visited = []

        def where(dir_fd, name):
            return os.path.join(os.readlink("/proc/self/fd/%d" % dir_fd), os.fsdecode(name))

        real_lstat, real_buffer = preflight.flagged_lstat, preflight.statx_buffer

        def counting_lstat(dir_fd, name):
            st = real_lstat(dir_fd, name)  # a part that does not exist (raises) is not visited
            visited.append(where(dir_fd, name))
            return st

        def counting_buffer():
            raw = real_buffer()
            if raw is None:
                return None
            call = raw[0]

            def counting_call(dir_fd, name, *args):
                done = call(dir_fd, name, *args)
                if done == 0:
                    visited.append(where(dir_fd, name))
                return done

            return (counting_call,) + tuple(raw[1:])

        monkeypatch.setattr(preflight, "flagged_lstat", counting_lstat)
        monkeypatch.setattr(preflight, "statx_buffer", counting_buffer)
        try:
            found = real_preflight(layout, layer_id, link)
        finally:
            monkeypatch.setattr(preflight, "flagged_lstat", real_lstat)
            monkeypatch.setattr(preflight, "statx_buffer", real_buffer)
        walks.append(layer_id)
        # Every inode the walk counts was stat'ed once (no hard links in the fake store); the
        # top entries' flags (top_flags) are read apart from the walk, by flags_at.
        assert len(visited) == len(set(visited)) == found[0] > 3
        return found

    monkeypatch.setattr(analysis, "preflight_copy", watched)
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60, measure="estimate")
    result = store.prune(plan, 60)
    unused = {ids["copies"][1], ids["copies"][2], ids["copy2"]}
    assert sorted(walks) == sorted(unused)  # each planned copy walked once, plan and prune together
    assert {c.layer_id for c in result.removed} == unused and held == []
