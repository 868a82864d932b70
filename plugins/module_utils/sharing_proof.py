# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The correctness proof: containers that share layers through idmapped mounts still work.

Run where the verdict is `shares`, after the cost canary. It imports an image built from the
host's own programs (proof_image.py), STARTS a short container with the non-contiguous map,
commits it, starts a container of the committed image, and checks from inside (the container's
own `stat`, exec, copy-up) and from outside (the container's upper directory and the committed
layer, read on the host):

  start       the container starts at all (an idmapped mount that fails at mount time is a
              hard error, with no fallback to copying)
  ownership   files owned by 0, by a mapped id of a later extent and by an unmapped id show as
              0, that id and the overflow id inside; files the container writes land on disk
              with the mapped host ids
  file_caps   a file with a v3 security.capability is readable, executable and can be copied
              up inside (container-libs #1126: EOVERFLOW through an idmapped mount)
  commit      `podman commit` gives an image whose files keep their owners and whose copied-up
              capability is still usable, and a container of it starts (container-libs #914,
              PR #734, #1126)

Every object is named like the canary's (canary.object_name), so a killed run's leftovers are
removed by the next canary, and every path out of here goes through the cleanup.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import shutil
import signal
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils import canary
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import Extent, parse_idmap
from ansible_collections.idmapguard.storage.plugins.module_utils.proof_image import (
    ProofImageError,
    find_toolbox,
    parse_capability,
    write_proof_tar,
)

CHECKS = ("start", "ownership", "file_caps", "commit")
MARKER = "idmapguard-proof-started"
ID_LIMIT = 0xFFFFFFFE
# strerror(EOVERFLOW) as the container's coreutils or BusyBox print it
EOVERFLOW_TEXT = "Value too large"

REFERENCES = {
    "start": "containers/storage PR #2346 (idmapped mounts for any map): an idmapped mount that fails when the "
             "container starts is a hard error, there is no fallback to a copy",
    "ownership": "containers/storage PR #2346; kernel idmapped mounts (unmapped ids show as the overflow id)",
    "file_caps": "container-libs #1126 (a v3 security.capability read through an idmapped mount gives EOVERFLOW)",
    "commit": "container-libs #914 (podman commit with a user namespace and idmapped mounts), PR #734 (committed "
              "layers with wrong owners), #1126 (the committed capability keeps a host rootid)",
}
WORKAROUNDS = {
    "start": "keep this host copying (leave mount_program or _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes in place) "
             "until the kernel or Podman is fixed, and prune mapped copies regularly",
    "ownership": "keep this host copying until Podman is fixed; prune mapped copies regularly",
    "file_caps": "upgrade to a Podman with container-libs PR #1126 (being backported to the 5.8 line), or keep "
                 "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes for the containers that run setcap binaries",
    "commit": "set _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes for podman commit and builds (the upstream workaround of "
              "#914), or upgrade to a Podman with container-libs PR #1126",
}

# `t NAME CMD...`: one line per step, `step NAME ok` or `step NAME fail <what it printed>`
_STEP = 't() { n=$1; shift; if o=$("$@" 2>&1 >/dev/null); then echo "step $n ok"; else echo "step $n fail $o"; fi; }'


class ProofError(RuntimeError):
    """The proof could not be set up (no image could be built); nothing was left behind."""


def host_id(extents: Sequence[Extent], container_id: int) -> Optional[int]:
    for start, host, size in extents:
        if start <= container_id < start + size:
            return host + container_id - start
    return None


def choose_ids(extents: Sequence[Extent]) -> Dict[str, int]:
    """The ids the proof's files are owned by: a mapped id outside the extent of 0 (an identity
    extent when there is one), an id no extent maps, and the rootid of the capability: a
    non-root container id whose host id differs (the host id leaking into a committed layer is
    what #1126 is about)."""
    later = [e for e in extents if not e[0] <= 0 < e[0] + e[2]]
    identity = [e for e in later if e[0] == e[1]]
    if identity or later:
        mapped = (identity or later)[0][0]
    else:
        first = extents[0]
        mapped = first[0] + 1 if first[2] > 1 else first[0]
    unmapped = next(end for end in sorted([e[0] + e[2] for e in extents] + [1])
                    if end < ID_LIMIT and host_id(extents, end) is None)
    rootid = mapped
    for start, host, size in extents:
        for candidate in (start + 1 if size > 1 else None, start):
            if candidate and candidate < start + size and host_id(extents, candidate) != candidate:
                rootid = candidate
                break
        if rootid != mapped:
            break
    return {"mapped": mapped, "unmapped": unmapped, "cap_rootid": rootid}


def overflow_ids(proc: str = "/proc") -> Tuple[int, int]:
    values = []
    for name in ("overflowuid", "overflowgid"):
        try:
            with open(os.path.join(proc, "sys", "kernel", name)) as handle:
                values.append(int(handle.read().strip()))
        except (IOError, OSError, ValueError):
            values.append(65534)
    return values[0], values[1]


def parse_output(text: str) -> Dict[str, Any]:
    """The script's lines: started, `owner PATH U:G`, `step NAME ok|fail ...`."""
    result = {"started": False, "owners": {}, "steps": {}}  # type: Dict[str, Any]
    for line in text.splitlines():
        if line.strip() == MARKER:
            result["started"] = True
        elif line.startswith("owner "):
            parts = line.split()
            if len(parts) == 3:
                result["owners"][parts[1]] = parts[2]
        elif line.startswith("step "):
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                result["steps"][parts[1]] = "ok" if parts[2] == "ok" else (parts[3] if len(parts) > 3 else "failed")
    return result


def _first_script(mapped: int) -> str:
    return "; ".join([
        _STEP, "echo " + MARKER,
        "stat -c 'owner %n %u:%g' /proof/owned-root /proof/owned-mapped /proof/owned-unmapped",
        "t cap_read cat /proof/cap/true", "t cap_exec /proof/cap/true", "t cap_copy_up touch /proof/cap/true",
        "t write_root touch /proof/new-root", "t write_mapped touch /proof/new-mapped",
        "t chown_mapped chown %d:%d /proof/new-mapped" % (mapped, mapped),
    ])


def _second_script() -> str:
    return "; ".join([
        _STEP, "echo " + MARKER,
        "stat -c 'owner %n %u:%g' /proof/new-root /proof/new-mapped /proof/owned-mapped",
        "t cap_exec /proof/cap/true", "t cap_copy_up touch /proof/cap/true",
    ])


def _check(ok: Optional[bool], message: str, evidence: Dict[str, Any], name: str,
           problems: Optional[List[Dict[str, str]]] = None) -> Dict[str, Any]:
    """A check's entry. `problems` name each thing that went wrong by kind, so the known-issue
    table (known_issues.py) can tell whether a failure is exactly the symptoms of a known bug."""
    entry = {"ok": ok, "message": message, "evidence": evidence, "reference": REFERENCES[name],
             "problems": list(problems or [])}
    if ok is False:
        entry["workaround"] = WORKAROUNDS[name]
        if not entry["problems"]:
            entry["problems"] = [{"kind": name, "text": message}]
    return entry


def _problems(kind: str, texts: Sequence[str]) -> List[Dict[str, str]]:
    return [{"kind": kind, "text": text} for text in texts]


def _disk_owner(path: str) -> Optional[str]:
    try:
        st = os.lstat(path)
    except OSError as exc:
        return "missing (%s)" % exc.strerror
    return "%d:%d" % (st.st_uid, st.st_gid)


def _disk_cap(path: str) -> Dict[str, Any]:
    try:
        return parse_capability(os.getxattr(path, "security.capability", follow_symlinks=False))
    except OSError as exc:
        return {"revision": None, "rootid": None, "error": exc.strerror}


def _expected(extents: Sequence[Extent], container_id: int, overflow: int) -> int:
    return container_id if host_id(extents, container_id) is not None else overflow


def judge(ids: Dict[str, int], uid_ext: Sequence[Extent], gid_ext: Sequence[Extent], overflow: Tuple[int, int],
          first: Dict[str, Any], second: Optional[Dict[str, Any]], outside: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The four checks from what the two containers printed and what the host saw (pure)."""
    mapped = ids["mapped"]

    def inside(cid: int) -> str:
        return "%d:%d" % (_expected(uid_ext, cid, overflow[0]), _expected(gid_ext, cid, overflow[1]))

    def on_host(cid: int) -> str:
        return "%s:%s" % (host_id(uid_ext, cid), host_id(gid_ext, cid))

    checks = {}  # type: Dict[str, Dict[str, Any]]
    started = first["rc"] == 0 and first["parsed"]["started"]
    checks["start"] = _check(started, "the container started with the map" if started else
                             "the container did not start with the map (rc=%d): %s" % (first["rc"], first["error"]),
                             {"rc": first["rc"], "stderr": first["error"]}, "start")
    if not started:
        for name in CHECKS[1:]:
            checks[name] = _check(None, "not run: the container did not start", {}, name)
        return checks

    want_inside = {"/proof/owned-root": inside(0), "/proof/owned-mapped": inside(mapped),
                   "/proof/owned-unmapped": "%d:%d" % overflow}
    want_disk = {"proof/new-root": on_host(0), "proof/new-mapped": on_host(mapped)}
    seen_inside = {path: first["parsed"]["owners"].get(path) for path in want_inside}
    seen_disk = outside.get("upper_owners", {})
    writes = {k: first["parsed"]["steps"].get(k) for k in ("write_root", "write_mapped", "chown_mapped")}
    bad = ["%s is %s inside, expected %s" % (p, seen_inside[p], w) for p, w in want_inside.items() if seen_inside[p] != w]
    bad += ["container wrote %s: %s" % (k, v) for k, v in writes.items() if v != "ok"]
    bad += ["%s is %s on disk, expected %s" % (p, seen_disk.get(p), w) for p, w in want_disk.items()
            if seen_disk.get(p) != w]
    evidence = {"inside": seen_inside, "expected_inside": want_inside, "on_disk": seen_disk,
                "expected_on_disk": want_disk}  # type: Dict[str, Any]
    message = "; ".join(bad) or "owners are right inside (unmapped shows as %d:%d) and on disk" % overflow
    checks["ownership"] = _check(not bad, message, evidence, "ownership")

    caps = {k: first["parsed"]["steps"].get(k) for k in ("cap_read", "cap_exec", "cap_copy_up")}
    bad = ["%s: %s" % (k, v) for k, v in caps.items() if v != "ok"]
    checks["file_caps"] = _check(not bad, "; ".join(bad) or "the v3 capability file reads, runs and copies up inside",
                                 {"steps": caps, "image_capability": outside.get("image_cap"),
                                  "copied_up_capability": outside.get("upper_cap")}, "file_caps")

    evidence = {"commit_rc": outside.get("commit_rc"), "commit_error": outside.get("commit_error")}
    if outside.get("commit_rc") != 0:
        message = "podman commit failed: %s" % outside.get("commit_error")
        checks["commit"] = _check(False, message, evidence, "commit", _problems("commit_failed", [message]))
        return checks
    want_layer = {"proof/new-root": "0:0", "proof/new-mapped": "%d:%d" % (mapped, mapped)}
    want_second = {"/proof/new-root": inside(0), "/proof/new-mapped": inside(mapped),
                   "/proof/owned-mapped": inside(mapped)}
    layer = outside.get("committed_owners", {})
    problems = _problems("commit_layer_owner", [
        "committed layer has %s as %s, expected %s" % (p, layer.get(p), w) for p, w in want_layer.items()
        if layer.get(p) != w])
    cap = outside.get("committed_cap") or {}
    rootid = ids["cap_rootid"]
    want_cap = {"revision": 2, "rootid": 0} if rootid == 0 else {"revision": 3, "rootid": rootid}
    if {"revision": cap.get("revision"), "rootid": cap.get("rootid")} != want_cap:
        problems += _problems("commit_capability", [
            "committed layer's capability is %s, expected %s (a host id left in the layer: #1126)"
            % ({k: cap.get(k) for k in ("revision", "rootid")}, want_cap)])
    second = second or {"rc": -1, "parsed": parse_output(""), "error": "not run"}
    evidence.update({"committed_owners": layer, "committed_capability": cap, "second_rc": second["rc"]})
    if not second["parsed"]["started"]:
        problems += _problems("commit_start", ["a container of the committed image did not start (rc=%d): %s"
                                               % (second["rc"], second["error"])])
    else:
        seen = {p: second["parsed"]["owners"].get(p) for p in want_second}
        evidence["inside"] = seen
        problems += _problems("commit_owner_inside", [
            "%s is %s inside the committed image's container, expected %s" % (p, seen[p], w)
            for p, w in want_second.items() if seen[p] != w])
        steps = {k: second["parsed"]["steps"].get(k) for k in ("cap_exec", "cap_copy_up")}
        evidence["steps"] = steps
        for step, outcome in steps.items():
            if outcome != "ok":
                # EOVERFLOW (a capability rootid the mount cannot map) is #1126's signature; any
                # other error using the file is something else
                kind = "commit_capability_eoverflow" if EOVERFLOW_TEXT in str(outcome) else "commit_capability_use"
                problems += _problems(kind, ["committed capability file %s: %s" % (step, outcome)])
    bad = [problem["text"] for problem in problems]
    checks["commit"] = _check(not bad, "; ".join(bad) or "the committed image keeps owners and capability, and its "
                              "container starts", evidence, "commit", problems)
    return checks


def _run(run: canary.Runner, podman: str, args: List[str]) -> Tuple[int, str, str]:
    return canary.podman_call(run, podman, args, [])


def _inspect(run: canary.Runner, podman: str, kind: List[str], name: str) -> Optional[str]:
    rc, out, _err = _run(run, podman, kind + ["inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name])
    path = out.strip()
    return path if rc == 0 and path and path != "<no value>" else None


def run_proof(run: canary.Runner, uidmap: str, gidmap: str, podman: str = "podman",
              tmpdir: Optional[str] = None, proc: str = "/proc") -> Dict[str, Any]:
    """Run the proof; return the `proof` facts. ProofError when the image cannot be built."""
    uid_ext, gid_ext = parse_idmap(uidmap), parse_idmap(gidmap)
    ids = choose_ids(uid_ext)
    overflow = overflow_ids(proc)
    try:
        tools = find_toolbox()
    except ProofImageError as exc:
        raise ProofError(str(exc))
    leftovers = canary.remove_leftovers(run, podman, [], tmpdir, proc)
    owner = canary.run_owner()
    image = "localhost/%s:latest" % canary.object_name(owner)
    committed = "localhost/%s:latest" % canary.object_name(owner)
    first_name, second_name = canary.object_name(owner), canary.object_name(owner)
    workdir = tempfile.mkdtemp(prefix=canary.object_name(owner) + "-", dir=tmpdir)
    maps = []  # type: List[str]
    for extent in uidmap.split(","):
        maps += ["--uidmap", extent]
    for extent in gidmap.split(","):
        maps += ["--gidmap", extent]
    common = ["--network", "none", "--pull", "never"] + maps
    first = {"rc": -1, "parsed": parse_output(""), "error": "not run"}  # type: Dict[str, Any]
    second = None  # type: Optional[Dict[str, Any]]
    outside = {}  # type: Dict[str, Any]
    failure = None  # type: Optional[str]
    cleanup_errors = []  # type: List[str]
    previous = {sig: signal.signal(sig, canary.raise_interrupted) for sig in canary.INTERRUPT_SIGNALS}
    try:
        tar_path = os.path.join(workdir, "rootfs.tar")
        try:
            copied = write_proof_tar(tar_path, tools, ids["mapped"], ids["unmapped"], ids["cap_rootid"])
        except (ProofImageError, OSError) as exc:
            raise ProofError("cannot build the proof image from the host's programs: %s" % exc)
        outside["image_files"] = copied
        rc, _out, err = _run(run, podman, ["import", "--quiet", tar_path, image])
        if rc != 0:
            raise ProofError("podman import of the proof image failed (rc=%d): %s" % (rc, err.strip()[-300:]))
        layer = _inspect(run, podman, ["image"], image)
        outside["image_cap"] = _disk_cap(os.path.join(layer, "proof/cap/true")) if layer else None
        script = _first_script(ids["mapped"])
        rc, out, err = _run(run, podman, ["run", "--name", first_name] + common + [image, "/bin/sh", "-c", script])
        first = {"rc": rc, "parsed": parse_output(out), "error": err.strip()[-400:]}
        if first["parsed"]["started"]:
            upper = _inspect(run, podman, [], first_name)
            if upper:
                outside["upper_owners"] = {rel: _disk_owner(os.path.join(upper, rel))
                                           for rel in ("proof/new-root", "proof/new-mapped")}
                outside["upper_cap"] = _disk_cap(os.path.join(upper, "proof/cap/true"))
            rc, _out, err = _run(run, podman, ["commit", "--quiet", first_name, committed])
            outside["commit_rc"], outside["commit_error"] = rc, err.strip()[-400:]
            if rc == 0:
                layer = _inspect(run, podman, ["image"], committed)
                if layer:
                    outside["committed_owners"] = {rel: _disk_owner(os.path.join(layer, rel))
                                                   for rel in ("proof/new-root", "proof/new-mapped")}
                    outside["committed_cap"] = _disk_cap(os.path.join(layer, "proof/cap/true"))
                argv = ["run", "--name", second_name] + common + [committed, "/bin/sh", "-c", _second_script()]
                rc, out, err = _run(run, podman, argv)
                second = {"rc": rc, "parsed": parse_output(out), "error": err.strip()[-400:]}
    except canary.Interrupted as exc:
        failure = "interrupted by %s" % exc
    finally:
        for sig in canary.INTERRUPT_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        for name in (second_name, first_name):
            rc, _out, err = _run(run, podman, ["rm", "--force", "--ignore", name])
            if rc != 0:
                cleanup_errors.append("podman rm %s: %s" % (name, err.strip()[:200]))
        for name in (committed, image):
            rc, _out, _err = _run(run, podman, ["image", "exists", name])
            if rc == 0:
                rc, _out, err = _run(run, podman, ["rmi", "--force", name])
                if rc != 0:
                    cleanup_errors.append("podman rmi %s: %s" % (name, err.strip()[:200]))
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure is not None:
        raise ProofError("proof %s (cleaned up: %s)" % (failure, not cleanup_errors))
    checks = judge(ids, uid_ext, gid_ext, overflow, first, second, outside)
    failed = [name for name in CHECKS if checks[name]["ok"] is not True]
    return {
        "ran": True,
        "uidmap": uidmap,
        "gidmap": gidmap,
        "ids": ids,
        "image_files": outside.get("image_files", []),
        "checks": checks,
        "failed_checks": failed,
        "cleanup_errors": cleanup_errors,
        "leftovers_removed": leftovers,
    }
