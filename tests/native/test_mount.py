"""`idmapped-mount mount`: ownership through the mount follows the map at the edges of every
extent, and an unmapped id shows as the kernel's overflow id."""
import json
import os
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import parse_idmap
from conftest import SEED_MAP, overflow_id, run

UIDMAP = SEED_MAP
GIDMAP = "0:2000000:1000,1000:3000000:64536,70000:70000:1"


def to_host(extents, container_id):
    for c, h, s in extents:
        if c <= container_id < c + s:
            return h + container_id - c
    return None


def edge_ids(extents) -> List[int]:
    ids = []
    for c, _host, s in extents:
        ids += [c, c + s - 1]
    # one id just outside each extent that no other extent covers
    ids += [c + s for c, _host, s in extents if to_host(extents, c + s) is None]
    return sorted(set(ids))


def make_files(src: Path, uids: List[int], gids: List[int]) -> List[Tuple[str, int, int]]:
    files = []
    for i, uid in enumerate(uids):
        files.append(("u%d" % i, uid, gids[0]))
    for i, gid in enumerate(gids):
        files.append(("g%d" % i, uids[0], gid))
    for name, uid, gid in files:
        (src / name).write_text(name)
        os.chown(src / name, uid, gid)
    return files


@pytest.fixture
def mount_pair(idmap_capable_dir):
    src, dst = idmap_capable_dir / "src", idmap_capable_dir / "dst"
    src.mkdir()
    dst.mkdir()
    yield src, dst
    subprocess.run(["umount", "-R", str(dst)], check=False, capture_output=True)


def test_ownership_at_extent_edges(helper, mount_pair):
    src, dst = mount_pair
    um, gm = parse_idmap(UIDMAP), parse_idmap(GIDMAP)
    files = make_files(src, edge_ids(um), edge_ids(gm))
    res = run([str(helper), "mount", "--uidmap", UIDMAP, "--gidmap", GIDMAP, str(src), str(dst)])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ok"] is True and out["errno"] is None
    unmapped_seen = 0
    for name, uid, gid in files:
        st = os.stat(dst / name)
        want_uid = to_host(um, uid)
        want_gid = to_host(gm, gid)
        unmapped_seen += want_uid is None or want_gid is None
        assert st.st_uid == (overflow_id("uid") if want_uid is None else want_uid), (name, uid)
        assert st.st_gid == (overflow_id("gid") if want_gid is None else want_gid), (name, gid)
        assert (dst / name).read_text() == name
    assert unmapped_seen >= 2, "the test must include unmapped ids"
    # The source itself is untouched: the mount maps, it does not chown.
    for name, uid, gid in files:
        st = os.stat(src / name)
        assert (st.st_uid, st.st_gid) == (uid, gid)


def test_read_only_and_recursive(helper, mount_pair, tmp_path):
    src, dst = mount_pair
    sub = src / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
    try:
        (sub / "inner").write_text("x")
        os.chown(sub / "inner", 0, 0)
        res = run([str(helper), "mount", "--uidmap", UIDMAP, "--gidmap", GIDMAP, "--recursive", "--read-only",
                   str(src), str(dst)])
        assert res.returncode == 0, res.stderr
        st = os.stat(dst / "sub" / "inner")
        assert (st.st_uid, st.st_gid) == (1065537, 2000000)
        with pytest.raises(OSError) as exc:
            (dst / "new").write_text("x")
        assert exc.value.errno == 30  # EROFS
    finally:
        subprocess.run(["umount", "-R", str(dst)], check=False, capture_output=True)
        subprocess.run(["umount", str(sub)], check=False, capture_output=True)


def test_mount_refused_on_ramfs(helper, ramfs_dir):
    src, dst = ramfs_dir / "src", ramfs_dir / "dst"
    src.mkdir()
    dst.mkdir()
    res = run([str(helper), "mount", "--uidmap", UIDMAP, "--gidmap", GIDMAP, str(src), str(dst)])
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert out["ok"] is False and out["errno"] == "EINVAL"
    assert b"EINVAL" in res.stderr
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        assert str(dst) not in f.read()
