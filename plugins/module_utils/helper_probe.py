# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the native helper's `probe` on the filesystem holding graphroot and parse its JSON.

Only the compiled helper (native/, installed by the `helper` role) can tell whether an
idmapped mount with a non-contiguous map, and overlay on top of it, work on this kernel and
filesystem: Python has no open_tree/mount_setattr, and release numbers lie (RHEL backports).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import stat
from typing import Any, Dict, List

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner, run_json
from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import sha256_file


# Where roles/helper installs it (idmapguard_helper_dest).
DEFAULT_HELPER = "/usr/local/libexec/idmapguard/idmapped-mount"
CHECKS = ("mount_api", "idmapped_mount", "overlay_idmapped_lower")


class HelperMissingError(RuntimeError):
    """The helper binary is not on the host."""


class ProbeError(RuntimeError):
    """The helper ran but could not probe, or printed something that is not its JSON."""


def probe_directory(graphroot: str) -> str:
    """The directory to probe: graphroot, or its nearest existing parent (same filesystem
    as the store Podman will create there)."""
    path = os.path.abspath(graphroot)
    while not os.path.isdir(path) and path != "/":
        path = os.path.dirname(path)
    return path


def probe_args(directory: str, uidmap: str, gidmap: str) -> List[str]:
    """The helper's arguments for a probe of DIRECTORY with these maps (after the binary)."""
    return ["probe", "--uidmap", uidmap, "--gidmap", gidmap, directory]


def run_probe(run: Runner, helper: str, directory: str, uidmap: str, gidmap: str) -> Dict[str, Any]:
    """`helper probe --uidmap U --gidmap G DIR` as a dict with the three checks present."""
    if not os.path.isfile(helper) or not os.access(helper, os.X_OK):
        raise HelperMissingError(
            "the idmapped-mount helper is not installed at %s: deploy it with the idmapguard.storage.helper "
            "role (or set helper: to where it is)" % helper)
    return read_probe(run, [helper] + probe_args(directory, uidmap, gidmap))


def read_probe(run: Runner, argv: List[str]) -> Dict[str, Any]:
    """The probe's JSON with the three checks present, or ProbeError."""
    data = run_json(run, argv, ProbeError)
    if not isinstance(data.get("checks"), dict):
        raise ProbeError("%s printed JSON without 'checks'" % " ".join(argv))
    for name in CHECKS:
        check = data["checks"].get(name)
        if not isinstance(check, dict) or "ok" not in check:
            raise ProbeError("%s printed no '%s' check" % (" ".join(argv), name))
    return data


def probe_output(argv: List[str], rc: int, out: str, err: str) -> Dict[str, Any]:
    """The same as `read_probe`, for a probe another task ran (the helper role's, right after it installed
    the helper): its argv, exit status and output."""
    return read_probe(lambda _argv: (rc, out, err), [str(a) for a in argv])


def helper_identity(run: Runner, helper: str) -> Dict[str, Any]:
    """What is installed at `helper`, so that a caller (the rollout) can tell a converged helper
    from one to (re)install without a second look at the host: present, sha256, owner and mode
    of the file and of its directory, `--version` (which also proves it runs), and the host's
    architecture (which binary it needs)."""
    identity = {
        "path": helper,
        "present": False,
        "sha256": None,
        "version": None,
        "runs": False,
        "uid": None,
        "gid": None,
        "mode": None,
        "dir_uid": None,
        "dir_gid": None,
        "dir_mode": None,
        "architecture": os.uname().machine,
    }  # type: Dict[str, Any]
    try:
        parent = os.stat(os.path.dirname(helper) or "/")
        if stat.S_ISDIR(parent.st_mode):
            identity.update(dir_uid=parent.st_uid, dir_gid=parent.st_gid,
                            dir_mode="%04o" % stat.S_IMODE(parent.st_mode))
        info = os.stat(helper)
    except OSError:
        return identity
    if not stat.S_ISREG(info.st_mode):
        return identity
    identity.update(present=True, uid=info.st_uid, gid=info.st_gid, mode="%04o" % stat.S_IMODE(info.st_mode))
    try:
        identity["sha256"] = sha256_file(helper)
    except (OSError, IOError):
        return identity
    if os.access(helper, os.X_OK):
        try:
            rc, out, _err = run([helper, "--version"])
        except OSError:
            rc, out = 1, ""
        if rc == 0 and out.strip():
            identity.update(runs=True, version=out.strip())
    return identity
