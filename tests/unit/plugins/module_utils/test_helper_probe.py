# -*- coding: utf-8 -*-
"""helper_probe.helper_identity: what is installed at the helper path, the rollout's evidence
for leaving a current helper alone without another round trip."""

import hashlib
import os

from ansible_collections.idmapguard.storage.plugins.module_utils.helper_probe import helper_identity


def runner(calls, rc=0, out="idmapped-mount 0.1.0\n"):
    def run(argv):
        calls.append(list(argv))
        return rc, out, ""
    return run


def test_installed_helper_reports_checksum_owner_mode_and_version(tmp_path):
    directory = tmp_path / "idmapguard"
    directory.mkdir()
    directory.chmod(0o755)
    helper = directory / "idmapped-mount"
    helper.write_bytes(b"\x7fELF not really")
    helper.chmod(0o755)
    calls = []
    ident = helper_identity(runner(calls), str(helper))
    assert ident["present"] is True and ident["runs"] is True
    assert ident["sha256"] == hashlib.sha256(b"\x7fELF not really").hexdigest()
    assert ident["version"] == "idmapped-mount 0.1.0"
    assert ident["mode"] == "0755" and ident["dir_mode"] == "0755"
    assert ident["uid"] == os.getuid() and ident["dir_uid"] == os.getuid()
    assert ident["architecture"] == os.uname().machine
    assert calls == [[str(helper), "--version"]]


def test_missing_helper_is_reported_not_run(tmp_path):
    calls = []
    ident = helper_identity(runner(calls), str(tmp_path / "nope" / "idmapped-mount"))
    assert ident["present"] is False and ident["sha256"] is None and ident["runs"] is False
    assert ident["dir_mode"] is None  # no directory either
    assert calls == []


def test_helper_that_does_not_run_is_not_current(tmp_path):
    helper = tmp_path / "idmapped-mount"
    helper.write_bytes(b"broken")
    helper.chmod(0o700)
    ident = helper_identity(runner([], rc=126, out=""), str(helper))
    assert ident["present"] is True and ident["mode"] == "0700"
    assert ident["runs"] is False and ident["version"] is None


def test_not_executable_is_not_run(tmp_path):
    helper = tmp_path / "idmapped-mount"
    helper.write_bytes(b"data")
    helper.chmod(0o644)
    calls = []
    ident = helper_identity(runner(calls), str(helper))
    assert ident["present"] is True and ident["runs"] is False and calls == []


def test_a_directory_in_its_place_is_not_present(tmp_path):
    (tmp_path / "idmapped-mount").mkdir()
    ident = helper_identity(runner([]), str(tmp_path / "idmapped-mount"))
    assert ident["present"] is False
