# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The idmap_support module's backend: gather a host's facts once, run the verdict rules.

Produces `ansible_facts.idmapguard` exactly as docs/dev/contracts.md describes it. Every
domain failure is raised as SupportError so the module turns it into fail_json in one place.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import copy
import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils import host_env
from ansible_collections.idmapguard.storage.plugins.module_utils import known_issues
from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner
from ansible_collections.idmapguard.storage.plugins.module_utils.copy_cache_guard.guard_state import (
    DEFAULT_STATE_FILE, read_status,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.helper_probe import (
    DEFAULT_HELPER,
    HelperMissingError,
    ProbeError,
    helper_identity,
    probe_args,
    probe_directory,
    probe_output,
    run_probe,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import (
    DEFAULT_GIDMAP,
    DEFAULT_UIDMAP,
    IDMapError,
    is_contiguous,
    parse_idmap,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    StorageConfError,
    StorageSettings,
    find_storage_conf,
    podman_version,
    reads_dropins,
    setting_origins,
    storage_conf_files,
    storage_settings,
    unit_storage_conf,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.probe_cache import read_probe_cache
from ansible_collections.idmapguard.storage.plugins.module_utils.store.census import read_marker
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.mountinfo import filesystem_type
from ansible_collections.idmapguard.storage.plugins.module_utils.store.usage import fs_usage
from ansible_collections.idmapguard.storage.plugins.module_utils.store_view import mapped_copies
from ansible_collections.idmapguard.storage.plugins.module_utils.verdict import HostFacts, evaluate, probe_conclusive


# idmap_support's options (SupportParams' fields), defined once: the idmap_support module's argument
# spec, and what podman_upgrade gathers with after a package change (its `verify` option)
ARGUMENT_SPEC = dict(
    helper=dict(type="path", default=DEFAULT_HELPER),
    helper_missing=dict(type="str", default="fail", choices=["fail", "report"]),
    uidmap=dict(type="str", default=DEFAULT_UIDMAP),
    gidmap=dict(type="str", default=DEFAULT_GIDMAP),
    canary=dict(type="bool", default=False),
    proof=dict(type="bool", default=False),
    disable_idmap_reason=dict(type="str"),
    proof_accept=dict(type="list", elements="str", default=[], choices=["start", "ownership", "file_caps", "commit"]),
    proof_strict=dict(type="bool", default=False),
    proof_disable_idmap=dict(type="bool", default=False),
    podman_backport=dict(type="bool", default=False),
    podman=dict(type="str", default="podman"),
    podman_args=dict(type="list", elements="str", default=[]),
    storage_conf=dict(type="path"),
    units=dict(type="list", elements="str", default=[]),
)  # type: Dict[str, Dict[str, Any]]


class SupportError(RuntimeError):
    """Anything that stops idmap_support from producing facts (message says what to do)."""


@dataclass
class SupportParams:
    helper: str
    uidmap: str
    gidmap: str
    canary: bool = False
    # the correctness proof (sharing_proof.py), where the verdict is `shares`
    proof: bool = False
    # checks whose failure is reported but does not fail the proof (a known upstream bug the
    # operator accepts for this fleet)
    proof_accept: List[str] = field(default_factory=list)
    # every check must hold: a failure the known-issue table predicts fails the proof too
    proof_strict: bool = False
    # the proof also where only _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes stands in the way (DISABLE_CASE),
    # when `proof` is off: whether the variable is needed, learnt in the same call as the facts
    proof_disable_idmap: bool = False
    # the operator's word that _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes is set on purpose, and why
    disable_idmap_reason: Optional[str] = None
    podman_backport: bool = False
    podman: str = "podman"
    podman_args: List[str] = field(default_factory=list)
    storage_conf: Optional[str] = None
    # units that start Podman, looked at besides Podman's own units and the quadlets
    # (podman_host.unit_storage_conf): an operator's unit that runs Podman
    units: List[str] = field(default_factory=list)
    # "fail": a missing helper fails (the facts need its probe). "report": the facts fall back
    # to release-number rules and `helper.present` says it is missing, for a caller (the
    # rollout) that installs the helper next and then asks again.
    helper_missing: str = "fail"
    # the copy-cache guard's state file (copy_cache_guard.guard_state), reported as fact "guard"
    guard_state_file: str = DEFAULT_STATE_FILE


@dataclass
class SupportResult:
    facts: Dict[str, Any]
    changed: bool
    warnings: List[str]
    # what is installed at params.helper (helper_probe.helper_identity); not a host fact
    helper: Dict[str, Any] = field(default_factory=dict)


def _podman_runner(run: Runner, params: SupportParams) -> Runner:
    """Insert the global podman arguments after the binary."""

    def podman_run(argv: List[str]) -> Tuple[int, str, str]:
        if argv and argv[0] == params.podman and argv[1:2] != ["--version"]:
            argv = [argv[0]] + list(params.podman_args) + list(argv[1:])
        return run(argv)

    return podman_run


def _storage(run: Runner, params: SupportParams, warnings: List[str]) -> StorageSettings:
    try:
        settings = storage_settings(run, params.storage_conf, params.podman)
    except StorageConfError as exc:
        raise SupportError("podman info failed and storage.conf cannot be read: %s" % exc)
    if settings.podman_error is not None:
        warnings.append("podman info failed, storage settings read from storage.conf instead: %s"
                        % settings.podman_error)
    return settings


SHARES_CASE = "verdict shares"
DISABLE_CASE = ("only _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes stands in the way, and this module's Podman runs "
                "without it")


# Reasons only the helper's probe can rule out: without it, the release numbers are a guess.
PROBE_ONLY_CODES = ("kernel_no_mount_api", "kernel_no_idmap", "kernel_no_overlay_idmap", "fs_no_idmap")


def _proof_case(verdict: Any, disable: Mapping[str, Any], probed: bool = True) -> Optional[str]:
    """Why the proof runs here (None: it does not). Where the verdict is `shares`; and where the
    only obstacle is _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes in units or files (not in this process's
    environment), since this module's Podman does not see it: the proof then tells whether the
    variable is needed (a check fails without it) before configure removes it. Without a probe
    (not PROBED: the helper is missing), reasons the probe alone settles do not count against
    that: so the proof is there when a helper installed next overturns the guess (with_probe)."""
    if verdict.verdict == "shares":
        return SHARES_CASE
    codes = [code for code in verdict.reason_codes if probed or code not in PROBE_ONLY_CODES]
    if codes == ["disable_idmap_env"] and "process environment" not in (disable.get("where") or []):
        return DISABLE_CASE
    return None


def _proof_asked(params: SupportParams, case: Optional[str]) -> bool:
    return params.proof or (params.proof_disable_idmap and case == DISABLE_CASE)


def judge_failures(proof: Dict[str, Any], accept: List[str], strict: bool, version: Optional[str]) -> None:
    """Sort the proof's failed checks (in place): accepted by the operator (`proof_accept`), a known
    upstream bug on this Podman (`known_issues`, unless `strict`), or real. `passed` is true when
    no real failure is left; `outcome` says which: passed, known_issue or failed."""
    accepted = [name for name in proof["failed_checks"] if name in accept]
    known = known_issues.classify(proof["checks"], version)
    known_failures = [name for name in proof["failed_checks"] if name in known and name not in accepted]
    for name, issues in known.items():
        proof["checks"][name]["known_issues"] = issues
    real = [name for name in proof["failed_checks"]
            if name not in accepted and (strict or name not in known_failures)]
    proof["accepted_failures"] = accepted
    proof["known_issues"] = {name: known[name] for name in known_failures}
    proof["strict"] = strict
    proof["passed"] = not real
    proof["outcome"] = "failed" if real else ("known_issue" if known_failures else "passed")
    ids = sorted({issue["id"] for name in known_failures for issue in known[name]})
    proof["summary"] = "%s%s%s" % (
        {"failed": "FAILED", "known_issue": "passed with known upstream issues", "passed": "passed"}[proof["outcome"]],
        " (failed: %s)" % ", ".join(proof["failed_checks"]) if proof["failed_checks"] else "",
        " (known: %s)" % ", ".join(ids) if ids else "")


def _failure_line(name: str, proof: Dict[str, Any]) -> str:
    check = proof["checks"][name]
    issues = check.get("known_issues") or []
    if name in proof["accepted_failures"]:
        how = " (accepted by proof_accept)"
    elif issues and not proof["strict"]:
        how = " (known upstream issue %s, fixed in %s)" % (
            ", ".join(i["id"] for i in issues), "; ".join(i["fixed_in"] or "no release yet" for i in issues))
    elif issues:
        how = " (known upstream issue %s; proof_strict makes it fail)" % ", ".join(i["id"] for i in issues)
    else:
        how = ""
    return "proof check %s failed%s: %s (%s; workaround: %s)" % (
        name, how, check["message"], check["reference"], check.get("workaround", "none known"))


def _proof(run: Runner, params: SupportParams, case: Optional[str], verdict: str, check_mode: bool,
           warnings: List[str], version: Optional[str]) -> Optional[Dict[str, Any]]:
    """The `proof` facts: None when not asked for; {ran: false, ...} when it did not run."""
    if not _proof_asked(params, case):
        return None
    # imported where the proof is asked for: the module is compiled from source on every call, and
    # a converged host's call has no use for it
    from ansible_collections.idmapguard.storage.plugins.module_utils.sharing_proof import (  # pylint: disable=import-outside-toplevel
        CHECKS, ProofError, run_proof,
    )
    unknown = sorted(set(params.proof_accept) - set(CHECKS))
    if unknown:
        raise SupportError("proof_accept names unknown checks %s (known: %s)" % (", ".join(unknown), ", ".join(CHECKS)))
    if check_mode:
        warnings.append("the correctness proof would run (%s) but is skipped in check mode: it starts and commits "
                        "containers" % case if case else
                        "the correctness proof would not run: verdict %s, not shares" % verdict)
        return {"ran": False, "passed": None, "outcome": None, "would_run": case is not None, "checks": {},
                "failed_checks": [], "known_issues": {}, "skipped": "check mode"}
    if case is None:
        return {"ran": False, "passed": None, "outcome": None, "would_run": False, "checks": {}, "failed_checks": [],
                "known_issues": {},
                "skipped": "verdict %s: nothing shares layers here, so there is nothing to prove" % verdict}
    try:
        proof = run_proof(run, params.uidmap, params.gidmap, podman=params.podman)
    except ProofError as exc:
        raise SupportError("the correctness proof could not run: %s" % exc)
    proof["why"] = case
    proof["podman_version"] = version
    judge_failures(proof, params.proof_accept, params.proof_strict, version)
    warnings.extend(_failure_line(name, proof) for name in proof["failed_checks"])
    return proof


def _kept_because(params: SupportParams, disable: Dict[str, Any], proof: Optional[Dict[str, Any]]) -> Optional[str]:
    """Why _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes is deliberate, if it is set and it is."""
    if not disable.get("set"):
        return None
    if params.disable_idmap_reason:
        return params.disable_idmap_reason
    if proof and proof.get("ran") and proof.get("why") == DISABLE_CASE:
        # a known upstream bug counts here: the variable is its upstream workaround (#914, #1126),
        # so removing it would break what the operator set it for; proof_accept says otherwise
        failed = [n for n in proof["failed_checks"] if n not in proof.get("accepted_failures", [])]
        if failed:
            return "the correctness proof fails without it: %s" % "; ".join(
                "%s (%s)" % (n, proof["checks"][n]["reference"]) for n in failed)
    return None


def _kernel_facts(verdict: Any, release: Optional[str], probe: Optional[Dict[str, Any]],
                  probe_error: str) -> Dict[str, Any]:
    return {
        "release": release,
        "idmapped_mount": bool(verdict.idmapped_mount),
        "overlay_idmapped_lower": bool(verdict.overlay_idmapped_lower),
        "probe": probe if probe is not None else {"error": probe_error},
    }


def gather(params: SupportParams, run: Runner, check_mode: bool, kernel_release: Optional[str] = None) -> SupportResult:
    warnings = []  # type: List[str]
    try:
        uid_extents = parse_idmap(params.uidmap)
        gid_extents = parse_idmap(params.gidmap)
    except IDMapError as exc:
        raise SupportError("invalid map: %s" % exc)
    if is_contiguous(uid_extents) and is_contiguous(gid_extents):
        warnings.append("uidmap and gidmap are contiguous: the probe and canary then say nothing about "
                        "non-contiguous maps, which are the ones that get copied")
    prun = _podman_runner(run, params)
    settings = _storage(prun, params, warnings)
    version = settings.podman_version or podman_version(prun, params.podman)

    directory = probe_directory(settings.graphroot)
    probe = None  # type: Optional[Dict[str, Any]]
    probe_error = ""
    try:
        probe = run_probe(run, params.helper, directory, params.uidmap, params.gidmap)
    except HelperMissingError as exc:
        if params.helper_missing != "report":
            raise SupportError(str(exc))
        # no warning: the caller asked to be told, and installs the helper before it trusts a verdict
        probe_error = str(exc)
    except ProbeError as exc:
        # The probe needs a free inode on graphroot's filesystem for its scratch directory;
        # at 0 free inodes (the state this collection repairs) it cannot run. The verdict then
        # falls back to release-number rules and says so in its reasons.
        warnings.append("the helper probe could not run, kernel and filesystem support are guessed from the "
                        "release number: %s" % exc)
        probe_error = str(exc)
    if probe is not None and not probe_conclusive(probe):
        warnings.append("the helper probe could not set up its test on %s (%s): kernel and filesystem support "
                        "are guessed from the release number" % (directory, probe["checks"].get("idmapped_mount")))
    release = (probe or {}).get("kernel") or kernel_release or os.uname().release
    fs_type = (probe or {}).get("fs_type") or filesystem_type(directory)

    try:
        usage = fs_usage(directory)
        copies = mapped_copies(settings)
    except StoreError as exc:
        raise SupportError("cannot read the store at %s: %s" % (settings.graphroot, exc))

    # c/storage's own cached probe answers, read before the canary (whose Podman may probe anew)
    cache = read_probe_cache(settings.runroot, settings.driver or "overlay")
    # and its decision to keep a mount program: with this marker "true" it takes fuse-overlayfs
    # from PATH although none is configured (podman info then shows no graph option for it)
    marker_path, marker = read_marker(settings.graphroot)
    fuse_in_path = shutil.which("fuse-overlayfs")
    disable = host_env.disable_idmap_env()
    max_userns = host_env.max_user_namespaces()
    chrooted = host_env.is_chrooted()
    # the storage.conf files this module's Podman reads, and those Podman started by each unit reads
    conf_files = storage_conf_files(version, {"CONTAINERS_STORAGE_CONF": params.storage_conf}
                                    if params.storage_conf else None,
                                    set_by={"source": "module option storage_conf"} if params.storage_conf else None)
    units = unit_storage_conf(version, conf_files, params.units)

    canary = None  # type: Optional[Dict[str, Any]]
    changed = False
    if params.canary and check_mode:
        warnings.append("canary skipped in check mode: it creates and removes an image and a container")
    elif params.canary:
        # imported where the canary is asked for (as the proof, in _proof)
        from ansible_collections.idmapguard.storage.plugins.module_utils.canary import (  # pylint: disable=import-outside-toplevel
            CanaryError, run_canary,
        )
        changed = True  # it created and removed an image and a container, even if it then failed
        try:
            canary = run_canary(prun, settings, params.uidmap, params.gidmap, podman=params.podman)
        except (CanaryError, StoreError) as exc:
            raise SupportError(str(exc))
        if not canary["store_restored"]:
            warnings.append("the canary did not leave the store exactly as it found it: %s" % canary)

    host_facts = HostFacts(
        kernel_release=release,
        probe=probe,
        fs_type=fs_type,
        podman_version=version,
        podman_backport=params.podman_backport,
        driver=settings.driver or "overlay",
        mount_program=settings.mount_program,
        disable_idmap_env=bool(disable["set"]),
        disable_idmap_where=list(disable["where"]),  # type: ignore[arg-type]
        max_user_namespaces=max_userns,
        chrooted=chrooted,
        supports_shifting=settings.supports_shifting,
        canary_new_mapped_layers=canary["new_mapped_layers"] if canary else None,
        canary_new_mapped_layer_inodes=canary["new_mapped_layer_inodes"] if canary else None,
        probe_cache=dict(cache["markers"]) if cache["present"] else None,
        probe_cache_files=dict(cache["files"]),
        additional_image_stores=list(settings.additional_image_stores),
        mount_program_marker=marker,
        mount_program_marker_path=marker_path,
        implicit_mount_program=fuse_in_path,
        unit_storage_conf=[u for u in units if not u["same_files"]],
    )
    verdict = evaluate(host_facts)
    cache["stale"] = list(verdict.stale_probe_cache)  # what configure clears (probe_cache module)
    proof = _proof(prun, params, _proof_case(verdict, disable, probe is not None), verdict.verdict, check_mode,
                   warnings, version)
    changed = changed or bool(proof and proof.get("ran"))
    kept = _kept_because(params, disable, proof)
    if kept:
        verdict = evaluate(dataclasses.replace(host_facts, disable_idmap_kept=kept))
        cache["stale"] = list(verdict.stale_probe_cache)
    disable = dict(disable, kept=kept)
    facts = {
        "verdict": verdict.verdict,
        "reasons": verdict.reasons,
        "reason_codes": verdict.reason_codes,
        "remedy": verdict.remedy,
        "shares_noncontiguous": verdict.shares_noncontiguous,
        "kernel": _kernel_facts(verdict, release, probe, probe_error),
        "graphroot": dict(
            path=settings.graphroot,
            fs_type=fs_type,
            mapped_copies=copies["count"],
            mapped_copy_inodes=copies["inodes"],
            **usage
        ),
        # Where the store is, whole: what the remediate role, the mapped_layers module and the
        # guard's configuration take as it is (store/location.py).
        "store_location": settings.location().as_dict(),
        "podman": {
            "version": version,
            "driver": settings.driver or "overlay",
            "mount_program": settings.mount_program,
            "graph_options": settings.graph_options,
            "runroot": settings.runroot,
            "imagestore": settings.imagestore,
            "storage_conf": settings.config_file or find_storage_conf(params.storage_conf),
            "source": settings.source,
            "origins": dict(settings.origins),
            # every storage.conf file this Podman reads, in order, and which one sets each setting
            "storage_conf_files": conf_files,
            "reads_dropins": reads_dropins(version),
            "setting_files": setting_origins(conf_files),
            # per unit that starts Podman: the files that Podman reads and where they differ
            "unit_storage_conf": units,
            "supports_shifting": settings.supports_shifting,
            "graph_status": dict(settings.graph_status),
            "probe_cache": cache,
            "additional_image_stores": list(settings.additional_image_stores),
            "mount_program_marker": {"path": marker_path, "content": marker, "fuse_overlayfs": fuse_in_path},
            "userns_available": bool((max_userns is None or max_userns > 0) and not chrooted),
            "max_user_namespaces": max_userns,
            "chrooted": chrooted,
            "disable_idmap_env": disable,
            "backport_declared": params.podman_backport,
        },
        "canary": canary,
        "proof": proof,
        "guard": read_status(params.guard_state_file),
        "systemd": host_env.systemd_booted(),
    }
    # with the probe's arguments, so that a caller that installs the helper next can probe with it there
    # and have the verdict made again from these facts (with_probe) instead of gathering them again
    helper = dict(helper_identity(run, params.helper), probe_args=probe_args(directory, params.uidmap, params.gidmap))
    return SupportResult(facts=facts, changed=changed, warnings=warnings, helper=helper)


def host_facts_of(facts: Mapping[str, Any]) -> HostFacts:
    """The HostFacts that `gather` judged to make FACTS (before a proof's `disable_idmap_kept`)."""
    kernel, graphroot, podman = facts.get("kernel") or {}, facts.get("graphroot") or {}, facts.get("podman") or {}
    probe = kernel.get("probe")
    cache = podman.get("probe_cache") or {}
    disable = podman.get("disable_idmap_env") or {}
    marker = podman.get("mount_program_marker") or {}
    canary = facts.get("canary") or {}
    return HostFacts(
        kernel_release=kernel.get("release"),
        probe=probe if isinstance(probe, Mapping) and "checks" in probe else None,
        fs_type=graphroot.get("fs_type"),
        podman_version=podman.get("version"),
        podman_backport=bool(podman.get("backport_declared")),
        driver=podman.get("driver") or "overlay",
        mount_program=podman.get("mount_program"),
        disable_idmap_env=bool(disable.get("set")),
        disable_idmap_where=list(disable.get("where") or []),
        max_user_namespaces=podman.get("max_user_namespaces"),
        chrooted=bool(podman.get("chrooted")),
        supports_shifting=podman.get("supports_shifting"),
        canary_new_mapped_layers=canary.get("new_mapped_layers") if canary else None,
        canary_new_mapped_layer_inodes=canary.get("new_mapped_layer_inodes") if canary else None,
        probe_cache=dict(cache.get("markers") or {}) if cache.get("present") else None,
        probe_cache_files=dict(cache.get("files") or {}),
        additional_image_stores=list(podman.get("additional_image_stores") or []),
        mount_program_marker=marker.get("content"),
        mount_program_marker_path=marker.get("path"),
        implicit_mount_program=marker.get("fuse_overlayfs"),
        unit_storage_conf=[u for u in podman.get("unit_storage_conf") or [] if not u.get("same_files")],
    )


def with_probe(facts: Mapping[str, Any], argv: List[str], rc: int, out: str, err: str) -> Optional[Dict[str, Any]]:
    """FACTS (gathered while the helper was missing) as `gather` makes them with the helper installed since:
    the helper's probe (ARGV, run elsewhere with exit status RC and output OUT, ERR: the helper role's, with
    the arguments `gather` returned) replaces the release-number guess and the verdict rules judge again.
    Nothing else the facts hold depends on the helper. None where that is not so: a proof was asked for
    whose case (`_proof_case`) the new verdict changes (one that ran for another case, or did not run where
    it now would); then only gathering again tells."""
    try:
        probe = probe_output(argv, rc, out, err)  # type: Optional[Dict[str, Any]]
        probe_error = ""
    except ProbeError as exc:
        probe, probe_error = None, str(exc)
    old = host_facts_of(facts)
    kernel = facts.get("kernel") or {}
    host_facts = dataclasses.replace(
        old, probe=probe, kernel_release=(probe or {}).get("kernel") or kernel.get("release"),
        fs_type=(probe or {}).get("fs_type") or old.fs_type)
    verdict = evaluate(host_facts)
    podman = facts.get("podman") or {}
    disable = podman.get("disable_idmap_env") or {}
    proof = facts.get("proof")
    case = _proof_case(verdict, disable)
    # a proof asked for: it ran for the case the new verdict has, or it did not run and would not
    # now either (no case, e.g. `proof: true` on a host that is to be configured); else gather again
    if proof is not None and not (proof.get("why") == case if proof.get("ran")
                                  else case is None and not proof.get("would_run")):
        return None
    if disable.get("kept"):
        # the operator's word, or the proof of the same case: kept as it was
        verdict = evaluate(dataclasses.replace(host_facts, disable_idmap_kept=disable["kept"]))
    new = copy.deepcopy(dict(facts))
    new.update(verdict=verdict.verdict, reasons=verdict.reasons, reason_codes=verdict.reason_codes,
               remedy=verdict.remedy, shares_noncontiguous=verdict.shares_noncontiguous,
               kernel=_kernel_facts(verdict, host_facts.kernel_release, probe, probe_error))
    new["graphroot"] = dict(new.get("graphroot") or {}, fs_type=host_facts.fs_type)
    new["podman"] = dict(podman, probe_cache=dict(podman.get("probe_cache") or {}, stale=list(verdict.stale_probe_cache)))
    return new
