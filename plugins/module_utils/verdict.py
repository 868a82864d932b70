# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdict rules: facts about one host in, verdict + every reason + a remedy out.

Pure functions, no I/O, so the whole rule set is table-tested (tests/unit/.../test_verdict.py)
and documented in docs/verdicts.md. Keep the two in step.

Order of verdicts, most fundamental first (the verdict is the first that has a reason; every
reason found is reported):
  unsupported_kernel      the kernel cannot make idmapped mounts, or overlay on idmapped lowers
  unsupported_filesystem  the kernel can, but not on the filesystem holding graphroot
  needs_podman_upgrade    Podman's containers/storage copies layers for non-contiguous maps
  fixable_by_config       all of the above are able; a setting (or a stale cached probe) stands in the way
  copies_unexplained      every rule expects sharing, yet Podman copies (canary) or says it will not
                          shift: the cause is unknown, so no remedy is guessed
  shares                  no obstacle: non-contiguous maps share the image's layers
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

VERDICTS = ("shares", "fixable_by_config", "needs_podman_upgrade", "unsupported_kernel", "unsupported_filesystem",
            "copies_unexplained")
# Most fundamental first: an obstacle higher up makes the remedies below it pointless.
_PRECEDENCE = ("unsupported_kernel", "unsupported_filesystem", "needs_podman_upgrade", "fixable_by_config",
               "copies_unexplained")

# Podman 5.6.0 is the first release vendoring containers/storage 1.59 (PR #2346: idmapped
# mounts for any map with native overlay). Sources in docs/verdicts.md.
FIRST_SHARING_PODMAN = (5, 6, 0)
FIRST_IDMAPPED_MOUNT_KERNEL = (5, 12)
FIRST_OVERLAY_IDMAPPED_LOWER_KERNEL = (5, 19)
# Only used when no probe result exists: upstream kernel versions in which each filesystem
# gained FS_ALLOW_IDMAP. A guess; the helper's probe is authoritative.
FS_IDMAP_SINCE = {
    "ext4": (5, 12), "xfs": (5, 12), "vfat": (5, 12), "msdos": (5, 12), "btrfs": (5, 15),
    "f2fs": (5, 18), "erofs": (6, 2), "overlay": (5, 19), "tmpfs": (6, 3), "squashfs": (6, 3),
    "ceph": (6, 7), "zfs": (6, 0),
}

# reason code -> verdict it leads to
REASON_VERDICT = {
    "kernel_no_mount_api": "unsupported_kernel",
    "kernel_no_idmap": "unsupported_kernel",
    "kernel_no_overlay_idmap": "unsupported_kernel",
    "fs_no_idmap": "unsupported_filesystem",
    "podman_missing": "needs_podman_upgrade",
    "podman_too_old": "needs_podman_upgrade",
    "driver_not_overlay": "fixable_by_config",
    "driver_vfs": "fixable_by_config",
    "probe_cache_stale": "fixable_by_config",
    "probe_cache_unproven": "fixable_by_config",
    "mount_program": "fixable_by_config",
    "mount_program_marker": "fixable_by_config",
    # a unit (podman.service, a quadlet, the operator's) starts Podman with another storage.conf,
    # through CONTAINERS_STORAGE_CONF, whose settings copy: the canary's Podman does not show it
    "unit_storage_conf": "fixable_by_config",
    "disable_idmap_env": "fixable_by_config",
    # set on purpose (declared by the operator, or a proof check fails without it): configure keeps it
    "disable_idmap_deliberate": "fixable_by_config",
    "no_userns": "fixable_by_config",
    "chrooted": "fixable_by_config",
    "canary_copied": "copies_unexplained",
    "podman_no_shifting": "copies_unexplained",
    # Decides no verdict: says how the copies that another reason causes behave.
    "additional_image_store": None,
}

_REMEDY = {
    "unsupported_kernel": "Boot a kernel that supports idmapped mounts and overlay on idmapped lower layers "
                          "(upstream 5.19 or later, or a distribution kernel whose helper probe passes); until "
                          "then keep non-contiguous maps off this host and prune mapped copies regularly.",
    "unsupported_filesystem": "Move graphroot to a filesystem that supports idmapped mounts on this kernel "
                              "(ext4 or xfs), or keep non-contiguous maps off this host and prune mapped copies "
                              "regularly.",
    "needs_podman_upgrade": "Upgrade Podman to 5.6 or later (containers/storage 1.59+), or declare a distribution "
                            "backport with podman_backport=true if the installed build carries it; then prune "
                            "the mapped copies left behind.",
    "fixable_by_config": "Fix the configuration listed in reasons (the idmapguard.storage.configure role does the "
                         "storage.conf part), then prune the mapped copies left behind.",
    "copies_unexplained": "Do not upgrade or reconfigure on this basis: kernel, filesystem, Podman version, "
                          "configuration and containers/storage's cached probes all allow sharing, so the cause "
                          "is not one these rules know; keep the evidence in reasons (with the output of "
                          "`podman --log-level=debug create --uidmap ...`) for a bug report, and prune mapped "
                          "copies regularly meanwhile.",
    "shares": "Nothing to change: this host shares image layers across non-contiguous maps; prune any mapped "
              "copies left from before.",
}


# Remedies of single reasons, put before the verdict's own remedy when they are found.
_CODE_REMEDY = {
    "probe_cache_stale": "Remove the stale cached probe answer(s) %(stale_files)s (the idmapguard.storage.configure "
                         "role removes exactly those files; containers/storage probes again at the next Podman "
                         "command), then prove with the canary that a new non-contiguous map adds no copy",
    "probe_cache_unproven": "Free inodes on graphroot's filesystem (idmapguard.storage.remediate) and verify again: "
                            "once the helper's probe proves support there, configure removes the cached negative "
                            "answer(s) %(unproven_files)s",
    "mount_program_marker": "The marker records that layers were written through a mount program (they may hold "
                            "AUFS-style .wh. whiteouts native overlay misreads): reset the store (podman system "
                            "reset, then pull again), or remove the marker once the store holds no .wh. file and "
                            "no fuse-overlayfs xattr (the scan storage_conf makes with allow_store_change)",
    "driver_vfs": "Switch the storage driver to overlay (images must then be pulled again: the vfs store is not "
                  "read by the overlay driver; storage_conf refuses that change on a store in use unless "
                  "allow_store_change is set)",
}
_WHY_COPY = {
    "overlay": "native overlay does not work on graphroot, so containers/storage falls back to fuse-overlayfs "
               "(which copies for every non-contiguous map) or fails",
    "idmapped-lower-dir": "overlay cannot use idmapped lower layers, so Podman reports Supports shifting: false "
                          "and every container with an ID map gets a chowned copy of the image's top layer",
}


@dataclass
class HostFacts:
    """What the rules need to know about one host (gathered once, by idmap_support)."""

    kernel_release: str
    probe: Optional[Dict[str, Any]] = None          # the helper's probe JSON on graphroot's fs
    fs_type: Optional[str] = None
    podman_version: Optional[str] = None
    podman_backport: bool = False                   # operator declares a distro backport of c/storage#2346
    driver: Optional[str] = "overlay"
    mount_program: Optional[str] = None
    disable_idmap_env: bool = False
    disable_idmap_where: List[str] = field(default_factory=list)
    # why _CONTAINERS_OVERLAY_DISABLE_IDMAP=yes is there on purpose (operator's word, or the
    # correctness proof's checks that fail without it); None: not known to be deliberate
    disable_idmap_kept: Optional[str] = None
    max_user_namespaces: Optional[int] = None
    chrooted: bool = False
    supports_shifting: Optional[bool] = None       # podman info's "Supports shifting" (None: not printed)
    canary_new_mapped_layers: Optional[int] = None  # None: the canary did not run
    canary_new_mapped_layer_inodes: Optional[int] = None
    # containers/storage's cached probe answers in the runroot (probe_cache.read_probe_cache):
    # feature -> answer, and feature -> file; None when the cache could not be read
    probe_cache: Optional[Dict[str, bool]] = None
    probe_cache_files: Dict[str, str] = field(default_factory=dict)
    additional_image_stores: List[str] = field(default_factory=list)
    # graphroot's overlay/.has-mount-program (content, None when absent) and the fuse-overlayfs
    # containers/storage would then take from PATH (None: not found)
    mount_program_marker: Optional[str] = None
    mount_program_marker_path: Optional[str] = None
    implicit_mount_program: Optional[str] = None
    # units that start Podman with storage.conf files other than this process's Podman reads
    # (podman_host.unit_storage_conf, entries whose same_files is false): {unit, storage_conf:
    # null | {path, file, line, via, ...}, copying: {driver?, mount_program?}, setting_files}
    unit_storage_conf: List[Dict[str, Any]] = field(default_factory=list)


@dataclass
class Verdict:
    verdict: str
    reasons: List[str]
    reason_codes: List[str]
    remedy: str
    shares_noncontiguous: bool
    idmapped_mount: Optional[bool]
    overlay_idmapped_lower: Optional[bool]
    # cached negative probe answers (features) that the helper's probe disproves: configure
    # removes exactly these files
    stale_probe_cache: List[str] = field(default_factory=list)


def parse_version(text: Optional[str]) -> Optional[Tuple[int, ...]]:
    """Leading numeric components: "5.6.0-rc1" -> (5, 6, 0); "5.14.0-427.el9.x86_64" -> (5, 14, 0)."""
    if not text:
        return None
    m = re.match(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def _check(probe: Optional[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    if not probe:
        return None
    checks = probe.get("checks") or {}
    check = checks.get(name)
    return check if isinstance(check, dict) else None


# A check failing with these errnos says nothing about the kernel or the filesystem's idmap
# support: the probe could not set up its scratch directory (typically ENOSPC at 0 free inodes,
# the very state this collection repairs), so the probe is inconclusive, not negative.
INCONCLUSIVE_ERRNOS = frozenset(("ENOSPC", "EDQUOT", "EROFS", "ENOMEM", "EMFILE", "ENFILE", "EIO"))


def probe_conclusive(probe: Optional[Dict[str, Any]]) -> bool:
    """The probe ran and none of its checks failed for a reason unrelated to idmap support."""
    if not probe:
        return False
    for name in ("mount_api", "idmapped_mount", "overlay_idmapped_lower"):
        check = _check(probe, name)
        if check is None:
            return False
        if not check.get("ok") and check.get("errno") in INCONCLUSIVE_ERRNOS:
            return False
    return True


def _describe(check: Dict[str, Any]) -> str:
    errno = check.get("errno")
    message = (check.get("message") or "").strip()
    if errno and message:
        return "%s: %s" % (errno, message)
    return errno or message or "failed"


def _kernel_and_fs(facts: HostFacts, out: List[Tuple[str, str]]) -> Tuple[Optional[bool], Optional[bool]]:
    """Kernel and filesystem obstacles; returns (idmapped_mount, overlay_idmapped_lower)."""
    release = facts.kernel_release
    fs = facts.fs_type or (facts.probe or {}).get("fs_type") or "unknown"
    mount_api = _check(facts.probe, "mount_api")
    idm = _check(facts.probe, "idmapped_mount")
    ovl = _check(facts.probe, "overlay_idmapped_lower")
    if mount_api is not None and not mount_api.get("ok") and mount_api.get("errno") not in INCONCLUSIVE_ERRNOS:
        out.append(("kernel_no_mount_api", "kernel %s lacks the new mount API (open_tree/mount_setattr): %s"
                    % (release, _describe(mount_api))))
        return False, False
    if probe_conclusive(facts.probe) and idm is not None:
        # The probe ran: it is authoritative, whatever the release number says (RHEL 8's 4.18
        # and RHEL 9's 5.14 carry backports that a version comparison would get wrong).
        idm_ok = bool(idm.get("ok"))
        ovl_ok = bool(ovl.get("ok")) if ovl is not None else False
        if not idm_ok:
            errno = idm.get("errno")
            if errno in ("ENOSYS",):
                out.append(("kernel_no_idmap", "kernel %s cannot create idmapped mounts: %s"
                            % (release, _describe(idm))))
            else:
                out.append(("fs_no_idmap", "filesystem %s holding graphroot does not support idmapped mounts "
                            "on kernel %s: %s" % (fs, release, _describe(idm))))
        elif not ovl_ok:
            out.append(("kernel_no_overlay_idmap",
                        "kernel %s cannot mount overlay on idmapped lower layers (needs 5.19+ or a backport): %s"
                        % (release, _describe(ovl) if ovl is not None else "not probed")))
        return idm_ok, (ovl_ok if idm_ok else False)
    # No conclusive probe: guess from the release number and say it is a guess.
    ver = parse_version(release) or (0,)
    guessed = " (guessed from the release number: the helper probe %s; distribution kernels carry backports)" % (
        "could not set up its test (%s)" % _describe(idm) if idm is not None else "did not run")
    if ver < FIRST_IDMAPPED_MOUNT_KERNEL:
        out.append(("kernel_no_idmap", "kernel %s predates idmapped mounts (5.12)%s" % (release, guessed)))
        return False, False
    since = FS_IDMAP_SINCE.get(fs)
    if since is None or ver < since:
        out.append(("fs_no_idmap", "filesystem %s is not known to support idmapped mounts on kernel %s%s"
                    % (fs, release, guessed)))
        return False, False
    if ver < FIRST_OVERLAY_IDMAPPED_LOWER_KERNEL:
        out.append(("kernel_no_overlay_idmap", "kernel %s predates overlay on idmapped lower layers (5.19)%s"
                    % (release, guessed)))
        return True, False
    return True, True


def _podman(facts: HostFacts, out: List[Tuple[str, str]]) -> None:
    if facts.canary_new_mapped_layers is not None and facts.canary_new_mapped_layers == 0:
        return  # the live canary shared the layer: whatever the version says, this build shares
    ver = parse_version(facts.podman_version)
    if ver is None:
        out.append(("podman_missing", "Podman's version could not be determined (is Podman installed?)"))
    elif ver < FIRST_SHARING_PODMAN and not facts.podman_backport:
        out.append(("podman_too_old",
                    "Podman %s vendors containers/storage older than 1.59, which stores a chowned copy of the "
                    "image's top layer for every non-contiguous map" % facts.podman_version))
    elif ver < FIRST_SHARING_PODMAN and facts.canary_new_mapped_layers:
        out.append(("podman_too_old",
                    "Podman %s is older than 5.6 and declared to carry a backport (podman_backport), but the live "
                    "canary's non-contiguous map was copied: the declaration does not hold" % facts.podman_version))


def _config(facts: HostFacts, out: List[Tuple[str, str]]) -> None:
    if facts.driver == "vfs":
        out.append(("driver_vfs", "storage driver is vfs: it stores a full copy of the image for every container, "
                    "with or without an ID map; only native overlay shares layers"))
    elif facts.driver and facts.driver != "overlay":
        out.append(("driver_not_overlay", "storage driver is %s, not overlay: only native overlay shares layers "
                    "through idmapped mounts" % facts.driver))
    if facts.mount_program:
        out.append(("mount_program", "mount_program %s is set: containers/storage then copies layers for every "
                    "non-contiguous map; remove it to use native overlay" % facts.mount_program))
    if (facts.driver in (None, "", "overlay") and not facts.mount_program and facts.mount_program_marker == "true"
            and facts.implicit_mount_program):
        out.append(("mount_program_marker", "%s says true, so containers/storage uses %s from PATH although no "
                    "mount_program is configured (podman info shows no option for it, only Native Overlay Diff: "
                    "false), and copies layers for every non-contiguous map"
                    % (facts.mount_program_marker_path or "overlay/.has-mount-program", facts.implicit_mount_program)))
    _units(facts, out)
    if facts.disable_idmap_env:
        where = ", ".join(facts.disable_idmap_where) or "the environment"
        if facts.disable_idmap_kept:
            out.append(("disable_idmap_deliberate", "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes is set for Podman in %s "
                        "on purpose (%s): configure keeps it, so this host keeps copying layers for non-contiguous "
                        "maps" % (where, facts.disable_idmap_kept)))
        else:
            out.append(("disable_idmap_env", "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes is set for Podman in %s: "
                        "it turns idmapped mounts off; remove it" % where))
    shifting = " (Podman then reports Supports shifting: false and copies even contiguous maps)"
    if facts.max_user_namespaces is not None and facts.max_user_namespaces <= 0:
        out.append(("no_userns", "user.max_user_namespaces is %d: Podman cannot create the user namespace an "
                    "idmapped mount needs%s; set it above 0" % (facts.max_user_namespaces, shifting)))
    if facts.chrooted:
        out.append(("chrooted", "Podman runs under a plain chroot, where no user namespace can be created%s; "
                    "run it in a mount namespace with pivot_root (a container) or on the host" % shifting))


def _place(origin: Dict[str, Any]) -> str:
    return "%s line %s" % (origin.get("file"), origin.get("line"))


def _units(facts: HostFacts, out: List[Tuple[str, str]]) -> None:
    """A unit whose Podman reads other storage.conf files, which set a mount program or another
    driver: Podman started by that unit copies, whatever this process's Podman (and canary) does."""
    for unit in facts.unit_storage_conf:
        copying = unit.get("copying") or {}
        if not copying:
            continue
        conf = unit.get("storage_conf") or None
        files = unit.get("setting_files") or {}
        how = "without CONTAINERS_STORAGE_CONF"
        if conf:
            how = "with CONTAINERS_STORAGE_CONF=%s (%s %s%s)" % (
                conf["path"], conf.get("via", "Environment"), _place(conf),
                " from %s line %s" % (conf["env_file"], conf.get("env_file_line")) if conf.get("env_file") else "")
        what = ", ".join("%s %s (%s)" % (key, copying[key], _place(files.get(key) or {})) for key in sorted(copying))
        out.append(("unit_storage_conf", "%s starts Podman %s, so that Podman reads other storage.conf files than "
                    "the one judged here, and they set %s: Podman started by %s copies layers for every "
                    "non-contiguous map; remove it there (or drop the variable from the unit)"
                    % (unit.get("unit"), how, what, unit.get("unit"))))


def _cache_file(facts: HostFacts, feature: str) -> str:
    return facts.probe_cache_files.get(feature) or "%s-false" % feature


def _probe_cache(facts: HostFacts, idm_ok: Optional[bool], ovl_ok: Optional[bool],
                 out: List[Tuple[str, str]]) -> Tuple[List[str], List[str]]:
    """containers/storage's cached negative answers; returns (stale, unproven) features.

    The helper's probe on graphroot's filesystem is the judge: it mounts overlay on an idmapped
    lower layer with the map, which is what both cached probes test (and more). Where it passes,
    a negative cache is stale; where it fails, the kernel/filesystem reason already stands and
    the cache agrees (said in that reason); where it could not run, nothing is proven.
    """
    if facts.driver not in (None, "", "overlay") or not facts.probe_cache:
        return [], []
    negative = [f for f in ("overlay", "idmapped-lower-dir") if facts.probe_cache.get(f) is False]
    if not negative:
        return [], []
    conclusive = probe_conclusive(facts.probe) and _check(facts.probe, "overlay_idmapped_lower") is not None
    fs = facts.fs_type or (facts.probe or {}).get("fs_type") or "unknown"
    if conclusive and idm_ok and ovl_ok:
        for feature in negative:
            out.append(("probe_cache_stale", "containers/storage cached a negative probe answer in %s: %s; but the "
                        "helper's probe on graphroot's filesystem (%s, kernel %s) just mounted overlay on an "
                        "idmapped lower layer with the map, so the cached answer is stale (left by a probe that "
                        "failed once, e.g. at 0 free inodes, or written by hand) and holds until it is removed "
                        "or the host reboots"
                        % (_cache_file(facts, feature), _WHY_COPY[feature], fs, facts.kernel_release)))
        return negative, []
    if conclusive:
        # the probe confirms it: say so in the kernel/filesystem reason, leave the file alone
        for index, (code, text) in enumerate(out):
            if REASON_VERDICT.get(code) in ("unsupported_kernel", "unsupported_filesystem"):
                out[index] = (code, "%s (containers/storage's own cached probe agrees: %s)"
                              % (text, ", ".join(_cache_file(facts, f) for f in negative)))
                break
        return [], []
    for feature in negative:
        out.append(("probe_cache_unproven", "containers/storage cached a negative probe answer in %s: %s; the "
                    "helper's probe could not run to a conclusion on graphroot's filesystem, so whether the "
                    "answer is stale is not proven and it is left in place"
                    % (_cache_file(facts, feature), _WHY_COPY[feature])))
    return [], negative


def _unexplained(facts: HostFacts, out: List[Tuple[str, str]]) -> None:
    """Podman copies, or says it will not shift, while every rule expects sharing."""
    evidence = "kernel %s, filesystem %s, Podman %s, driver %s, cached probes %s" % (
        facts.kernel_release, facts.fs_type or (facts.probe or {}).get("fs_type") or "unknown",
        facts.podman_version, facts.driver or "overlay",
        ", ".join("%s=%s" % (k, str(v).lower()) for k, v in sorted((facts.probe_cache or {}).items())) or "none")
    if facts.canary_new_mapped_layers:
        out.append(("canary_copied", "the live canary's non-contiguous map added %d mapped copy(ies)%s although "
                    "no rule explains it (%s; Podman reports Supports shifting: %s): the cause is unexplained"
                    % (facts.canary_new_mapped_layers,
                       " (%d inodes)" % facts.canary_new_mapped_layer_inodes
                       if facts.canary_new_mapped_layer_inodes is not None else "",
                       evidence, "unknown" if facts.supports_shifting is None else str(facts.supports_shifting).lower())))
    elif facts.supports_shifting is False and facts.canary_new_mapped_layers is None:
        out.append(("podman_no_shifting", "Podman reports Supports shifting: false, so containers with an ID map "
                    "get copies, although no rule explains it (%s): the cause is unexplained" % evidence))


def _copies(codes: List[str], facts: HostFacts) -> bool:
    """Some reason found makes this host copy layers for ID-mapped containers."""
    return bool(codes) or bool(facts.canary_new_mapped_layers)


def _remedy(verdict: str, codes: List[str], stale_files: str, unproven_files: str) -> str:
    if verdict != "fixable_by_config":
        return _REMEDY[verdict]
    parts = [_CODE_REMEDY[c] % {"stale_files": stale_files, "unproven_files": unproven_files}
             for c in dict.fromkeys(codes) if c in _CODE_REMEDY]
    if not parts or any(REASON_VERDICT.get(c) == "fixable_by_config" and c not in _CODE_REMEDY for c in codes):
        parts.append(_REMEDY[verdict].rstrip("."))
    return ". ".join(parts) + "."


def evaluate(facts: HostFacts) -> Verdict:
    """Apply every rule; the verdict is the most fundamental obstacle found."""
    found = []  # type: List[Tuple[str, str]]
    idm_ok, ovl_ok = _kernel_and_fs(facts, found)
    _podman(facts, found)
    _config(facts, found)
    stale, unproven = _probe_cache(facts, idm_ok, ovl_ok, found)
    if not found:
        _unexplained(facts, found)
    if facts.additional_image_stores and _copies([c for c, _t in found], facts):
        found.append(("additional_image_store", "images in the read-only additional image store(s) %s get a copy "
                      "per container, not per map, where this host copies: those copies are not mapped-layers "
                      "entries (not counted or pruned by this collection) and are freed only with their container"
                      % ", ".join(facts.additional_image_stores)))
    codes = [code for code, _text in found]
    verdict = "shares"
    for candidate in _PRECEDENCE:
        if any(REASON_VERDICT[c] == candidate for c in codes):
            verdict = candidate
            break
    return Verdict(
        verdict=verdict,
        reasons=[text for _code, text in found],
        reason_codes=codes,
        remedy=_remedy(verdict, codes, ", ".join(_cache_file(facts, f) for f in stale),
                       ", ".join(_cache_file(facts, f) for f in unproven)),
        shares_noncontiguous=(verdict == "shares"),
        idmapped_mount=idm_ok,
        overlay_idmapped_lower=ovl_ok,
        stale_probe_cache=stale,
    )
