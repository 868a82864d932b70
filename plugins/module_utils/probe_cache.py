# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers/storage's cached overlay probe results in the runroot: read them, clear one.

The overlay driver probes the kernel once and caches each answer as an empty (or one-line)
file `<runroot>/overlay/<feature>-true` or `<feature>-false` until the runroot is cleared
(normally at boot: it is on /run). Every later Podman process believes the cache instead of
probing again. A negative answer recorded once by a probe that failed for a passing reason (a
full filesystem, a transient error), or written by hand, therefore keeps the host copying
layers until the next boot. This is the one place that reads or removes those files.

Markers seen on the lab (Podman 4.3.1: c/storage 1.43; 5.4.2: 1.57; 5.8.6: 1.62):
  overlay-{true,false}             native overlay works on graphroot (false: c/storage falls back
                                   to fuse-overlayfs when installed, which copies for every
                                   non-contiguous map, or the overlay driver fails)
  idmapped-lower-dir-{true,false}  overlay on idmapped lower layers (false: SupportsShifting is
                                   false for every map: every container with a map gets a copy);
                                   written lazily, at the first container with a map (not 4.3.1)
  metacopy(<mountopt>)-*, native-diff(<mountopt>)-*, volatile-*, dataonly-layers-*
                                   performance and composefs features: no effect on sharing
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import errno
import os
import re
import stat
from typing import Any, Dict, List, Optional

# Features whose negative answer makes c/storage copy image layers for ID-mapped containers.
SHARING_FEATURES = ("overlay", "idmapped-lower-dir")
_MARKER_RE = re.compile(r"^(?P<feature>[A-Za-z][A-Za-z0-9_.:,=()-]*?)-(?P<value>true|false)$")
_TEXT_LIMIT = 4096


class ProbeCacheError(RuntimeError):
    """A marker could not be read or removed (the message names the file and what was done;
    ``removed`` and ``absent`` list the markers handled before it)."""

    def __init__(self, message: str, removed: Optional[List[str]] = None, absent: Optional[List[str]] = None) -> None:
        super().__init__(message)
        self.removed = list(removed or [])
        self.absent = list(absent or [])


def argument_spec() -> Dict[str, Any]:
    """The probe_cache module's argument spec, defined once."""
    return dict(
        runroot=dict(type="path", required=True),
        clear=dict(type="list", elements="str", required=True, choices=list(SHARING_FEATURES)),
    )


def cache_dir(runroot: str, driver: str = "overlay") -> str:
    """Where the driver keeps its cache: `<runroot>/<basename of the driver's home>`."""
    return os.path.join(runroot, driver or "overlay")


def _read_text(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return ""
    try:
        return os.read(fd, _TEXT_LIMIT).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)


def read_probe_cache(runroot: Optional[str], driver: str = "overlay") -> Dict[str, Any]:
    """The cached answers, as the `podman.probe_cache` facts.

    {"dir": path, "present": bool, "markers": {feature: bool}, "files": {feature: path},
     "texts": {feature: text}, "negative_sharing": [feature, ...]}. Only regular files count
    (c/storage writes nothing else there). A feature with both answers present is reported as
    c/storage reads it: the `-true` file wins.
    """
    result = {"dir": None, "present": False, "markers": {}, "files": {}, "texts": {},
              "negative_sharing": []}  # type: Dict[str, Any]
    if not runroot or (driver and driver != "overlay"):
        return result
    directory = cache_dir(runroot, driver)
    result["dir"] = directory
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return result
    result["present"] = True
    for name in names:
        match = _MARKER_RE.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        feature, value = match.group("feature"), match.group("value") == "true"
        if feature in result["markers"] and result["markers"][feature]:
            continue  # c/storage checks `-true` first
        result["markers"][feature] = value
        result["files"][feature] = path
        text = _read_text(path)
        if text:
            result["texts"][feature] = text
        else:
            result["texts"].pop(feature, None)
    result["negative_sharing"] = [f for f in SHARING_FEATURES if result["markers"].get(f) is False]
    return result


def negative_marker_path(runroot: str, feature: str, driver: str = "overlay") -> str:
    if feature not in SHARING_FEATURES:
        raise ProbeCacheError("%r is not a cached probe that decides sharing (one of %s)"
                              % (feature, ", ".join(SHARING_FEATURES)))
    return os.path.join(cache_dir(runroot, driver), "%s-false" % feature)


def clear_negative_marker(runroot: str, feature: str, check_mode: bool = False,
                          driver: str = "overlay") -> Dict[str, Any]:
    """Remove `<feature>-false` so the next Podman process probes again; idempotent.

    Only that one regular file is ever removed (never a directory, a symlink's target, or a
    positive answer). Returns {"path", "existed", "removed", "text"}; `removed` is what was done
    or, in check mode, would be done.
    """
    path = negative_marker_path(runroot, feature, driver)
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return {"path": path, "existed": False, "removed": False, "text": ""}
        raise ProbeCacheError("cannot look at %s: %s (nothing was changed)" % (path, exc))
    if not stat.S_ISREG(st.st_mode):
        raise ProbeCacheError("%s is not a regular file (mode %o): containers/storage never writes that; "
                              "nothing was changed" % (path, st.st_mode))
    text = _read_text(path)
    if not check_mode:
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # gone meanwhile (a reboot, another run): nothing done
                return {"path": path, "existed": False, "removed": False, "text": text}
            raise ProbeCacheError("cannot remove %s: %s (nothing was changed)" % (path, exc))
    return {"path": path, "existed": True, "removed": True, "text": text}


def run(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """The probe_cache module: clear each negative marker of ``params["clear"]``; the result
    has ``changed``, ``removed``, ``absent`` and ``diff``. ProbeCacheError (with what was
    removed before it) on failure."""
    removed, absent, before = [], [], []  # type: List[str], List[str], List[str]
    try:
        for feature in params["clear"]:
            result = clear_negative_marker(params["runroot"], feature, check_mode=check_mode)
            if result["removed"]:
                removed.append(result["path"])
                before.append("%s%s\n" % (result["path"], (": " + result["text"]) if result["text"] else ""))
            else:
                absent.append(result["path"])
    except ProbeCacheError as exc:
        done = "check mode, nothing was changed" if check_mode else (
            "removed before that: %s" % (", ".join(removed) or "nothing"))
        raise ProbeCacheError("%s (%s)" % (exc, done), removed=[] if check_mode else removed, absent=absent)
    diff = {"before_header": "cached probe answers", "after_header": "cached probe answers",
            "before": "".join(before), "after": ""}
    return dict(changed=bool(removed), removed=removed, absent=absent, diff=diff)
