# -*- coding: utf-8 -*-
"""The one mountinfo parser: every octal escape the kernel writes (space, tab, newline, backslash)."""

from ansible_collections.idmapguard.storage.plugins.module_utils import host_env, idmap_support
from ansible_collections.idmapguard.storage.plugins.module_utils.store import mountinfo

TABLE = "\n".join([
    r"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    r"40 22 0:40 / /srv/with\040space rw - xfs /dev/sdb rw",
    r"41 22 0:41 / /srv/tab\011dir rw master:3 - btrfs /dev/sdc rw",
    r"42 22 0:42 / /srv/back\134slash rw - tmpfs tmpfs rw",
    r"43 22 0:43 / /srv/new\012line rw - ext2 /dev/sdd rw",
]) + "\n"


def test_every_escape_is_undone(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text(TABLE)
    assert mountinfo.mounts(str(path)) == [
        ("/", "ext4"), ("/srv/with space", "xfs"), ("/srv/tab\tdir", "btrfs"), ("/srv/back\\slash", "tmpfs"),
        ("/srv/new\nline", "ext2")]


def test_verify_finds_the_filesystem_behind_any_escape(tmp_path):
    # idmap_support's own parser undid only \040: a graphroot under a tab, newline or backslash
    # was reported on the filesystem of the mount above it.
    path = tmp_path / "mountinfo"
    path.write_text(TABLE)
    for inside, fs_type in (("/srv/with space/graph", "xfs"), ("/srv/tab\tdir/graph", "btrfs"),
                            ("/srv/back\\slash/graph", "tmpfs"), ("/srv/new\nline/graph", "ext2"),
                            ("/var/lib/containers", "ext4")):
        assert idmap_support.filesystem_type(inside, str(path)) == fs_type, inside
    assert idmap_support.filesystem_type("/x", str(tmp_path / "missing")) is None


def test_chroot_is_judged_from_the_same_table(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(TABLE.splitlines()[1] + "\n")
    assert host_env.is_chrooted(str(tmp_path)) is True
    (tmp_path / "self" / "mountinfo").write_text(TABLE)
    assert host_env.is_chrooted(str(tmp_path)) is False
