# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade plan over package manager listings.

The apt-*.txt fixtures are real `LC_ALL=C apt-cache policy podman` output, captured on lab hosts
(tests/lab/repo.py repositories) and on this project's Debian 12 build machine. The dnf*.txt
fixtures are written in dnf 4's and dnf5's `list --showduplicates` layout (no RPM host in the lab).
"""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils import podman_upgrade as pu
from ansible_collections.idmapguard.storage.plugins.filter.podman_upgrade import (
    FilterModule, podman_upgrade_plan,
)
from ansible.errors import AnsibleFilterError

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "package-policy"


def listing(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize("a,b,expected", [
    ("5.8.6+ds1-3", "5.4.2+ds1-2+b2", 1),
    ("5.4.2+ds1-2+b2", "5.4.2+ds1-2", 1),
    ("5.6.0~rc1-1", "5.6.0-1", -1),
    ("1:4.3.1-1", "5.8.6-1", 1),
    ("4.3.1+ds1-8+deb12u1+b3", "4.3.1+ds1-8+deb12u1", 1),
    ("3.0.1+dfsg1-3+deb11u5", "3.0.1+dfsg1-3+deb11u5", 0),
    ("5.10.0-1", "5.9.9-1", 1),
])
def test_deb_order(a, b, expected):
    assert pu.compare_versions(a, b, "apt") == expected
    assert pu.compare_versions(b, a, "apt") == -expected


@pytest.mark.parametrize("a,b,expected", [
    ("5:5.6.0-1.el9_7", "5:4.9.4-18.el9_5", 1),
    ("2:5.6.0-1.el9", "5:4.9.4-18.el9_5", -1),
    ("5:5.6.0-3.el9_7", "5:5.6.0-1.el9_7", 1),
    ("5.6.0~rc1-1.fc42", "5.6.0-1.fc42", -1),
    ("5.6.0^20250101-1", "5.6.0-1", 1),
    ("5.6.0a-1", "5.6.0-1", 1),
    ("5.6.1-1", "5.6.a-1", 1),
])
def test_rpm_order(a, b, expected):
    assert pu.compare_versions(a, b, "dnf") == expected
    assert pu.compare_versions(b, a, "dnf") == -expected


def test_trixie_with_a_repository_that_carries_sid_podman():
    plan = pu.plan_upgrade(listing("apt-trixie-sid-repo.txt"), "apt")
    assert plan["upgrade"] is True
    assert plan["installed"] == "5.4.2+ds1-2+b2"
    assert plan["target"] == "5.8.6+ds1-3" and plan["target_spec"] == "podman=5.8.6+ds1-3"
    assert plan["available"] == ["5.8.6+ds1-3", "5.4.2+ds1-2+b2"]
    assert plan["rollback_spec"] == "podman=5.4.2+ds1-2+b2"  # the repository still has it
    assert plan["backport"] is False
    assert "5.8.6+ds1-3" in plan["note"] and "5.4.2+ds1-2+b2" in plan["note"]


@pytest.mark.parametrize("fixture", [
    "apt-trixie-own-repo.txt",            # only its own 5.4
    "apt-bullseye-no-lists.txt",          # no repository lists at all
    "apt-debian12-mirror.txt",            # bookworm's mirror: 4.3 only
    "apt-bookworm-trixie-repo.txt",       # 5.4 offered: newer, but it copies too
    "apt-trixie-sid-repo-pinned-away.txt",  # 5.8 pinned to -1: never installed
    "dnf4-rhel8-layout.txt",              # 4.9 only
])
def test_no_sharing_podman_changes_nothing(fixture):
    manager = "dnf" if fixture.startswith("dnf") else "apt"
    plan = pu.plan_upgrade(listing(fixture), manager)
    assert plan["upgrade"] is False and plan["target"] is None and plan["target_spec"] is None
    assert plan["note"] == pu.NO_SHARING_NOTE
    assert plan["installed"]


def test_declared_backport_is_a_target():
    plan = pu.plan_upgrade(listing("apt-bookworm-trixie-repo.txt"), "apt", backports=["5.4.2+ds1-2+b2"])
    assert plan["upgrade"] is True and plan["target"] == "5.4.2+ds1-2+b2" and plan["backport"] is True
    assert plan["rollback_spec"] == "podman=4.3.1+ds1-8+deb12u1+b3"
    assert "declared backport" in plan["note"]
    # a version named as a backport must still be newer than the installed one
    same = pu.plan_upgrade(listing("apt-trixie-own-repo.txt"), "apt", backports=["5.4.2+ds1-2+b2"])
    assert same["upgrade"] is False


def test_no_rollback_target_when_the_repository_dropped_the_installed_version():
    text = listing("apt-trixie-sid-repo.txt").replace(
        " *** 5.4.2+ds1-2+b2 500\n        500 file:/srv/idmapguard-lab-repo ./ Packages\n",
        " *** 5.4.2+ds1-2+b2 100\n")
    plan = pu.plan_upgrade(text, "apt")
    assert plan["upgrade"] is True and plan["rollback_spec"] is None
    assert plan["available"] == ["5.8.6+ds1-3"]


def test_candidate_preferred_over_a_newer_lower_priority_version():
    text = """podman:
  Installed: 5.4.2+ds1-2+b2
  Candidate: 5.6.1-1~bpo13+1
  Version table:
     5.8.6+ds1-3 50
         50 http://mirror.example/debian sid/main amd64 Packages
     5.6.1-1~bpo13+1 500
        500 http://mirror.example/debian trixie-backports/main amd64 Packages
 *** 5.4.2+ds1-2+b2 500
        500 http://mirror.example/debian trixie/main amd64 Packages
        100 /var/lib/dpkg/status
"""
    plan = pu.plan_upgrade(text, "apt")
    assert plan["target"] == "5.6.1-1~bpo13+1"
    # when the candidate does not qualify, the newest version that does
    plan = pu.plan_upgrade(text.replace("Candidate: 5.6.1-1~bpo13+1", "Candidate: 5.4.2+ds1-2+b2"), "apt")
    assert plan["target"] == "5.8.6+ds1-3"


def test_dnf4_rhel9_layout():
    plan = pu.plan_upgrade(listing("dnf4-rhel9-layout.txt"), "dnf")
    assert plan["installed"] == "5:4.9.4-18.el9_5"
    assert plan["target"] == "5:5.6.0-3.el9_7" and plan["target_spec"] == "podman-5:5.6.0-3.el9_7"
    assert plan["available"][0] == "5:5.6.0-3.el9_7" and "2:4.9.4-0.1.el9" in plan["available"]
    assert plan["rollback_spec"] == "podman-5:4.9.4-18.el9_5"


def test_dnf5_layout():
    plan = pu.plan_upgrade(listing("dnf5-fedora-layout.txt"), "dnf5")
    assert plan["installed"] == "5:5.4.2-1.fc42" and plan["target"] == "5:5.8.1-1.fc42"


def test_not_installed_and_unknown_managers():
    plan = pu.plan_upgrade("podman:\n  Installed: (none)\n  Candidate: 5.8.6+ds1-3\n  Version table:\n"
                           "     5.8.6+ds1-3 500\n        500 file:/srv/r ./ Packages\n", "apt")
    assert plan["upgrade"] is False and "not installed" in plan["note"]
    assert pu.plan_upgrade("", "apt")["upgrade"] is False  # apt-cache policy of an unknown package
    plan = pu.plan_upgrade("whatever", "zypper")
    assert plan["upgrade"] is False and "zypper" in plan["note"] and "apt and dnf" in plan["note"]


def test_garbled_apt_output_is_no_upgrade_with_the_reason():
    plan = pu.plan_upgrade(listing("apt-trixie-sid-repo.txt") + "  Version table:\n  what is this\n", "apt")
    assert plan["upgrade"] is False and "unexpected line" in plan["note"]


def test_outcome_and_check_mode():
    plan = pu.plan_upgrade(listing("apt-trixie-sid-repo.txt"), "apt")
    would = pu.upgrade_outcome(plan, installed=True, check_mode=True)
    assert would["upgraded"] is False and would["note"].startswith("would upgrade Podman 5.4.2+ds1-2+b2 -> 5.8.6")
    done = pu.upgrade_outcome(plan, installed=True)
    assert done["upgraded"] is True and done["note"].startswith("upgraded Podman")
    held = pu.plan_upgrade(listing("apt-trixie-own-repo.txt"), "apt")
    assert pu.upgrade_outcome(held, installed=False) == held


def test_failed_proof_after_an_upgrade():
    plan = pu.upgrade_outcome(pu.plan_upgrade(listing("apt-trixie-sid-repo.txt"), "apt"), installed=True)
    ok = pu.failed_proof(plan, "shares", {"ran": True, "passed": True})
    assert ok["proof_failed"] is False and ok["error"] == ""
    bad = pu.failed_proof(plan, "shares", {"ran": True, "passed": False, "new_mapped_layers": 1})
    assert bad["proof_failed"] is True and "still added a copy" in bad["error"]
    checks = pu.failed_proof(plan, "shares", {"ran": True, "passed": False, "new_mapped_layers": 0,
                                              "failed_checks": ["ownership", "commit"]})
    assert "upgrade to 5.8.6+ds1-3: check ownership failed; check commit failed;" in checks["error"]
    # the canary's copy turns the verdict itself (canary_copied): still the proof's message
    copied = pu.failed_proof(plan, "needs_podman_upgrade", {"ran": True, "passed": False}, ["canary copied"])
    assert copied["proof_failed"] is True and copied["error"].startswith("proof failed after the upgrade")
    assert "5.4.2+ds1-2+b2 is installed again" in bad["error"]
    other = pu.failed_proof(plan, "unsupported_filesystem", None, ["ramfs has no idmapped mounts"])
    assert other["proof_failed"] is True and "unsupported_filesystem: ramfs" in other["error"]
    plan["rollback_spec"] = None
    stuck = pu.failed_proof(plan, "shares", {"ran": True, "passed": False})
    assert "no longer in this host's repositories, so 5.8.6+ds1-3 stays installed" in stuck["error"]
    # nothing was upgraded: nothing to judge
    held = pu.plan_upgrade(listing("apt-trixie-own-repo.txt"), "apt")
    assert pu.failed_proof(held, "needs_podman_upgrade", None)["proof_failed"] is False


def test_filter_entry_points():
    filters = FilterModule().filters()
    assert set(filters) == {"podman_upgrade_plan", "podman_upgrade_outcome", "podman_upgrade_failed_proof"}
    assert podman_upgrade_plan(listing("apt-trixie-sid-repo.txt"), "apt")["upgrade"] is True
    with pytest.raises(AnsibleFilterError):
        podman_upgrade_plan(None, "apt")


def test_refresh_error_is_part_of_the_note():
    plan = pu.plan_upgrade(listing("apt-bullseye-no-lists.txt"), "apt", refresh_error="Failed to update apt cache: W:...\n")
    assert plan["upgrade"] is False
    assert plan["note"] == pu.NO_SHARING_NOTE + " (the package lists could not be refreshed: Failed to update apt cache: W:...)"
