# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Podman's environment allows: user namespaces, chroot, and the disable variable.

containers/storage only uses idmapped mounts when it can create a user namespace (it needs
one to carry the map) and when `_CONTAINERS_OVERLAY_DISABLE_IDMAP` is not "yes" in Podman's
environment. Podman run by systemd gets its environment from units, drop-ins and
EnvironmentFile=s, so those are searched, as well as this process's own environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import glob
import os
from typing import Dict, List, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import read_text
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mount_points
from ansible_collections.idmapguard.storage.plugins.module_utils.systemd_units import (
    UNIT_DIRS,
    env_file_assignments,
    quadlet_units,
    service_environment,
    unit_sources,
)

DISABLE_VAR = "_CONTAINERS_OVERLAY_DISABLE_IDMAP"
# containers/storage compares the value with "yes" exactly.
DISABLE_VALUE = "yes"
# Units through which Podman runs as a service; quadlet units are named by their container.
UNIT_GLOBS = ("podman*.service", "podman*.socket", "*.container")
ENV_FILES = ("/etc/environment", "/etc/default/podman", "/etc/sysconfig/podman")


def max_user_namespaces(proc: str = "/proc") -> Optional[int]:
    """user.max_user_namespaces, or None when the kernel has no such knob."""
    try:
        with open(os.path.join(proc, "sys/user/max_user_namespaces")) as handle:
            return int(handle.read().strip())
    except (OSError, IOError, ValueError):
        return None


def is_chrooted(proc: str = "/proc") -> bool:
    """True when this process runs under a plain chroot (the kernel then refuses CLONE_NEWUSER).

    Two signs, either is enough: PID 1 shares our mount namespace but has a different root
    (a chroot below it); or /proc/self/mountinfo, whose mount points are relative to our root,
    shows no mount at "/" (our root is a plain directory, not a mount, as after pivot_root).
    """
    try:
        own = os.stat(os.path.join(proc, "self/root/"))
        init = os.stat(os.path.join(proc, "1/root/"))
        same_ns = os.readlink(os.path.join(proc, "self/ns/mnt")) == os.readlink(os.path.join(proc, "1/ns/mnt"))
        if same_ns and (own.st_dev, own.st_ino) != (init.st_dev, init.st_ino):
            return True
    except OSError:
        pass
    try:
        points = mount_points(os.path.join(proc, "self/mountinfo"))
    except (OSError, UnicodeError):
        return False
    return "/" not in points  # no mount at our "/": we sit below a mount point, i.e. chrooted


def _env_file_sets(path: str) -> bool:
    text = read_text(path)
    if text is None:
        return False
    value = env_file_assignments(text).get(DISABLE_VAR)
    return value is not None and value[0] == DISABLE_VALUE


def _unit_names(root: str) -> List[str]:
    """Units through which Podman runs that have a file or a drop-in on the host, in the order of
    UNIT_DIRS; then the rootful quadlets' services."""
    names = []  # type: List[str]
    for unit_dir in UNIT_DIRS:
        base = root + unit_dir
        for pattern in UNIT_GLOBS:
            for path in sorted(glob.glob(os.path.join(base, pattern))) + sorted(
                    glob.glob(os.path.join(base, pattern + ".d"))):
                name = os.path.basename(path)
                name = name[:-2] if name.endswith(".d") else name
                if name not in names:
                    names.append(name)
    names.extend(name for name in sorted(quadlet_units(root)) if name not in names)
    return names


def disable_idmap_env(root: str = "", environ: Optional[Mapping[str, str]] = None) -> Dict[str, object]:
    """{"set": bool, "where": [files or "process environment"]} for _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes.

    A unit counts only when the environment systemd gives its service has the variable: a
    drop-in (also one for every service) that unsets it with UnsetEnvironment=, which is how the
    configure role fixes it, or a later Environment= with another value, cancels it. Each unit
    names the file that decided it (an EnvironmentFile= names the environment file).
    """
    where = []  # type: List[str]
    env = os.environ if environ is None else environ
    if env.get(DISABLE_VAR) == DISABLE_VALUE:
        where.append("process environment")
    for path in ENV_FILES:
        if _env_file_sets(root + path):
            where.append(path)
    quadlets = quadlet_units(root)
    for name in _unit_names(root):
        # the unit's environment as systemd builds it (systemd_units: unit file, drop-ins, also
        # those for every service, EnvironmentFile=, UnsetEnvironment= last)
        found = service_environment(unit_sources(name, root, quadlets), root).get(DISABLE_VAR)
        if found and found["value"] == DISABLE_VALUE:
            where.append(found.get("env_file") or found["file"])
    unique = []  # type: List[str]
    for item in where:
        if item not in unique:
            unique.append(item)
    return {"set": bool(unique), "where": unique}


def systemd_booted(root: str = "") -> bool:
    """Whether systemd is the host's init (sd_booted(3): /run/systemd/system exists). Without it
    the copy-cache guard, a systemd service, cannot be enabled."""
    return os.path.isdir(root + "/run/systemd/system")
