"""Store integrity on real Podman (issue 22): what stops a deletion is found before anything
changes, staging that cannot finish is reported and retried, and a store Podman could not
trust is refused with nothing changed.

One lab host per suite that copies (bullseye 3.0, bookworm 4.3, trixie 5.4), shared by the
cases in order; each case leaves the store as Podman had it. Every case asserts that nothing
changed on disk where nothing should, that `podman images` and a create behave as before, and
that once the cause is removed the next run cleans up with no staging left. The module's
messages are printed (pytest -rA shows them) for the report.
"""
import json
import os
import re
import subprocess
import time

import pytest

import remediate_support as rs

SUITES = ["bullseye", "bookworm", "trixie"]
STAGING = rs.STORE + "/idmapguard-staging"
LAYERS_JSON = rs.STORE + "/overlay-layers/layers.json"
IMAGES_JSON = rs.STORE + "/overlay-images/images.json"


def _chattr(host, inside: str, flags: str) -> None:
    # chattr of this machine on the host's store (an ext4 loop mounted in the host's namespace)
    assert inside.startswith(rs.STORE + "/"), inside  # never the host's root by mistake
    subprocess.run(["chattr", flags, host.path(inside)], check=True)


def _first(host, layer: str, want_dir: bool) -> str:
    """A path in the host: the first (sorted) regular file, or directory that holds files, in
    the copy's data (its ``diff``, or ``diff1`` where the lab Podman keeps the copied files)."""
    inside = rs.STORE + "/overlay/" + layer
    root = host.path(inside)
    for top, dirs, files in sorted(os.walk(root)):
        if top == root:
            continue
        regular = sorted(f for f in files if os.path.isfile(os.path.join(top, f))
                         and not os.path.islink(os.path.join(top, f)))
        if regular:
            return inside + (top if want_dir else os.path.join(top, regular[0]))[len(root):]
    raise AssertionError("no file under %s" % inside)


def _copy(host, tag: str, index: int) -> str:
    """A fresh unused copy (create + rm with a new non-contiguous map); returns its layer id."""
    before = _mapped(host)
    idmap = rs.noncontig_map(index)
    host.podman("create", "--name", "i%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
    host.podman("rm", "i%d" % index, check=True)
    new = [layer for layer in _mapped(host) if layer not in before]
    assert len(new) == 1, new
    return new[0]


def _mapped(host):
    with open(host.path(IMAGES_JSON)) as handle:
        return [layer for image in json.load(handle) for layer in image.get("mapped-layers") or []]


def _tree(host, inside: str = rs.STORE):
    """Every path under the store with its type, size and mode (contents of the JSON files by
    bytes): what 'nothing changed on disk' is checked against."""
    root = host.path(inside)
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_size if not os.path.isdir(path) else 0)
    if inside == rs.STORE:
        for rel in ("overlay-layers/layers.json", "overlay-images/images.json"):
            with open(os.path.join(root, rel), "rb") as handle:
                found[rel + ":bytes"] = handle.read()
    return found


def _diff(before, after):
    return sorted(set(before.items()) ^ set(after.items()))[:10]


def _podman_view(host):
    """What `podman images` says (rc and output), compared before and after our run."""
    proc = host.podman("images", "-a", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    stderr = re.sub(r'time="[^"]*" ', "", proc.stderr.strip())  # the same warnings, other times
    # Podman 3.0 names whichever image it meets first (random order): the error, not the id
    stderr = re.sub(r"\b[0-9a-f]{64}\b", "<id>", stderr)
    return proc.returncode, sorted(proc.stdout.split("\n")), stderr[-400:]


def _creates(host, tag: str, idmap: str) -> bool:
    proc = host.podman("create", "--name", "probe", "--uidmap", idmap, "--gidmap", idmap, tag, "true")
    if proc.returncode == 0:
        host.podman("rm", "probe", check=True)
    return proc.returncode == 0


def _no_staging(host):
    left = host.exec("ls -A %s 2>/dev/null; ls -A %s/overlay/tempdirs 2>/dev/null | grep idmapguard || true"
                     % (STAGING, rs.STORE)).stdout.split()
    assert not left, left


def _host(lab_host, suite):
    host = lab_host(suite=suite, inodes=16384, size="300M")
    rs.install_guard(host)
    return host


@pytest.mark.parametrize("suite", SUITES)
def test_store_integrity(lab_host, suite):
    started = time.monotonic()
    host = _host(lab_host, suite)
    tag = host.image(files=60)
    other = host.image(files=67, tag="localhost/other:67")
    _check_undeletable_copies(host, suite, tag)
    _check_cwd_and_two_images(host, suite, tag, other)
    for how in ("[]", "0-byte", "truncated", "top-missing"):
        _check_inconsistent(host, suite, tag, how)
    _check_stranded(host, suite, tag)
    print("%s: all integrity cases in %.1f s" % (suite, time.monotonic() - started))


def _check_undeletable_copies(host, suite, tag):
    """An immutable file and an append-only directory: each copy skipped whole, with its own
    reason; the third copy goes; after chattr -i/-a the next run removes both."""
    immutable, append_only, plain = (_copy(host, tag, index) for index in (1, 2, 3))
    some_file = _first(host, immutable, want_dir=False)
    some_dir = _first(host, append_only, want_dir=True)
    _chattr(host, some_file, "+i")
    _chattr(host, some_dir, "+a")
    try:
        # podman images first: Podman 3.0 mounts layers to size images (the kernel then makes
        # work/work in them); the snapshot is what our run must leave as it is
        view = _podman_view(host)
        kept_before = {layer: _tree(host, rs.STORE + "/overlay/" + layer) for layer in (immutable, append_only)}
        _proc, result = rs.guard(host, "--min-age", "0")
        print("%s undeletable: %s" % (suite, json.dumps(result["skipped_copies"])))
        reasons = {s["layer_id"]: s for s in result["skipped_copies"]}
        assert reasons[immutable]["reason"] == "undeletable"
        assert reasons[immutable]["why"] == ["undeletable: %s: immutable" % some_file]
        assert reasons[append_only]["why"] == ["undeletable: %s: append-only" % some_dir]
        assert result["removed_layers"] == [plain] and result["changed"] is True
        for layer in (immutable, append_only):
            assert layer in _mapped(host)
            assert _tree(host, rs.STORE + "/overlay/" + layer) == kept_before[layer]
        assert _podman_view(host) == view
        _no_staging(host)
    finally:
        _chattr(host, some_file, "-i")
        _chattr(host, some_dir, "-a")
    _proc, again = rs.guard(host, "--min-age", "0")
    print("%s undeletable, after chattr -i/-a: removed %s" % (suite, again["removed_layers"]))
    assert sorted(again["removed_layers"]) == sorted([immutable, append_only])
    assert again["skipped_copies"] == [] and _mapped(host) == []
    _no_staging(host)
    assert _creates(host, tag, rs.noncontig_map(1))
    rs.guard(host, "--min-age", "0")  # the probe's copy


def _check_cwd_and_two_images(host, suite, tag, other):
    """Kept passing: a process whose cwd is in an unused copy (the copy goes, the process
    lives); one copy listed under two images (removed from both, counted once)."""
    shared = _copy(host, tag, 10)
    with open(host.path(IMAGES_JSON)) as handle:
        images = json.load(handle)
    second = [image for image in images if "localhost/other:67" in (image.get("names") or [])][0]
    second.setdefault("mapped-layers", []).append(shared)
    with open(host.path(IMAGES_JSON), "w") as handle:
        json.dump(images, handle)
    sleeper = host.exec("cd %s && (sleep 600 >/dev/null 2>&1 & echo $!)" % _first(host, shared, want_dir=True),
                        check=True).stdout.strip()
    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    copies = [c for c in report["copies"] if c["layer_id"] == shared]
    assert len(copies) == 1 and len(copies[0]["also_listed_by"]) == 1
    used_before = host.inodes_used()
    _proc, result = rs.guard(host, "--min-age", "0")
    assert host.exec(["kill", "-0", sleeper]).returncode == 0, "the process in the copy died"
    # the directory the process is in stays allocated until it leaves (an unlinked cwd)
    host.exec(["kill", sleeper])
    time.sleep(0.5)
    freed = used_before - host.inodes_used()
    print("%s cwd + two images: removed %s, inodes_freed %d (df -i after the process left: %d), changes %s" % (
        suite, result["removed_layers"], result["inodes_freed"], freed, result["changes"]))
    assert result["removed_layers"] == [shared]
    assert result["inodes_freed"] == copies[0]["inodes"] == freed
    assert shared not in _mapped(host)
    for image in (tag, other):
        assert _creates(host, image, rs.noncontig_map(10))
    rs.guard(host, "--min-age", "0")
    _no_staging(host)


def _break_layers(host, how):
    path = host.path(LAYERS_JSON)
    with open(path, "rb") as handle:
        good = handle.read()
    if how == "[]":
        bad = b"[]"
    elif how == "0-byte":
        bad = b""
    elif how == "truncated":
        bad = good[:len(good) // 2]
    else:  # top-missing: the record of the first image's top layer
        with open(host.path(IMAGES_JSON)) as handle:
            top = json.load(handle)[0]["layer"]
        bad = json.dumps([r for r in json.loads(good) if r["id"] != top]).encode()
    with open(path, "wb") as handle:
        handle.write(bad)
    return good


def _check_inconsistent(host, suite, tag, how):
    """An emptied, 0-byte or truncated layers.json, or an image whose top layer is missing:
    report says inconsistent and lists no copies, prune refuses with nothing changed."""
    copy = _copy(host, tag, 20)
    good = _break_layers(host, how)
    try:
        view = _podman_view(host)  # what Podman itself makes of this store (read only)
        tree = _tree(host)
        _proc, report = rs.guard(host, "--report", "--min-age", "0")
        proc, _out = rs.guard(host, "--min-age", "0", check=False)
        print("%s layers.json %s: podman images rc=%d %s | report %s %s | prune rc=%d %s" % (
            suite, how, view[0], view[2] or "%d lines" % len(view[1]), report["consistency"],
            report["inconsistencies"][:1], proc.returncode, proc.stderr.strip()))
        assert report["consistency"] == "inconsistent" and report["copies"] == []
        assert proc.returncode == 2
        assert "nothing was changed" in proc.stderr and report["inconsistencies"][0] in proc.stderr
        assert _tree(host) == tree, _diff(tree, _tree(host))
        assert _podman_view(host) == view
    finally:
        with open(host.path(LAYERS_JSON), "wb") as handle:
            handle.write(good)
    _proc, result = rs.guard(host, "--min-age", "0")
    assert result["removed_layers"] == [copy], result
    _no_staging(host)
    assert _podman_view(host)[0] == 0
    assert _creates(host, tag, rs.noncontig_map(21))
    rs.guard(host, "--min-age", "0")


def _check_stranded(host, suite, tag):
    """A flag set deep in a copy after its pre-flight (here: in staging, between the release of
    the locks and the deletion): the entry is kept as stranded, named for its errno, reported;
    the next run retries once and says so (changed: false); after chattr -i it is deleted."""
    copy = _copy(host, tag, 30)
    cmd = ("exec env IDMAPGUARD_TEST_STEP_SLEEP=1 /usr/local/sbin/idmapguard-prune --min-age 0")
    proc = subprocess.Popen(host.nsenter() + ["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    target = None
    try:
        for line in proc.stderr:
            if line.startswith("step released"):
                # inside that step's 1 s pause: staged, not deleted yet
                for top, _dirs, files in sorted(os.walk(host.path(STAGING))):
                    if files and "%s.overlay/diff" % copy in top:  # diff/ or diff1/
                        target = os.path.join(top, sorted(files)[0])
                        break
                subprocess.run(["chattr", "+i", target], check=True)
                break
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target, "no 'released' step seen"
    result = json.loads(out.strip().splitlines()[-1])
    try:
        print("%s stranded: changed=%s stranded=%s" % (suite, result["changed"], json.dumps(result["stranded"])))
        assert proc.returncode == 0 and result["changed"] is True and result["removed_layers"] == [copy]
        assert len(result["stranded"]) == 1
        stranded = result["stranded"][0]
        assert stranded["errno"] == "EPERM" and stranded["path"].endswith(".overlay.stranded-EPERM")
        assert "/idmapguard-staging/stranded-" in stranded["path"] and "chattr -i" in stranded["what_to_do"]
        assert not any("died" in change for change in result["changes"])
        assert host.path(stranded["blocked_by"]).endswith(target[len(host.path(STAGING)):].split("/", 3)[-1])
        assert os.path.exists(host.path(stranded["blocked_by"]))
        _proc, report = rs.guard(host, "--report", "--min-age", "0")
        assert [s["path"] for s in report["stranded"]] == [stranded["path"]] and not report["staging"]
        _proc, retry = rs.guard(host, "--min-age", "0")
        print("%s stranded, next run: changed=%s %s" % (suite, retry["changed"], retry["stranded_retried"]))
        assert retry["changed"] is False and "still stranded (EPERM)" in retry["stranded_retried"][0]
        assert _podman_view(host)[0] == 0 and _creates(host, tag, rs.noncontig_map(31))
        rs.guard(host, "--min-age", "0")
    finally:
        subprocess.run(["chattr", "-R", "-i", host.path(STAGING)], check=False)
    _proc, done = rs.guard(host, "--min-age", "0")
    print("%s stranded, after chattr -i: changed=%s %s" % (suite, done["changed"], done["stranded_retried"]))
    assert done["changed"] is True and done["stranded"] == [] and "0 still stranded" in done["stranded_retried"][0]
    _no_staging(host)
