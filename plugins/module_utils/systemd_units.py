# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of systemd unit files: which files make a unit, and the environment its
service process (Podman, for Podman's units) starts with.

Read from the files, not asked of systemd: lab hosts and containers often have no systemd as
PID 1, and a unit that is installed but not running still decides what Podman reads the next
time it starts. What is modelled (systemd.unit(5), systemd.exec(5)):

- the unit file is the first found in UNIT_DIRS (highest precedence first); a unit file that is
  a symlink to /dev/null is masked (the unit has no files);
- drop-ins `*.conf` from `<unit>.d/`, the template's `<name>@.service.d/`, the dash prefixes'
  `podman-.service.d/` and the type's `service.d/` in every unit directory; of two drop-ins with
  the same file name the one in the higher-precedence place is read; all are applied after the
  unit file, sorted by file name;
- quadlet files (`web.container` -> `web.service`), whose [Service] section goes into the unit
  quadlet generates, and their `<file>.d/*.conf` drop-ins;
- in [Service]: `Environment=` (quoted words, an empty assignment resets the list),
  `EnvironmentFile=` (optional with `-`, wildcards; its variables override `Environment=`, an
  empty assignment resets the list), then `UnsetEnvironment=` (NAME, or NAME=VALUE for that value);
- line continuation with a trailing backslash, comments with `#` or `;`.
Not modelled: the manager's own environment (`DefaultEnvironment=` in system.conf, `PassEnvironment=`),
specifiers other than `%%`, quadlet's `ServiceName=`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import glob
import os
import shlex
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import read_text

# Highest precedence first.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
# Rootful quadlet directories, highest precedence first (quadlet(5)).
QUADLET_DIRS = ("/run/containers/systemd", "/etc/containers/systemd", "/usr/share/containers/systemd")
# Quadlet file type -> suffix of the service it generates (web.volume -> web-volume.service).
QUADLET_SUFFIXES = {".container": "", ".kube": "", ".pod": "-pod", ".volume": "-volume",
                    ".network": "-network", ".image": "-image", ".build": "-build"}

# (line number, section, key, value)
Entry = Tuple[int, str, str, str]


def parse_unit_text(text: str) -> List[Entry]:
    """The assignments of a unit file, with the line each starts on."""
    entries = []  # type: List[Entry]
    section = ""
    pending = None  # type: Optional[Tuple[int, str]]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending is not None:
            if line.startswith(("#", ";")):
                continue  # a comment inside a continuation is skipped, the continuation goes on
            start, joined = pending
            line = joined + " " + line
            number = start
            pending = None
        elif not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = (number, line[:-1].rstrip())
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            entries.append((number, section, key.strip(), value.strip()))
    if pending is not None and "=" in pending[1]:
        key, value = pending[1].split("=", 1)
        entries.append((pending[0], section, key.strip(), value.strip()))
    return entries


def _words(value: str) -> List[str]:
    """systemd's word splitting of Environment= / UnsetEnvironment= (quotes removed)."""
    value = value.replace("%%", "%")
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def env_file_assignments(text: str) -> Dict[str, Tuple[str, int]]:
    """{NAME: (value, line)} of an environment file (KEY=VALUE lines, quotes, # and ; comments;
    a leading `export ` is taken too, as /etc/default files are often written for shells)."""
    found = {}  # type: Dict[str, Tuple[str, int]]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words and "=" in words[0]:
            key, value = words[0].split("=", 1)
            found[key.strip()] = (value, number)
    return found


def _is_masked(path: str) -> bool:
    return os.path.islink(path) and os.readlink(path) == "/dev/null"


def _dropin_dir_names(unit: str) -> List[str]:
    """The drop-in directory names that apply to UNIT, most specific first."""
    base, dot, kind = unit.rpartition(".")
    names = [unit + ".d"]
    if "@" in base:
        names.append(base.split("@", 1)[0] + "@." + kind + ".d")
    parts = base.split("@", 1)[0].split("-")
    for count in range(len(parts) - 1, 0, -1):
        names.append("-".join(parts[:count]) + "-." + kind + ".d")
    if dot:
        names.append(kind + ".d")
    return names


def _dropins(dirs: List[str], root: str) -> List[str]:
    """`*.conf` in DIRS (highest precedence first): one per file name, sorted by file name."""
    by_name = {}  # type: Dict[str, str]
    for directory in dirs:
        for path in sorted(glob.glob(os.path.join(root + directory, "*.conf"))):
            by_name.setdefault(os.path.basename(path), path[len(root):])
    return [by_name[name] for name in sorted(by_name)]


def quadlet_units(root: str = "") -> Dict[str, str]:
    """{generated service name: quadlet file} of the rootful quadlets on the host."""
    found = {}  # type: Dict[str, str]
    for directory in QUADLET_DIRS:
        try:
            names = sorted(os.listdir(root + directory))
        except OSError:
            continue
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext in QUADLET_SUFFIXES and os.path.isfile(os.path.join(root + directory, name)):
                found.setdefault(stem + QUADLET_SUFFIXES[ext] + ".service", os.path.join(directory, name))
    return found


def unit_sources(unit: str, root: str = "", quadlets: Optional[Dict[str, str]] = None) -> List[str]:
    """The files that make UNIT, in the order systemd applies them: the unit file (or the quadlet
    file it is generated from), then its drop-ins. [] when the unit is masked or has no file."""
    main = None  # type: Optional[str]
    for directory in UNIT_DIRS:
        candidates = [unit]
        base, _dot, kind = unit.rpartition(".")
        if "@" in base and not base.endswith("@"):
            candidates.append(base.split("@", 1)[0] + "@." + kind)  # an instance reads its template
        for name in candidates:
            path = os.path.join(root + directory, name)
            if _is_masked(path):
                return []
            if os.path.isfile(path):
                main = path[len(root):]
                break
        if main:
            break
    quadlet_dropins = []  # type: List[str]
    if main is None:
        quadlet = (quadlet_units(root) if quadlets is None else quadlets).get(unit)
        if quadlet:
            main = quadlet
            name = os.path.basename(quadlet)
            quadlet_dropins = _dropins([os.path.join(d, name + ".d") for d in QUADLET_DIRS], root)
    dirs = [os.path.join(d, name) for d in UNIT_DIRS for name in _dropin_dir_names(unit)]
    dropins = _dropins(dirs, root)
    if main is None and not dropins:
        return []
    # drop-ins of a unit whose file is missing are still listed: what they set is what the unit
    # gets once installed, and an operator who wrote them meant Podman to run with it
    return ([main] if main else []) + quadlet_dropins + dropins


def service_environment(sources: List[str], root: str = "") -> Dict[str, Dict[str, Any]]:
    """{NAME: {value, file, line, via[, env_file, env_file_line]}}: the environment the unit's
    service starts with from these files (file and line: the assignment that decided it; via:
    Environment or EnvironmentFile)."""
    assigned = []  # type: List[Tuple[str, str, str, int]]
    env_files = []  # type: List[Tuple[str, str, int]]
    unsets = []  # type: List[str]
    for path in sources:
        text = read_text(root + path)
        if text is None:
            continue
        for number, section, key, value in parse_unit_text(text):
            if section != "Service":
                continue  # a quadlet's [Container] Environment= is the container's, not Podman's
            if key == "Environment":
                if not value:
                    assigned = []
                for word in _words(value):
                    if "=" in word:
                        name, val = word.split("=", 1)
                        assigned.append((name, val, path, number))
            elif key == "EnvironmentFile":
                if not value:
                    env_files = []
                else:
                    env_files.append((value, path, number))
            elif key == "UnsetEnvironment":
                if not value:
                    unsets = []
                unsets.extend(_words(value))
    env = {}  # type: Dict[str, Dict[str, Any]]
    for name, val, path, number in assigned:
        env[name] = {"value": val, "file": path, "line": number, "via": "Environment"}
    for pattern, path, number in env_files:
        pattern = pattern[1:] if pattern.startswith("-") else pattern
        for env_path in sorted(glob.glob(root + pattern)):
            text = read_text(env_path)
            if text is None:
                continue
            for name, (val, env_line) in env_file_assignments(text).items():
                env[name] = {"value": val, "file": path, "line": number, "via": "EnvironmentFile",
                             "env_file": env_path[len(root):], "env_file_line": env_line}
    for word in unsets:
        name, has_value, val = word.partition("=")
        if name in env and (not has_value or env[name]["value"] == val):
            del env[name]
    return env
