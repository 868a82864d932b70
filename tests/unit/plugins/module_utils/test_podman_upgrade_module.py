# -*- coding: utf-8 -*-
"""module_utils.podman_upgrade: install one Podman version, then gather as idmap_support does.

The package manager is a fake runner (dpkg-query / rpm answer from a dict that the install command
changes); the gather is idmap_support's own `gather`, replaced here by a recorder, since its own
tests (test_idmap_support.py) cover it: what matters here is that it runs after the change, with
idmap_support's options, in check mode as told, and that a failure says whether Podman changed."""

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import podman_upgrade
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import (
    ARGUMENT_SPEC,
    SupportError,
    SupportParams,
    SupportResult,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_upgrade import (
    PodmanUpgradeError,
    UpgradeParams,
    install_argv,
    run,
    wanted_version,
)


class Host:
    """A package database and the commands that change it."""

    def __init__(self, manager, version, install_rc=0, installs=None):
        self.manager, self.version, self.install_rc = manager, version, install_rc
        self.installs = installs  # the version an install leaves (None: the one asked for)
        self.commands = []

    def __call__(self, argv):
        self.commands.append(list(argv))
        if argv[0] == "dpkg-query":
            return (0, "install ok installed %s" % self.version, "") if self.version else (1, "", "no packages")
        if argv[0] == "rpm":
            return (0, "installed %s" % self.version, "") if self.version else (1, "package podman is not installed", "")
        if self.install_rc:
            return self.install_rc, "", "E: Unable to locate package"
        spec = argv[-1]
        self.version = self.installs or spec.split("=", 1)[1] if "=" in spec else self.installs or spec[len("podman-"):]
        return 0, "ok", ""


@pytest.fixture
def gathered(monkeypatch):
    seen = []

    def fake_gather(params, runner, check_mode):
        seen.append((params, check_mode))
        return SupportResult(facts={"verdict": "shares", "podman": {"version": "x"}}, changed=params.canary,
                             warnings=["w"], helper={"present": True})

    monkeypatch.setattr(podman_upgrade, "gather", fake_gather)
    return seen


def test_the_upgrade_installs_then_gathers_with_idmap_supports_options(gathered):
    host = Host("apt", "5.4.2+ds1-2+b2")
    params = UpgradeParams("podman=5.8.6+ds1-3", "apt", verify={"canary": True, "proof": True, "proof_accept": ["commit"],
                                                                "uidmap": None, "helper": "/h"})
    out = run(params, host, False, podman_path="/usr/bin/podman")
    assert host.commands[1] == install_argv(params) and "--allow-downgrades" not in host.commands[1]
    assert out["podman"] == {"before": "5.4.2+ds1-2+b2", "after": "5.8.6+ds1-3", "wanted": "5.8.6+ds1-3", "changed": True}
    (support, check_mode), = gathered
    # idmap_support's defaults where the rollout gave none (null), its options where it did
    assert isinstance(support, SupportParams) and not check_mode
    assert (support.canary, support.proof, support.proof_accept, support.helper, support.podman) == (
        True, True, ["commit"], "/h", "/usr/bin/podman")
    assert support.uidmap == ARGUMENT_SPEC["uidmap"]["default"]
    assert out["changed"] and out["facts"]["verdict"] == "shares" and out["warnings"] == ["w"]


def test_the_version_installed_already_is_not_installed_again(gathered):
    host = Host("apt", "5.8.6+ds1-3")
    out = run(UpgradeParams("podman=5.8.6+ds1-3", "apt"), host, False)
    assert [c[0] for c in host.commands] == ["dpkg-query"]
    assert out["podman"]["changed"] is False and out["changed"] is False and out["command"] is None
    assert len(gathered) == 1


def test_check_mode_installs_nothing_and_gathers_in_check_mode(gathered):
    host = Host("apt", "5.4.2+ds1-2+b2")
    out = run(UpgradeParams("podman=5.8.6+ds1-3", "apt", verify={"canary": True}), host, True)
    assert [c[0] for c in host.commands] == ["dpkg-query"] and host.version == "5.4.2+ds1-2+b2"
    assert out["changed"] is True and out["podman"]["after"] == "5.8.6+ds1-3"  # would
    assert gathered[0][1] is True


def test_the_previous_version_back_with_dnf(gathered):
    host = Host("dnf", "0:5.8.6-1.fc41")
    params = UpgradeParams("podman-5:5.4.2-1.fc41", "dnf", downgrade=True)
    host.version = "5:5.8.6-1.fc41"
    out = run(params, host, False)
    assert host.commands[1] == ["dnf", "-y", "-q", "--setopt=install_weak_deps=False", "downgrade",
                                "podman-5:5.4.2-1.fc41"]
    assert out["podman"]["after"] == "5:5.4.2-1.fc41"
    # rpm's epoch 0 and dnf's listing without it are the same version
    same = Host("dnf", "0:5.4.2-1.fc41")
    assert run(UpgradeParams("podman-5.4.2-1.fc41", "dnf"), same, False)["podman"]["changed"] is False


def test_apt_downgrade_is_allowed_only_when_asked():
    argv = install_argv(UpgradeParams("podman=4.3.1+ds1-8+b1", "apt", downgrade=True))
    assert "--allow-downgrades" in argv and argv[-1] == "podman=4.3.1+ds1-8+b1"
    assert "Dpkg::Options::=--force-confold" in argv


@pytest.mark.parametrize("host,words", [
    (Host("apt", "5.4.2+ds1-2+b2", install_rc=100), "failed (rc=100), Podman is now 5.4.2+ds1-2+b2"),
    (Host("apt", "5.4.2+ds1-2+b2", installs="5.4.2+ds1-2+b2"), "exited 0 but Podman is 5.4.2+ds1-2+b2, not 5.8.6+ds1-3"),
])
def test_a_failed_install_says_what_podman_is_now(gathered, host, words):
    with pytest.raises(PodmanUpgradeError, match=words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        run(UpgradeParams("podman=5.8.6+ds1-3", "apt"), host, False)
    assert gathered == []


def test_a_gather_that_fails_after_the_install_says_the_package_changed(monkeypatch):
    def broken(params, runner, check_mode):
        raise SupportError("podman info failed")

    monkeypatch.setattr(podman_upgrade, "gather", broken)
    with pytest.raises(PodmanUpgradeError, match=r"^installed podman=5.8.6\+ds1-3; the facts of Podman 5.8.6\+ds1-3"):
        run(UpgradeParams("podman=5.8.6+ds1-3", "apt"), Host("apt", "5.4.2+ds1-2+b2"), False)


@pytest.mark.parametrize("spec,manager", [("podman-5.8.6", "apt"), ("podman=", "apt"), ("buildah-1.0", "dnf")])
def test_a_spec_that_names_no_podman_version_is_refused(spec, manager):
    with pytest.raises(PodmanUpgradeError, match="is not podman"):
        wanted_version(spec, manager)


def test_unknown_verify_options_and_package_managers_are_refused(gathered):
    with pytest.raises(PodmanUpgradeError, match="verify: "):
        run(UpgradeParams("podman=1", "apt", verify={"no_such": 1}), Host("apt", "1"), False)
    with pytest.raises(PodmanUpgradeError, match="zypper"):
        run(UpgradeParams("podman-1", "zypper"), Host("apt", "1"), False)
