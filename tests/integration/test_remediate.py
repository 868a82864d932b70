"""Pruning mapped copies on real Podman (lab hosts bookworm 4.3, trixie 5.4, sid 5.8).

sid's Podman 5.8 shares layers through idmapped mounts on native overlay and makes no copy, so
the sid store gets its copies through fuse-overlayfs (a mount_program: 5.8 still copies then).
"""
import json
import random

import pytest

import remediate_support as rs

SUITES = [("bookworm", None), ("trixie", None), ("sid", "/usr/bin/fuse-overlayfs"), ("bullseye", None),
          ("podman6", "/usr/bin/fuse-overlayfs")]


def _host(lab_host, suite, mount_program, **opts):
    extra = {"mount_program": mount_program} if mount_program else {}
    host = lab_host(suite=suite, **extra, **opts)
    rs.install_guard(host)
    return host


@pytest.mark.parametrize("suite,mount_program", SUITES, ids=[s for s, _m in SUITES])
def test_randomized_store_prune_keeps_podman_working(lab_host, suite, mount_program):
    rng = random.Random(hash(suite) & 0xFFFF)
    host = _host(lab_host, suite, mount_program, inodes=16384)
    info = rs.build_random_store(host, rng, images=2, maps=8)
    starts = {name: rs.try_start(host, name) for name in info["kept"] if name != "volatile"}
    before = rs.podman_state(host)
    copies_before = rs.mapped_copy_count(host)

    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    unused = [c for c in report["copies"] if not c["in_use"]]
    used = [c for c in report["copies"] if c["in_use"]]
    assert len(report["copies"]) == copies_before and unused and used

    # Check mode is the exact plan and changes nothing.
    _proc, plan = rs.guard(host, "--check", "--min-age", "0")
    assert sorted(plan["removed_layers"]) == sorted(c["layer_id"] for c in unused)
    assert rs.mapped_copy_count(host) == copies_before

    # min_age protects young copies: nothing is older than an hour here.
    _proc, young = rs.guard(host, "--min-age", "3600")
    assert young["removed"] == 0 and rs.mapped_copy_count(host) == copies_before

    inodes_before = host.inodes_used()
    _proc, result = rs.guard(host, "--min-age", "0")
    assert sorted(result["removed_layers"]) == sorted(plan["removed_layers"])
    assert inodes_before - host.inodes_used() == result["inodes_freed"]
    assert rs.mapped_copy_count(host) == len(used)
    _proc, again = rs.guard(host, "--min-age", "0")
    assert again["changed"] is False
    # (this re-creates a copy for every pruned map: the store works as before)
    rs.assert_podman_agrees(host, before, info, starts)


def test_tampered_store_fails_and_deletes_nothing(lab_host):
    host = _host(lab_host, "bookworm", None, inodes=8192)
    tag = host.image(files=50)
    for index in range(3):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "t%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", "t%d" % index, check=True)
    images_path = host.path(rs.STORE + "/overlay-images/images.json")
    with open(images_path) as handle:
        images = json.load(handle)
    images[0]["mapped-layers"].append("../../../../etc")
    with open(images_path, "w") as handle:
        json.dump(images, handle)
    inodes = host.inodes_used()
    proc, _out = rs.guard(host, "--min-age", "0", check=False)
    assert proc.returncode == 2
    assert "invalid id '../../../../etc'" in proc.stderr
    assert host.inodes_used() == inodes
    assert host.exec(["test", "-d", "/etc/apt"]).returncode == 0
    # Bad parameters: a map the kernel would refuse.
    proc, _out = rs.guard(host, "--keep-map", "0:1:0", check=False)
    assert proc.returncode == 2 and "keep_maps" in proc.stderr


# (fuse-overlayfs on sid fills the store through a FUSE daemon: not this test's subject)
ZERO_INODE_SUITES = [s for s in SUITES if s[1] is None]


@pytest.mark.parametrize("suite,mount_program", ZERO_INODE_SUITES, ids=[s for s, _m in ZERO_INODE_SUITES])
def test_zero_free_inodes_host_is_recovered(lab_host, suite, mount_program):
    host = _host(lab_host, suite, mount_program, inodes=3072)
    tag = host.image(files=300)
    index = 0
    while True:  # a copy per distinct map until the store is out of inodes
        idmap = rs.noncontig_map(index)
        proc = host.podman("create", "--name", "z%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        if proc.returncode != 0:
            break
        host.podman("rm", "z%d" % index)
        index += 1
        assert index < 100, "store never filled"
    # Out of inodes: Podman itself cannot even create a container now.
    fill = host.exec("i=0; while touch /var/lib/containers/storage/fill$i 2>/dev/null; do i=$((i+1)); done; echo $i")
    assert host.podman("create", tag, "true").returncode != 0
    st_free = rs.free_inodes(host)
    assert st_free == 0, st_free
    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    copy_inodes = sum(c["inodes"] for c in report["copies"])
    used_before = host.inodes_used()
    _proc, result = rs.guard(host, "--min-age", "0")
    freed = used_before - host.inodes_used()
    print("zero-inode %s: %d copies holding %d inodes; freed %d (%.2f%%), freed first %s; filler files %s" % (
        suite, len(report["copies"]), copy_inodes, freed, 100.0 * freed / copy_inodes, result["freed_first"],
        fill.stdout.strip()))
    assert result["freed_first"], "expected an inode freed inside a copy first"
    assert freed >= 0.99 * copy_inodes
    host.exec("rm -f /var/lib/containers/storage/fill*", check=True)
    idmap = rs.noncontig_map(500)
    proc = host.podman("create", "--name", "after", "--uidmap", idmap, "--gidmap", idmap, tag, "true")
    assert proc.returncode == 0, proc.stderr
    contig = rs.contiguous_map(host)
    proc = host.podman("run", "--rm", "--uidmap", contig, "--gidmap", contig, tag, "true")
    assert proc.returncode == 0, proc.stderr
