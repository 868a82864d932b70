# -*- coding: utf-8 -*-
"""plugin_utils.helper_plan.known_current: the helper role's record without running the role,
only where it is certain (the rollout then skips the role on a converged host)."""

import hashlib
import os
import shutil
import subprocess

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils import helper_plan as plan_lib

DEST = "/usr/local/libexec/idmapguard/idmapped-mount"
ARCH = plan_lib.controller_arch()


def observed(sha256, **change):
    seen = {"path": DEST, "present": True, "runs": True, "sha256": sha256, "version": "idmapped-mount 0.1.0",
            "uid": 0, "gid": 0, "mode": "0755", "dir_uid": 0, "dir_gid": 0, "dir_mode": "0755"}
    seen.update(change)
    return seen


def settings(**change):
    out = {"dest": DEST, "build": "controller", "prebuilt": "", "binary": "", "binaries": {},
           "native_dir": "/nonexistent", "controller_build_dir": "/nonexistent/build"}
    out.update(change)
    return out


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "idmapped-mount"
    path.write_bytes(b"\x7fELF helper")
    return str(path), hashlib.sha256(b"\x7fELF helper").hexdigest()


def test_an_operator_binary_that_the_host_has(binary):
    path, sha = binary
    found = plan_lib.known_current(observed(sha), ARCH, settings(binary=path))
    assert found["current"] and found["source"] == "operator" and found["version"] == "idmapped-mount 0.1.0"


@pytest.mark.parametrize("change", [{"sha256": "0" * 64}, {"mode": "0775"}, {"runs": False}, {"present": False}])
def test_anything_the_role_would_change_is_not_current(binary, change):
    path, sha = binary
    seen = dict(observed(sha), **change)
    assert plan_lib.known_current(seen, ARCH, settings(binary=path)) is None


def test_a_host_build_or_no_architecture_runs_the_role(binary):
    path, sha = binary
    assert plan_lib.known_current(observed(sha), ARCH, settings(build="host")) is None
    assert plan_lib.known_current(observed(sha), "", settings(binary=path)) is None
    assert plan_lib.known_current(observed(sha), ARCH, settings(build="elsewhere")) is None


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_a_controller_build_counts_only_when_make_would_leave_it(tmp_path):
    native = tmp_path / "native"
    native.mkdir()
    (native / "Makefile").write_text("all: $(BUILD)/idmapped-mount\n$(BUILD)/idmapped-mount: src.c\n"
                                     "\tmkdir -p $(BUILD) && cp src.c $@\n")
    (native / "src.c").write_text("v1\n")
    build = str(tmp_path / "build")
    conf = settings(native_dir=str(native), controller_build_dir=build)
    sha = hashlib.sha256(b"v1\n").hexdigest()
    # not built yet: the role builds
    assert not plan_lib.controller_build_current(str(native), build)
    assert plan_lib.known_current(observed(sha), ARCH, conf) is None
    subprocess.run(["make", "-s", "-C", str(native), "BUILD=" + build], check=True)
    assert plan_lib.known_current(observed(sha), ARCH, conf)["source"] == "controller"
    # newer sources: the role's make would rebuild, so the built binary does not count
    os.utime(str(native / "src.c"), (os.path.getmtime(build + "/idmapped-mount") + 10,) * 2)
    assert plan_lib.known_current(observed(sha), ARCH, conf) is None


def test_wrong_architecture_for_the_controller_build_runs_the_role(binary):
    path, sha = binary
    other = "aarch64" if ARCH != "aarch64" else "x86_64"
    assert plan_lib.known_current(observed(sha), other, settings(prebuilt=path)) is None
