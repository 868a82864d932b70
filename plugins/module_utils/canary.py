# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live canary: does this host's Podman copy the image layer for a non-contiguous map?

Version tables can be wrong (distribution backports, patched builds); the canary asks the
running stack. It imports a tiny image made here from a few files (no registry needed),
creates -- never starts -- a container with the non-contiguous map (a create alone makes the
copy in affected versions), counts the store's mapped copies before and after, and removes the
container and the image; removing the image removes any copy. Every path out, including
failures, goes through the cleanup. The store's JSON (minus timestamps) and the inode count of
its filesystem are compared before and after, and reported.

A SIGKILL skips every cleanup, so every object a canary (or the correctness proof, which uses
the same names) makes is named after its run's process: `idmapguard-canary-<pid>-<start time>-
<token>`, the start time being the process's in clock ticks since boot (/proc/PID/stat), so a
reused pid does not pass for the dead process. Each run first removes the leftovers whose
process is gone -- containers, images (their mapped copies go with them) and work directories
-- and never those of a canary still running.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import glob
import io
import json
import os
import re
import shutil
import signal
import tarfile
import tempfile
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import StorageSettings
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage
from ansible_collections.idmapguard.storage.plugins.module_utils.store_view import json_snapshot, mapped_copies

NAME_PREFIX = "idmapguard-canary-"
CANARY_FILES = 8
# idmapguard-canary-<pid>-<start time>-<token>, also inside image references and work dirs
_OWNER_RE = re.compile(re.escape(NAME_PREFIX) + r"(\d+)-(\d+)-[0-9a-z]+")


class CanaryError(RuntimeError):
    """The canary could not run to a conclusion (the store was cleaned up anyway)."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP/SIGINT while the objects of a canary (or a proof) exist: unwind through
    the cleanup."""


def raise_interrupted(signum: int, _frame: Any) -> None:
    """The signal handler a canary or proof installs for INTERRUPT_SIGNALS while its objects exist."""
    raise Interrupted("signal %d" % signum)


# A task timeout or a cancelled run sends one of these.
INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def process_start_time(pid: int, proc: str = "/proc") -> Optional[str]:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            stat = handle.read()
    except (IOError, OSError):
        return None
    # the command name (field 2) may hold spaces and parentheses: count from the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def run_owner() -> str:
    """`<pid>-<start time>` of this process: what names this run's objects."""
    pid = os.getpid()
    return "%d-%s" % (pid, process_start_time(pid) or "0")


def object_name(owner: Optional[str] = None) -> str:
    """A unique name for one object of this run (container, image, work directory)."""
    return "%s%s-%s" % (NAME_PREFIX, owner or run_owner(), uuid.uuid4().hex[:8])


def owner_alive(name: str, proc: str = "/proc") -> Optional[bool]:
    """Whether the process named in NAME still runs; None when NAME is not a canary object."""
    match = _OWNER_RE.search(name)
    if not match:
        return None
    return process_start_time(int(match.group(1)), proc) == match.group(2)


def _names(run: Runner, podman: str, gargs: List[str], args: List[str]) -> List[str]:
    rc, out, _err = podman_call(run, podman, args + ["--format", "json"], gargs)
    if rc != 0:
        return []
    try:
        records = json.loads(out or "[]") or []
    except ValueError:
        return []
    names = []  # type: List[str]
    for record in records if isinstance(records, list) else []:
        for name in record.get("Names") or []:
            names.append(name)
    return names


def remove_leftovers(run: Runner, podman: str = "podman", global_args: Optional[List[str]] = None,
                     tmpdir: Optional[str] = None, proc: str = "/proc") -> List[str]:
    """Remove the containers, images and work directories of canary runs whose process is gone.

    Objects of a live run (pid alive with the same start time) are left alone, so concurrent
    canaries do not remove each other's. Returns what was removed.
    """
    gargs = list(global_args or [])
    removed = []  # type: List[str]
    for name in _names(run, podman, gargs, ["ps", "--all"]):
        if owner_alive(name, proc) is False:
            rc, _out, _err = podman_call(run, podman, ["rm", "--force", "--ignore", name], gargs)
            if rc == 0:
                removed.append("container " + name)
    for name in _names(run, podman, gargs, ["images"]):
        if owner_alive(name, proc) is False:
            rc, _out, _err = podman_call(run, podman, ["rmi", "--force", name], gargs)
            if rc == 0:
                removed.append("image " + name)
    for path in glob.glob(os.path.join(tmpdir or tempfile.gettempdir(), NAME_PREFIX + "*")):
        if os.path.isdir(path) and owner_alive(os.path.basename(path), proc) is False:
            shutil.rmtree(path, ignore_errors=True)
            removed.append("directory " + path)
    return removed


def write_image_tar(path: str, files: int = CANARY_FILES) -> None:
    """A root filesystem of a few small root-owned files, enough to have a layer to copy."""
    with tarfile.open(path, "w") as tar:
        for name in ("canary", "etc"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for index in range(files):
            data = ("idmapguard canary file %d\n" % index).encode("ascii")
            info = tarfile.TarInfo("canary/file-%02d" % index)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


def podman_call(run: Runner, podman: str, args: List[str], global_args: List[str]) -> Tuple[int, str, str]:
    """`podman <global args> <args>`; (127, "", why) when it cannot be run at all."""
    try:
        return run([podman] + global_args + args)
    except OSError as exc:
        return 127, "", str(exc)


def run_canary(run: Runner, settings: StorageSettings, uidmap: str, gidmap: str, podman: str = "podman",
               global_args: Optional[List[str]] = None, tmpdir: Optional[str] = None) -> Dict[str, Any]:
    """Run the canary; return the `canary` facts. Raises CanaryError when it could not conclude."""
    gargs = list(global_args or [])
    leftovers = remove_leftovers(run, podman, gargs, tmpdir)
    owner = run_owner()
    image = "localhost/%s:latest" % object_name(owner)
    container = object_name(owner)
    before_json = json_snapshot(settings)
    before_copies = mapped_copies(settings)
    before_inodes = fs_usage(settings.graphroot)["inodes_used"]
    workdir = tempfile.mkdtemp(prefix=object_name(owner) + "-", dir=tmpdir)
    failure = None  # type: Optional[str]
    after_create = None  # type: Optional[Dict[str, Any]]
    cleanup_errors = []  # type: List[str]
    # A task timeout or a cancelled run sends SIGTERM; unwind through the cleanup below.
    previous = {sig: signal.signal(sig, raise_interrupted) for sig in INTERRUPT_SIGNALS}
    try:
        tar_path = os.path.join(workdir, "rootfs.tar")
        write_image_tar(tar_path)
        rc, _out, err = podman_call(run, podman, ["import", "--quiet", tar_path, image], gargs)
        if rc != 0:
            failure = "podman import failed (rc=%d): %s" % (rc, err.strip()[:300])
        else:
            rc, _out, err = podman_call(run, podman, ["create", "--name", container, "--uidmap", uidmap,
                                                      "--gidmap", gidmap, image, "/canary/none"], gargs)
            if rc != 0:
                failure = "podman create with --uidmap %s --gidmap %s failed (rc=%d): %s" % (
                    uidmap, gidmap, rc, err.strip()[:300])
            else:
                after_create = mapped_copies(settings)
    except Interrupted as exc:
        failure = "interrupted by %s" % exc
    finally:
        # Remove whatever may exist, whichever step failed; a failed create can leave a copy
        # behind, which goes with the image. A second signal must not cut the cleanup short.
        for sig in INTERRUPT_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        rc, _out, err = podman_call(run, podman, ["rm", "--force", "--ignore", container], gargs)
        if rc != 0:
            cleanup_errors.append("podman rm %s: %s" % (container, err.strip()[:200]))
        rc, _out, err = podman_call(run, podman, ["image", "exists", image], gargs)
        if rc == 0:
            rc, _out, err = podman_call(run, podman, ["rmi", "--force", image], gargs)
            if rc != 0:
                cleanup_errors.append("podman rmi %s: %s" % (image, err.strip()[:200]))
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    after_copies = mapped_copies(settings)
    after_json = json_snapshot(settings)
    after_inodes = fs_usage(settings.graphroot)["inodes_used"]
    # Podman creates a few lock files the first time a store holds an image; on a store that
    # never did, inodes_delta is then positive once and store_restored false (truthfully).
    restored = (after_json == before_json and after_copies["layers"] == before_copies["layers"]
                and after_inodes == before_inodes and not cleanup_errors)
    result = {
        "ran": failure is None,
        "image": image,
        "container": container,
        "uidmap": uidmap,
        "gidmap": gidmap,
        "new_mapped_layers": (after_create["count"] - before_copies["count"]) if after_create else None,
        "new_mapped_layer_inodes": (after_create["inodes"] - before_copies["inodes"]) if after_create else None,
        "inodes_delta": after_inodes - before_inodes,
        "store_restored": restored,
        "cleanup_errors": cleanup_errors,
        "leftovers_removed": leftovers,
        "error": failure,
    }  # type: Dict[str, Any]
    if failure is not None:
        raise CanaryError("canary failed: %s (store restored: %s)" % (failure, restored))
    return result
