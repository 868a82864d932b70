# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The podman_upgrade module's backend: install one Podman package version, then gather the facts
of the Podman now installed (idmap_support.gather, the same code, called here in the same process).

The rollout needs the installed Podman's facts right after every package change (after the
upgrade: configure decides from them and the proof judges them; after the previous version is
installed again: the record's verdict). Gathering them in the call that changed the package
saves one round trip per change; the gather itself is idmap_support's, unchanged.
Which version to install, and whether, is the controller's decision (plugin_utils/podman_upgrade.py);
this file only installs the package spec it is given. Every domain failure is PodmanUpgradeError."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap_support import (
    ARGUMENT_SPEC,
    SupportError,
    SupportParams,
    gather,
)

PACKAGE_MANAGERS = ("apt", "dnf", "dnf5", "yum")
PACKAGE = "podman"
# how long apt waits for another dpkg (an unattended upgrade) to let go of its lock, as the apt module does
APT_LOCK_TIMEOUT = 60


class PodmanUpgradeError(RuntimeError):
    """Anything that stops the package change or the gather after it (the message says which, and
    whether the package had already changed)."""


@dataclass
class UpgradeParams:
    # podman=VERSION (apt) or podman-[EPOCH:]VERSION (dnf, yum): plugin_utils/podman_upgrade.package_spec
    spec: str
    package_manager: str
    # the previous version back (apt --allow-downgrades, dnf downgrade)
    downgrade: bool = False
    # idmap_support's options for the gather after the change (SupportParams)
    verify: Dict[str, Any] = field(default_factory=dict)


def wanted_version(spec: str, package_manager: str) -> str:
    """The version SPEC names (package_spec's inverse)."""
    sep = "=" if package_manager == "apt" else "-"
    prefix = PACKAGE + sep
    if not spec.startswith(prefix) or len(spec) == len(prefix):
        raise PodmanUpgradeError("spec %r is not %sVERSION (%s)" % (spec, prefix, package_manager))
    return spec[len(prefix):]


def _same(installed: Optional[str], wanted: str) -> bool:
    """rpm reports epoch 0 as 0: (or not at all); dnf lists it either way."""
    if installed is None:
        return False

    def norm(version: str) -> str:
        return version[2:] if version.startswith("0:") else version

    return norm(installed) == norm(wanted)


def installed_version(run: Runner, package_manager: str) -> Optional[str]:
    """The installed Podman package's version (None: not installed)."""
    if package_manager == "apt":
        argv = ["dpkg-query", "-W", "-f", "${Status} ${Version}", PACKAGE]
    else:
        argv = ["rpm", "-q", "--qf", "installed %{EPOCH}:%{VERSION}-%{RELEASE}", PACKAGE]
    try:
        rc, out, _err = run(argv)
    except OSError as exc:
        raise PodmanUpgradeError("cannot run %s: %s" % (argv[0], exc))
    words = out.split()
    if rc != 0 or not words or (package_manager == "apt" and words[:3] != ["install", "ok", "installed"]):
        return None
    version = words[-1]
    return version.replace("(none):", "") if package_manager != "apt" else version


def install_argv(params: UpgradeParams) -> List[str]:
    if params.package_manager == "apt":
        argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
                "-o", "DPkg::Lock::Timeout=%d" % APT_LOCK_TIMEOUT,
                # keep the host's edited configuration files (the apt module's default dpkg options)
                "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
        if params.downgrade:
            argv.append("--allow-downgrades")
        return argv + [params.spec]
    return [params.package_manager, "-y", "-q", "--setopt=install_weak_deps=False",
            "downgrade" if params.downgrade else "install", params.spec]


def support_params(verify: Mapping[str, Any]) -> SupportParams:
    """idmap_support's parameters from VERIFY (the module validated it against idmap_support's own
    argument spec; left out or None: that spec's default)."""
    values = {k: copy.deepcopy(opt.get("default")) for k, opt in ARGUMENT_SPEC.items()}
    values.update({k: v for k, v in verify.items() if v is not None})
    try:
        return SupportParams(**values)
    except TypeError as exc:
        raise PodmanUpgradeError("verify: %s" % exc)


def run(params: UpgradeParams, runner: Runner, check_mode: bool, podman_path: Optional[str] = None,
        install_runner: Optional[Runner] = None) -> Dict[str, Any]:
    """Install params.spec unless it is installed already (with INSTALL_RUNNER: the package manager's
    environment), then gather with RUNNER, as idmap_support does. Returns {changed, podman: {before,
    after, wanted, changed}, command, facts, helper, warnings}."""
    if params.package_manager not in PACKAGE_MANAGERS:
        raise PodmanUpgradeError("package manager %r is not supported (%s are)"
                                 % (params.package_manager, ", ".join(PACKAGE_MANAGERS)))
    wanted = wanted_version(params.spec, params.package_manager)
    support = support_params(params.verify)
    if podman_path:
        support.podman = podman_path
    before = installed_version(runner, params.package_manager)
    change = not _same(before, wanted)
    command = None  # type: Optional[List[str]]
    after = before
    if change and not check_mode:
        command = install_argv(params)
        try:
            rc, out, err = (install_runner or runner)(command)
        except OSError as exc:
            raise PodmanUpgradeError("cannot run %s: %s" % (command[0], exc))
        after = installed_version(runner, params.package_manager)
        if rc != 0:
            raise PodmanUpgradeError("%s failed (rc=%d), Podman is now %s: %s" % (
                " ".join(command), rc, after or "not installed", (err or out or "").strip()[-800:]))
        if not _same(after, wanted):
            raise PodmanUpgradeError("%s exited 0 but Podman is %s, not %s" % (
                " ".join(command), after or "not installed", wanted))
    try:
        gathered = gather(support, runner, check_mode)
    except SupportError as exc:
        raise PodmanUpgradeError("%sthe facts of Podman %s could not be gathered: %s" % (
            "installed %s; " % params.spec if command else "", after or wanted, exc))
    podman = {"before": before, "after": wanted if change else after, "wanted": wanted, "changed": change}
    return {"changed": change or gathered.changed, "podman": podman, "command": command, "facts": gathered.facts,
            "helper": gathered.helper, "warnings": gathered.warnings}
