"""`idmapped-mount probe` on real filesystems of this machine."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SEED_MAP, probe_mounts, run

CHECKS = ("mount_api", "idmapped_mount", "overlay_idmapped_lower")


def probe(helper, d, *args, **kw):
    res = run([str(helper), "probe", *args, os.fsencode(str(d)) if isinstance(d, Path) else d], **kw)
    return res, (json.loads(res.stdout) if res.stdout.strip() else None)


def assert_clean(d: Path, before=()):
    assert sorted(os.listdir(d)) == sorted(before), "the probe left something in %s" % d
    assert probe_mounts() == []


def test_every_check_ok(helper, idmap_capable_dir):
    before = os.listdir(idmap_capable_dir)
    res, out = probe(helper, idmap_capable_dir)
    assert res.returncode == 0, res.stderr
    assert out["kernel"] == os.uname().release
    assert out["path"] == os.path.realpath(idmap_capable_dir)
    assert out["fs_type"] in ("ext4", "tmpfs")
    assert out["uidmap"] == [[0, 1065537, 65536], [531571, 531571, 1], [19997967, 19997967, 1]]
    assert out["gidmap"] == out["uidmap"]
    for name in CHECKS:
        assert out["checks"][name] == {"ok": True, "errno": None, "message": out["checks"][name]["message"]}
    assert_clean(idmap_capable_dir, before)


def test_xfs_and_btrfs(helper, other_disk_dir):
    res, out = probe(helper, other_disk_dir)
    assert res.returncode == 0, res.stderr
    assert out["fs_type"] == other_disk_dir.name
    for name in CHECKS:
        assert out["checks"][name]["ok"] is True, out["checks"][name]
    assert_clean(other_disk_dir)


def test_fs_type_names(helper, ext4_dir, tmpfs_dir, ramfs_dir):
    for d, name in ((ext4_dir, "ext4"), (tmpfs_dir, "tmpfs"), (ramfs_dir, "ramfs")):
        assert probe(helper, d)[1]["fs_type"] == name


def test_unsupported_filesystem_reports_kernel_errno(helper, ramfs_dir):
    res, out = probe(helper, ramfs_dir)
    assert res.returncode == 0, res.stderr
    checks = out["checks"]
    assert checks["mount_api"]["ok"] is True
    assert checks["idmapped_mount"]["ok"] is False
    assert checks["idmapped_mount"]["errno"] == "EINVAL"
    assert "mount_setattr" in checks["idmapped_mount"]["message"]
    assert checks["overlay_idmapped_lower"] == {
        "ok": False, "errno": None, "message": "not run: idmapped_mount failed"}
    assert_clean(ramfs_dir)


def test_custom_maps_are_used_and_echoed(helper, tmpfs_dir):
    uidmap = "0:100000:10,10:200000:5,1000:1000:1,5000:300000:1000"
    gidmap = "0:400000:1"
    res, out = probe(helper, tmpfs_dir, "--uidmap", uidmap, "--gidmap=" + gidmap)
    assert res.returncode == 0
    assert out["uidmap"] == [[0, 100000, 10], [10, 200000, 5], [1000, 1000, 1], [5000, 300000, 1000]]
    assert out["gidmap"] == [[0, 400000, 1]]
    assert all(out["checks"][c]["ok"] for c in CHECKS), out["checks"]


@pytest.mark.parametrize("name", [
    'q"uote', "back\\slash", "new\nline", "tab\tctl\x01", "ünïcödé-☃", b"bad-\xff\xfe-utf8", "sp ace,comma:colon",
])
def test_odd_path_names_are_escaped(helper, tmpfs_dir, name):
    raw = name if isinstance(name, bytes) else name.encode()
    d = os.path.join(os.fsencode(str(tmpfs_dir)), raw)
    os.mkdir(d)
    res = run([str(helper), "probe", d])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.decode("utf-8"))  # strict UTF-8 JSON
    assert os.fsencode(out["path"]) == d
    assert all(out["checks"][c]["ok"] for c in CHECKS), out["checks"]
    assert os.listdir(d) == []


def test_exit_1_when_it_cannot_run(helper, tmpfs_dir):
    res, out = probe(helper, tmpfs_dir / "missing")
    assert res.returncode == 1 and out["error"]["errno"] == "ENOENT"
    f = tmpfs_dir / "file"
    f.write_text("x")
    res, out = probe(helper, f)
    assert res.returncode == 1 and out["error"]["errno"] == "ENOTDIR"


def test_exit_1_when_not_root(helper, tmpfs_dir):
    res = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(helper), "probe",
               str(tmpfs_dir)])
    assert res.returncode == 1
    assert b"must run as root" in res.stderr
    assert json.loads(res.stdout)["error"]["errno"] == "EPERM"


@pytest.mark.parametrize("argv, needle", [
    ([], b"missing command"),
    (["frob"], b"unknown command"),
    (["probe"], b"exactly one DIR"),
    (["probe", "--bogus", "/tmp"], b"unknown option"),
    (["probe", "--uidmap"], b"needs a value"),
    (["probe", "--uidmap", "0:1065537:65536,531571:531571:0", "/tmp"], b"'531571:531571:0'"),
    (["probe", "--gidmap", "0:1:1,0:2:1", "/tmp"], b"overlap_container"),
    (["mount", "--uidmap", SEED_MAP, "/a", "/b"], b"needs --uidmap and --gidmap"),
])
def test_usage_errors_exit_2(helper, argv, needle):
    res = run([str(helper), *argv])
    assert res.returncode == 2
    assert needle in res.stderr
    assert res.stdout == b""


def test_help_and_version(helper):
    res = run([str(helper), "--help"])
    assert res.returncode == 0 and b"idmapped-mount probe" in res.stdout
    res = run([str(helper), "--version"])
    assert res.returncode == 0 and res.stdout.startswith(b"idmapped-mount ")


def _children(pid: int):
    with open("/proc/%d/task/%d/children" % (pid, pid), encoding="ascii") as f:
        return [int(x) for x in f.read().split()]


def _stat_fields(pid: int):
    """Fields of /proc/PID/stat after the command name: [0] state, [19] start time."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()


def _state(pid: int) -> str:
    return _stat_fields(pid)[0]


def _same_process_alive(pid: int, start: str) -> bool:
    try:
        fields = _stat_fields(pid)
    except FileNotFoundError:
        return False
    return fields[19] == start and fields[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_probe_leaves_nothing(helper, ext4_dir, sig):
    """Stop the worker with every probe mount in place, signal the parent, and check that
    the scratch dir, the mounts and both child processes are gone."""
    env = dict(os.environ, IDMAPPED_MOUNT_TEST_STOP_WORKER="1")
    proc = subprocess.Popen([str(helper), "probe", str(ext4_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        worker = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kids = _children(proc.pid)
            if kids and _state(kids[0]) == "T":
                worker = kids[0]
                break
            time.sleep(0.05)
        assert worker, "the worker never reached the hook"
        assert [n for n in os.listdir(ext4_dir) if n.startswith(".idmapped-mount-probe")]
        with open("/proc/%d/mountinfo" % worker, encoding="utf-8") as f:
            inside = [ln for ln in f if "idmapped-mount-probe" in ln]
        assert len(inside) == 2, "expected the idmapped and overlay mounts inside the probe"
        assert probe_mounts() == [], "probe mounts leaked into the caller's namespace"
        worker_start = _stat_fields(worker)[19]
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig
    assert b"interrupted" in err
    assert os.listdir(ext4_dir) == []
    assert not _same_process_alive(worker, worker_start)


def test_planted_symlinks_are_not_followed(helper, tmpfs_dir, tmp_path):
    """Whatever sits in DIR (here a symlink farm pointing elsewhere) is left as it was and
    nothing is created through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(32):
        os.symlink(outside, tmpfs_dir / (".idmapped-mount-probe.%d" % i))
    before = sorted(os.listdir(tmpfs_dir))
    res, out = probe(helper, tmpfs_dir)
    assert res.returncode == 0 and out["checks"]["idmapped_mount"]["ok"]
    assert sorted(os.listdir(tmpfs_dir)) == before
    assert os.listdir(outside) == []


def test_timeout_kills_a_stuck_worker_and_cleans_up(helper, ext4_dir):
    """A worker that never finishes (held by the stop hook, as a hung filesystem would) is
    killed after --timeout; the check says ETIMEDOUT and nothing is left."""
    env = dict(os.environ, IDMAPPED_MOUNT_TEST_STOP_WORKER="1")
    res = run([str(helper), "probe", "--timeout", "1", str(ext4_dir)], env=env)
    assert res.returncode == 0, res.stderr
    checks = json.loads(res.stdout)["checks"]
    assert checks["mount_api"]["ok"] is True
    assert checks["idmapped_mount"]["ok"] is False and checks["idmapped_mount"]["errno"] == "ETIMEDOUT"
    assert checks["overlay_idmapped_lower"]["message"] == "not run: idmapped_mount failed"
    assert_clean(ext4_dir)


@pytest.mark.parametrize("value", ["0", "x", "", "3601"])
def test_bad_timeout_is_a_usage_error(helper, value):
    res = run([str(helper), "probe", "--timeout", value, "/tmp"])
    assert res.returncode == 2 and b"--timeout" in res.stderr
