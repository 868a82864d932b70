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
import re
import shlex
from typing import Dict, List, Mapping, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import mount_points

DISABLE_VAR = "_CONTAINERS_OVERLAY_DISABLE_IDMAP"
# containers/storage compares the value with "yes" exactly.
DISABLE_VALUE = "yes"
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
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


_ENV_LINE = re.compile(r"^\s*Environment\s*=\s*(.*)$")
_ENVFILE_LINE = re.compile(r"^\s*EnvironmentFile\s*=\s*-?(.*)$")
_UNSETENV_LINE = re.compile(r"^\s*UnsetEnvironment\s*=\s*(.*)$")


def _assignments(words: List[str]) -> Dict[str, str]:
    out = {}  # type: Dict[str, str]
    for word in words:
        if "=" in word:
            key, value = word.split("=", 1)
            out[key.strip()] = value
    return out


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (OSError, IOError, UnicodeDecodeError):
        return None


def _env_file_sets(path: str) -> bool:
    text = _read(path)
    if text is None:
        return False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[7:]
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if _assignments(words).get(DISABLE_VAR) == DISABLE_VALUE:
            return True
    return False


def _unit_files(root: str) -> Dict[str, List[str]]:
    """Unit name -> its unit files and drop-ins; "" holds the drop-ins of every service."""
    units = {}  # type: Dict[str, List[str]]
    for unit_dir in UNIT_DIRS:
        base = root + unit_dir
        paths = []  # type: List[str]
        for pattern in UNIT_GLOBS:
            paths.extend(sorted(glob.glob(os.path.join(base, pattern))))
            paths.extend(sorted(glob.glob(os.path.join(base, pattern + ".d", "*.conf"))))
        # drop-ins for every service ("service.d") apply to Podman's units too
        paths.extend(sorted(glob.glob(os.path.join(base, "service.d", "*.conf"))))
        for path in paths:
            parent = os.path.basename(os.path.dirname(path))
            if parent == "service.d":
                name = ""
            elif parent.endswith(".d"):
                name = parent[:-2]
            else:
                name = os.path.basename(path)
            units.setdefault(name, []).append(path)
    return units


def _service_lines(text: str) -> List[str]:
    """The lines of a unit's [Service] section: only they shape the environment Podman runs with
    (a quadlet's [Container] Environment= is the container's, not Podman's)."""
    lines = []  # type: List[str]
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
        elif section == "Service":
            lines.append(line)
    return lines


def _unit_effect(root: str, path: str) -> Tuple[List[str], bool]:
    """(places in this file that set the variable to "yes", whether it unsets the variable)."""
    text = _read(path)
    sets = []  # type: List[str]
    unsets = False
    if text is None:
        return sets, unsets
    for line in _service_lines(text):
        m = _ENV_LINE.match(line)
        if m:
            try:
                words = shlex.split(m.group(1))
            except ValueError:
                words = m.group(1).split()
            if _assignments(words).get(DISABLE_VAR) == DISABLE_VALUE:
                sets.append(path[len(root):] if root else path)
        m = _ENVFILE_LINE.match(line)
        if m and m.group(1).strip():
            env_file = m.group(1).strip()
            if _env_file_sets(root + env_file):
                sets.append(env_file)
        m = _UNSETENV_LINE.match(line)
        if m:
            # systemd applies UnsetEnvironment= last, after Environment= and EnvironmentFile=:
            # a bare name removes the variable whatever its value, NAME=VALUE only that value.
            for word in m.group(1).split():
                if word in (DISABLE_VAR, DISABLE_VAR + "=" + DISABLE_VALUE):
                    unsets = True
    return sets, unsets


def disable_idmap_env(root: str = "", environ: Optional[Mapping[str, str]] = None) -> Dict[str, object]:
    """{"set": bool, "where": [files or "process environment"]} for _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes.

    A unit counts only when its files set the variable and none of them (nor a drop-in for every
    service) unsets it again with UnsetEnvironment=, which is how the configure role fixes it.
    """
    where = []  # type: List[str]
    env = os.environ if environ is None else environ
    if env.get(DISABLE_VAR) == DISABLE_VALUE:
        where.append("process environment")
    for path in ENV_FILES:
        if _env_file_sets(root + path):
            where.append(path)
    units = _unit_files(root)
    global_effects = [_unit_effect(root, path) for path in units.pop("", [])]
    for paths in units.values():
        effects = [_unit_effect(root, path) for path in paths] + global_effects
        if any(unsets for _sets, unsets in effects):
            continue
        for sets, _unsets in effects:
            where.extend(sets)
    unique = []  # type: List[str]
    for item in where:
        if item not in unique:
            unique.append(item)
    return {"set": bool(unique), "where": unique}


def systemd_booted(root: str = "") -> bool:
    """Whether systemd is the host's init (sd_booted(3): /run/systemd/system exists). Without it
    the copy-cache guard, a systemd service, cannot be enabled."""
    return os.path.isdir(root + "/run/systemd/system")
