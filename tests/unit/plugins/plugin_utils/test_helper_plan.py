# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The helper role's decisions: where the binary comes from, and is the installed one current."""

from __future__ import annotations

import hashlib

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.helper_plan import helper_plan
from ansible_collections.idmapguard.storage.plugins.plugin_utils import helper_plan as plan_lib

DEST = "/usr/local/libexec/idmapguard/idmapped-mount"


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "idmapped-mount"
    path.write_bytes(b"\x7fELF helper")
    return str(path)


def observed_ok(sha256, **change):
    seen = {"path": DEST, "present": True, "runs": True, "sha256": sha256, "version": "idmapped-mount 0.1.0",
            "uid": 0, "gid": 0, "mode": "0755", "dir_uid": 0, "dir_gid": 0, "dir_mode": "0755"}
    seen.update(change)
    return seen


@pytest.mark.parametrize("kwargs, source", [
    ({"binary": "/srv/b"}, "operator"),
    ({"binary": "/srv/b", "binaries": {"x86_64": "/srv/x"}}, "operator"),
    ({"binaries": {"x86_64": "/srv/x"}}, "per_arch"),
    ({"binaries": {"aarch64": "/srv/a"}}, "controller"),
    ({"prebuilt": "PREBUILT"}, "prebuilt"),
    ({"prebuilt": "/nonexistent/idmapped-mount"}, "controller"),
    ({"prebuilt": "PREBUILT", "build": "host"}, "host"),
    ({"build": "host"}, "host"),
    ({}, "controller"),
])
def test_source_order(binary, kwargs, source):
    if kwargs.get("prebuilt") == "PREBUILT":
        kwargs["prebuilt"] = binary
    plan = helper_plan("x86_64", stage="source", build_path="/cache/idmapped-mount", **kwargs)
    assert plan["source"] == source
    expected_src = {"operator": "/srv/b", "per_arch": "/srv/x", "prebuilt": binary,
                    "controller": "/cache/idmapped-mount", "host": ""}[source]
    assert plan["src"] == expected_src and plan["arch"] == "x86_64"


def test_source_rejects_bad_build_and_unknown_arch():
    with pytest.raises(AnsibleFilterError, match="idmapguard_helper_build"):
        helper_plan("x86_64", stage="source", build="elsewhere")
    with pytest.raises(AnsibleFilterError, match="architecture"):
        helper_plan("", stage="source")
    with pytest.raises(AnsibleFilterError, match="stage"):
        helper_plan("x86_64", stage="other")


def test_current_when_every_property_matches(binary):
    sha = hashlib.sha256(b"\x7fELF helper").hexdigest()
    plan = {"arch": plan_lib.controller_arch(), "source": "prebuilt", "src": binary}
    record = helper_plan(plan, stage="record", observed=observed_ok(sha), dest=DEST)
    assert record["current"] is True and record["checksum"] == sha
    assert record["version"] == "idmapped-mount 0.1.0" and record["problem"] == ""


@pytest.mark.parametrize("change", [
    {"sha256": "0" * 64}, {"present": False}, {"runs": False}, {"path": "/elsewhere"},
    {"uid": 1000}, {"gid": 5}, {"mode": "0775"}, {"dir_uid": 1}, {"dir_gid": 1}, {"dir_mode": "0777"},
])
def test_not_current_when_any_property_differs(binary, change):
    sha = hashlib.sha256(b"\x7fELF helper").hexdigest()
    plan = {"arch": plan_lib.controller_arch(), "source": "controller", "src": binary}
    record = helper_plan(plan, stage="record", observed=dict(observed_ok(sha), **change), dest=DEST)
    assert record["current"] is False and record["version"] is None
    assert record["checksum"] == sha and record["problem"] == ""


def test_nothing_observed_is_not_current(binary):
    plan = {"arch": plan_lib.controller_arch(), "source": "operator", "src": binary}
    assert helper_plan(plan, stage="record", observed={}, dest=DEST)["current"] is False


def test_host_build_is_never_current_and_has_no_checksum():
    plan = {"arch": "x86_64", "source": "host", "src": ""}
    record = helper_plan(plan, stage="record", observed=observed_ok(""), dest=DEST)
    assert record == dict(record, current=False, checksum="", problem="")


@pytest.mark.parametrize("source", ["prebuilt", "controller"])
def test_wrong_architecture_is_a_problem(binary, source):
    plan = {"arch": "aarch64", "source": source, "src": binary}
    record = plan_lib.helper_record(observed_ok("x"), plan, DEST, build_arch="x86_64")
    assert record["current"] is False
    assert "aarch64" in record["problem"] and "idmapguard_helper_binaries" in record["problem"]


def test_operator_binary_of_another_arch_is_the_operators_call(binary):
    plan = {"arch": "aarch64", "source": "operator", "src": binary}
    assert plan_lib.helper_record({}, plan, DEST, build_arch="x86_64")["problem"] == ""


def test_missing_binary_is_a_problem(tmp_path):
    plan = {"arch": plan_lib.controller_arch(), "source": "per_arch", "src": str(tmp_path / "none")}
    record = helper_plan(plan, stage="record", observed={}, dest=DEST)
    assert record["problem"].endswith("no binary at %s on the controller" % (tmp_path / "none"))
    assert record["checksum"] == "" and record["current"] is False
