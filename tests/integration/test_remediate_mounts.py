"""Mount points inside an unused copy that mountpoints.json does not count: a bind mount from
the same filesystem on ``merged``, a bind mount deep inside ``diff/``, a tmpfs.

Before (st_dev comparison only, deletion under the locks) the prune deleted through the
same-filesystem bind mount (the image's own top layer, files outside c/storage's dirs) and a
failure part-way left a store no Podman could load. Now each such copy is skipped whole with
the reason ``mounted``, everything else is removed, Podman works, and after umount a second
prune removes them.
"""
import json

import pytest

import remediate_support as rs

SUITES = [("bookworm", None), ("trixie", None)]


def _files_under(host, path):
    return int(host.exec("find %s | wc -l" % path, check=True).stdout.strip())


def _copies_by_map(host):
    with open(host.path(rs.STORE + "/overlay-layers/layers.json")) as handle:
        layers = json.load(handle)
    with open(host.path(rs.STORE + "/overlay-images/images.json")) as handle:
        images = json.load(handle)
    mapped = {lid for image in images for lid in image.get("mapped-layers") or []}
    return {layer["id"]: layer for layer in layers if layer["id"] in mapped}, images


@pytest.mark.parametrize("suite,mount_program", SUITES, ids=[s for s, _m in SUITES])
def test_mounts_inside_copies_are_never_crossed(lab_host, suite, mount_program):
    host = lab_host(suite=suite, inodes=16384)
    rs.install_guard(host)
    tag = host.image(files=300)
    for index in range(4):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "m%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", "m%d" % index, check=True)
    copies, images = _copies_by_map(host)
    assert len(copies) == 4
    top = images[0]["layer"]
    ids = sorted(copies)
    same_fs, deep, tmpfs, plain = ids
    store = rs.STORE
    # Files on the store's filesystem but outside c/storage's directories.
    host.exec("mkdir -p %s/outside/sub && for i in $(seq 1 50); do echo keep > %s/outside/sub/f$i; done"
              % (store, store), check=True)
    # the deepest directory of the copy (5.4 keeps a copy's files in diff1/, 4.3 in diff/)
    dirs = host.exec("find %s/overlay/%s -mindepth 2 -type d -not -path '*/work*' -not -path '*/merged*'"
                     % (store, deep), check=True).stdout.split()
    deep_dir = max(dirs, key=len) if dirs else ""
    assert deep_dir
    mounts = [
        # (4.3 makes merged/ at the first mount only)
        "mkdir -p %s/overlay/%s/merged && mount --bind %s/overlay/%s/diff %s/overlay/%s/merged"
        % (store, same_fs, store, top, store, same_fs),
        "mount --bind %s/outside %s" % (store, deep_dir),
        "mkdir -p %s/overlay/%s/merged && mount -t tmpfs tmpfs %s/overlay/%s/merged && "
        "echo x > %s/overlay/%s/merged/on-tmpfs" % (store, tmpfs, store, tmpfs, store, tmpfs),
    ]
    for cmd in mounts:
        host.exec(cmd, check=True)
    top_files = _files_under(host, "%s/overlay/%s/diff" % (store, top))
    outside_files = _files_under(host, "%s/outside" % store)
    before = rs.podman_state(host)

    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    why = {c["layer_id"]: c["why"] for c in report["copies"]}
    for layer_id in (same_fs, deep, tmpfs):
        assert any(w.startswith("mounted: ") for w in why[layer_id]), why[layer_id]
    assert why[plain] == []
    _proc, result = rs.guard(host, "--min-age", "0")
    assert result["removed_layers"] == [plain], result
    # Nothing crossed: the image's top layer, the files outside, the tmpfs, the copies whole.
    assert _files_under(host, "%s/overlay/%s/diff" % (store, top)) == top_files
    assert _files_under(host, "%s/outside" % store) == outside_files
    assert host.exec(["cat", "%s/overlay/%s/merged/on-tmpfs" % (store, tmpfs)], check=True).stdout.strip() == "x"
    left, _images = _copies_by_map(host)
    assert sorted(left) == sorted([same_fs, deep, tmpfs])
    for layer_id in left:
        assert host.exec(["test", "-d", "%s/overlay/%s/diff" % (store, layer_id)]).returncode == 0
    # Podman works: same images and containers, creates with the skipped copies' maps and a new one.
    after = rs.podman_state(host)
    assert after["images"] == before["images"] and after["containers"] == before["containers"]
    for index in (0, 1, 2, 3, 50):
        idmap = rs.noncontig_map(index)
        proc = host.podman("create", "--name", "after%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        assert proc.returncode == 0, proc.stderr
        host.podman("rm", "after%d" % index, check=True)
    proc = host.podman("run", "--rm", "--uidmap", rs.contiguous_map(host), "--gidmap", rs.contiguous_map(host), tag,
                       "cat", "/etc/hostname", timeout=120)
    assert proc.returncode == 0, proc.stderr

    # umount, and a second prune removes them (and the copies made just now).
    for path in ("%s/overlay/%s/merged" % (store, same_fs), deep_dir, "%s/overlay/%s/merged" % (store, tmpfs)):
        host.exec(["umount", path], check=True)
    _proc, result = rs.guard(host, "--min-age", "0")
    assert set([same_fs, deep, tmpfs]) <= set(result["removed_layers"]), result
    assert rs.mapped_copy_count(host) == 0
    assert _files_under(host, "%s/overlay/%s/diff" % (store, top)) == top_files
    assert _files_under(host, "%s/outside" % store) == outside_files
    idmap = rs.noncontig_map(60)
    proc = host.podman("create", "--name", "last", "--uidmap", idmap, "--gidmap", idmap, tag, "true")
    assert proc.returncode == 0, proc.stderr
