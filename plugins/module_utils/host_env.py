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
from typing import Dict, List, Mapping, Optional

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
        with open(os.path.join(proc, "self/mountinfo")) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 4 and fields[4] == "/":
                    return False
        return True  # no mount at our "/": we sit below a mount point, i.e. chrooted
    except (OSError, IOError):
        return False


_ENV_LINE = re.compile(r"^\s*Environment\s*=\s*(.*)$")
_ENVFILE_LINE = re.compile(r"^\s*EnvironmentFile\s*=\s*-?(.*)$")


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


def _unit_files(root: str) -> List[str]:
    found = []  # type: List[str]
    for unit_dir in UNIT_DIRS:
        base = root + unit_dir
        for pattern in UNIT_GLOBS:
            found.extend(sorted(glob.glob(os.path.join(base, pattern))))
            found.extend(sorted(glob.glob(os.path.join(base, pattern + ".d", "*.conf"))))
        # drop-ins for every service ("service.d") apply to Podman's units too
        found.extend(sorted(glob.glob(os.path.join(base, "service.d", "*.conf"))))
    return found


def disable_idmap_env(root: str = "", environ: Optional[Mapping[str, str]] = None) -> Dict[str, object]:
    """{"set": bool, "where": [files or "process environment"]} for _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes."""
    where = []  # type: List[str]
    env = os.environ if environ is None else environ
    if env.get(DISABLE_VAR) == DISABLE_VALUE:
        where.append("process environment")
    for path in ENV_FILES:
        if _env_file_sets(root + path):
            where.append(path)
    for unit in _unit_files(root):
        text = _read(unit)
        if text is None:
            continue
        for line in text.splitlines():
            m = _ENV_LINE.match(line)
            if m:
                try:
                    words = shlex.split(m.group(1))
                except ValueError:
                    words = m.group(1).split()
                if _assignments(words).get(DISABLE_VAR) == DISABLE_VALUE:
                    where.append(unit[len(root):] if root else unit)
            m = _ENVFILE_LINE.match(line)
            if m and m.group(1).strip():
                env_file = m.group(1).strip()
                if _env_file_sets(root + env_file) and env_file not in where:
                    where.append(env_file)
    unique = []  # type: List[str]
    for item in where:
        if item not in unique:
            unique.append(item)
    return {"set": bool(unique), "where": unique}
