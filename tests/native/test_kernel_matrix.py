"""The probe's verdicts on real Debian kernels booted under QEMU (native/kernel-matrix).

Two sources are checked against what each kernel is known to support:
  - the committed fixtures tests/fixtures/kernel-matrix/*.json (the verdict rules' unit tests
    read them, so they must be right);
  - a fresh run, when KERNEL_MATRIX_RESULTS names its output directory (make test-native);
    it must also agree check by check with the fixture of the same suite.

Kernel facts: mount_setattr/idmapped mounts came in 5.12 (ext4 among the first filesystems),
overlayfs on idmapped lower layers in 5.19, tmpfs idmapped mounts in 6.3.
"""
import json
import os
import re
from pathlib import Path
from typing import Dict, List

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kernel-matrix"
SUITES = {"bullseye", "bookworm", "trixie"}
CHECKS = ("mount_api", "idmapped_mount", "overlay_idmapped_lower")


def load(directory: Path) -> List[dict]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(directory.glob("*.json")) if p.name != "matrix.json"]


def version(release: str):
    major, minor = re.match(r"(\d+)\.(\d+)", release).groups()
    return int(major), int(minor)


def expected(release: str, fs: str) -> Dict[str, bool]:
    v = version(release)
    api = v >= (5, 12)
    idm = api and (fs == "ext4" or (fs == "tmpfs" and v >= (6, 3)))
    return {"mount_api": api, "idmapped_mount": idm, "overlay_idmapped_lower": idm and v >= (5, 19)}


def check_result(res: dict) -> None:
    assert res["problems"] == [], res["problems"]
    assert res["probe_exit"] == {"ext4": 0, "tmpfs": 0}
    assert set(res["probes"]) == {"ext4", "tmpfs"}
    for fs, probe in res["probes"].items():
        assert probe["kernel"] == res["kernel"]
        assert probe["fs_type"] == fs
        assert len(probe["uidmap"]) >= 3, "the default map must be non-contiguous"
        want = expected(res["kernel"], fs)
        for name in CHECKS:
            got = probe["checks"][name]
            assert got["ok"] is want[name], (res["kernel"], fs, name, got)
            if not got["ok"]:
                assert got["message"]
        if not want["mount_api"]:
            assert probe["checks"]["mount_api"]["errno"] == "ENOSYS"
            for name in CHECKS[1:]:
                assert probe["checks"][name]["message"].startswith("not run:")
        elif not want["idmapped_mount"]:
            assert probe["checks"]["idmapped_mount"]["errno"] == "EINVAL"


def summary(res: dict):
    return {fs: {n: (c["ok"], c["errno"]) for n, c in p["checks"].items()} for fs, p in res["probes"].items()}


def test_fixtures_cover_the_suites():
    fixtures = load(FIXTURES)
    assert {r["suite"] for r in fixtures} >= SUITES
    assert any(version(r["kernel"]) < (5, 12) for r in fixtures), "need a kernel without mount_setattr"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_fixture(path):
    res = json.loads(path.read_text("utf-8"))
    assert path.stem == res["kernel"]
    check_result(res)


def test_fresh_run_matches_kernel_facts_and_fixtures():
    out = os.environ.get("KERNEL_MATRIX_RESULTS")
    if not out:
        pytest.skip("no fresh kernel-matrix run (make test-native provides one)")
    fresh = load(Path(out))
    assert {r["suite"] for r in fresh} >= SUITES
    by_suite = {r["suite"]: r for r in load(FIXTURES)}
    for res in fresh:
        check_result(res)
        # The mirror may have moved the suite to a newer kernel since the fixture was taken;
        # within a suite the verdicts must stay the same.
        assert summary(res) == summary(by_suite[res["suite"]]), res["kernel"]
