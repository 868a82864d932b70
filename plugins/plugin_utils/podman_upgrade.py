# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's opt-in Podman upgrade: which version to install, and what to say about it.

Controller-side and pure (no Ansible, no I/O), unit-tested against real package manager
output. The rollout runs the host's own package manager to list the Podman versions its
repositories carry (``apt-cache policy podman``, ``dnf list --showduplicates podman``), and the
filters in ``plugins/filter/podman_upgrade.py`` turn that listing into a plan:

* the target is a version newer than the installed one that shares layers across
  non-contiguous ID maps: Podman >= 5.6 (containers/storage 1.59), or a package version the
  operator declares a backport of that change;
* apt's candidate is preferred when it qualifies (it is what the host's pinning chooses);
  otherwise the newest qualifying version, never one pinned below 0 (apt: never install);
* the installed version is kept as the rollback target only when a repository still has it
  (a failed proof after the upgrade installs it again; without it, the upgraded Podman stays
  and the record says so).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

FIRST_SHARING_PODMAN = (5, 6)

# What bounds the store instead is said by the rollout record, only where a guard runs.
NO_SHARING_NOTE = "no Podman >= 5.6 in this host's repositories"

PACKAGE_MANAGERS = ("apt", "dnf", "dnf5", "yum")


class ListingError(ValueError):
    """The package manager's output is not what this parser knows."""


# ---- version comparison -------------------------------------------------------------------
def _split_evr(version: str, revision_sep: str) -> Tuple[int, str, str]:
    epoch, _sep, rest = version.partition(":") if ":" in version else ("0", "", version)
    if not epoch.isdigit():
        raise ListingError("bad epoch in version %r" % version)
    upstream, _sep, release = rest.rpartition(revision_sep) if revision_sep in rest else (rest, "", "")
    return int(epoch), upstream, release


def _deb_order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _deb_part_cmp(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (~ sorts first, letters before others) and
    numbers."""
    while a or b:
        na = re.match(r"[^0-9]*", a).group()
        nb = re.match(r"[^0-9]*", b).group()
        for i in range(max(len(na), len(nb))):
            ca = _deb_order(na[i]) if i < len(na) else 0
            cb = _deb_order(nb[i]) if i < len(nb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na):], b[len(nb):]
        da = re.match(r"[0-9]*", a).group()
        db = re.match(r"[0-9]*", b).group()
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da):], b[len(db):]
    return 0


def _rpm_part_cmp(a: str, b: str) -> int:
    """rpmvercmp: alphanumeric segments; numbers beat letters; ~ sorts before anything, even
    the end; ^ sorts after the end but before anything else."""
    while a or b:
        a = re.sub(r"^[^A-Za-z0-9~^]+", "", a)
        b = re.sub(r"^[^A-Za-z0-9~^]+", "", b)
        if a.startswith("~") or b.startswith("~"):
            if not a.startswith("~"):
                return 1
            if not b.startswith("~"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if a.startswith("^") or b.startswith("^"):
            if not a:
                return -1
            if not b:
                return 1
            if not a.startswith("^"):
                return 1
            if not b.startswith("^"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if not a or not b:
            break
        pattern = r"[0-9]*" if a[0].isdigit() else r"[A-Za-z]*"
        sa, sb = re.match(pattern, a).group(), re.match(pattern, b).group()
        if not sb:  # different kinds of segment: a number is newer than letters
            return 1 if a[0].isdigit() else -1
        if a[0].isdigit():
            if int(sa) != int(sb):
                return -1 if int(sa) < int(sb) else 1
        elif sa != sb:
            return -1 if sa < sb else 1
        a, b = a[len(sa):], b[len(sb):]
    if not a and not b:
        return 0
    return 1 if a else -1


def compare_versions(a: str, b: str, package_manager: str = "apt") -> int:
    """-1, 0 or 1, as the package manager orders the two package versions."""
    part_cmp = _deb_part_cmp if package_manager == "apt" else _rpm_part_cmp
    ea, ua, ra = _split_evr(a, "-")
    eb, ub, rb = _split_evr(b, "-")
    if ea != eb:
        return -1 if ea < eb else 1
    return part_cmp(ua, ub) or part_cmp(ra, rb)


def upstream_tuple(version: str) -> Tuple[int, ...]:
    """(5, 8, 6) from "5.8.6+ds1-3", "2:5.6.0-1.el9" or "5.6.0~rc1-1"."""
    rest = version.split(":", 1)[1] if ":" in version else version
    match = re.match(r"\d+(?:\.\d+)*", rest)
    if not match:
        raise ListingError("no version number in %r" % version)
    return tuple(int(part) for part in match.group().split("."))


def shares(version: str, backports: Sequence[str] = ()) -> bool:
    """Does this package version share layers across non-contiguous maps?"""
    return version in backports or upstream_tuple(version) >= FIRST_SHARING_PODMAN


# ---- package manager output -----------------------------------------------------------------
def parse_apt_policy(text: str) -> Dict[str, Any]:
    """``apt-cache policy podman`` (LC_ALL=C) -> installed, candidate, and every listed version
    with its pin priority and the repositories that carry it (dpkg's status file is not one)."""
    installed = candidate = None
    versions: List[Dict[str, Any]] = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("Installed:"):
            value = stripped.split(":", 1)[1].strip()
            installed = None if value == "(none)" else value
        elif stripped.startswith("Candidate:"):
            value = stripped.split(":", 1)[1].strip()
            candidate = None if value == "(none)" else value
        elif stripped == "Version table:":
            in_table = True
        elif in_table:
            match = re.match(r"^(\*\*\* )?(\S+) (-?\d+)$", stripped)
            if match and (line.startswith("     ") or line.startswith(" *** ")) and not line.startswith("        "):
                versions.append({"version": match.group(2), "priority": int(match.group(3)),
                                 "installed": bool(match.group(1)), "sources": []})
                continue
            source = re.match(r"^(-?\d+) (.+)$", stripped)
            if source and versions:
                if source.group(2) != "/var/lib/dpkg/status":
                    versions[-1]["sources"].append(source.group(2))
                continue
            raise ListingError("unexpected line in apt-cache policy output: %r" % line)
    return {"installed": installed, "candidate": candidate, "versions": versions}


_DNF_SECTIONS = {"installed packages": True, "available packages": False}


def parse_dnf_list(text: str, name: str = "podman") -> Dict[str, Any]:
    """``dnf list --showduplicates podman`` (dnf 4 and dnf5: "Installed packages" /
    "Available packages" sections of "name.arch  [epoch:]version-release  repo") -> versions."""
    installed = None
    versions: Dict[str, Dict[str, Any]] = {}
    section: Optional[bool] = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.lower() in _DNF_SECTIONS:
            section = _DNF_SECTIONS[stripped.lower()]
            continue
        words = stripped.split()
        if section is None or len(words) != 3 or "." not in words[0]:
            continue  # metadata expiry notices and the like
        package, _dot, _arch = words[0].rpartition(".")
        if package != name:
            continue
        evr, repo = words[1], words[2]
        if evr.startswith("0:"):
            evr = evr[2:]
        entry = versions.setdefault(evr, {"version": evr, "priority": None, "installed": False, "sources": []})
        if section:
            entry["installed"] = True
            installed = evr
        else:
            entry["sources"].append(repo.lstrip("@"))
    ordered = sorted(versions.values(), key=_SortKey("dnf"), reverse=True)
    return {"installed": installed, "candidate": None, "versions": ordered}


class _SortKey:
    """Sort version entries with the package manager's own comparison."""

    def __init__(self, package_manager: str):
        self.package_manager = package_manager

    def __call__(self, entry: Mapping[str, Any]) -> "_Cmp":
        return _Cmp(str(entry["version"]), self.package_manager)


class _Cmp:
    def __init__(self, version: str, package_manager: str):
        self.version, self.package_manager = version, package_manager

    def __lt__(self, other: "_Cmp") -> bool:
        return compare_versions(self.version, other.version, self.package_manager) < 0


def parse_listing(text: str, package_manager: str) -> Dict[str, Any]:
    if package_manager == "apt":
        return parse_apt_policy(text)
    if package_manager in ("dnf", "dnf5", "yum"):
        return parse_dnf_list(text)
    raise ListingError("package manager %r is not supported by the upgrade step (apt and dnf are)"
                       % package_manager)


# ---- the plan -------------------------------------------------------------------------------
def package_spec(version: str, package_manager: str, name: str = "podman") -> str:
    """What the package module installs: podman=VERSION (apt), podman-[EPOCH:]VERSION (dnf)."""
    return "%s=%s" % (name, version) if package_manager == "apt" else "%s-%s" % (name, version)


def plan_upgrade(listing: str, package_manager: str, backports: Sequence[str] = (),
                 refresh_error: str = "") -> Dict[str, Any]:
    """The upgrade this host gets, or why it gets none. Never raises for a host's state:
    an unusable listing becomes ``upgrade: false`` with the reason as ``note``. REFRESH_ERROR:
    why refreshing the package lists failed (the listing is then what the host last fetched)."""
    plan = _plan(listing, package_manager, backports)
    if refresh_error:
        plan["note"] += " (the package lists could not be refreshed: %s)" % refresh_error.strip()
    return plan


def _plan(listing: str, package_manager: str, backports: Sequence[str]) -> Dict[str, Any]:
    plan: Dict[str, Any] = {
        "package_manager": package_manager, "installed": None, "available": [], "target": None,
        "target_spec": None, "backport": False, "rollback_spec": None, "upgrade": False,
        "upgraded": False, "rolled_back": False, "proof_failed": False, "error": "", "note": "",
    }
    backports = [str(b) for b in backports or ()]
    try:
        parsed = parse_listing(listing, package_manager)
        installed = parsed["installed"]
        plan["installed"] = installed
        offered = [v for v in parsed["versions"] if v["sources"]]
        plan["available"] = [v["version"] for v in offered]
        if installed is None:
            plan["note"] = "Podman is not installed from a package here: the upgrade step changes nothing"
            return plan
        newer = [v for v in offered
                 if compare_versions(v["version"], installed, package_manager) > 0
                 and (v["priority"] is None or v["priority"] >= 0)
                 and shares(v["version"], backports)]
    except ListingError as exc:
        plan["note"] = "the upgrade step changes nothing: %s" % exc
        return plan
    if not newer:
        plan["note"] = NO_SHARING_NOTE
        return plan
    preferred = [v for v in newer if v["version"] == parsed["candidate"]]
    target = (preferred or newer)[0]["version"]
    plan.update({
        "target": target,
        "target_spec": package_spec(target, package_manager),
        "backport": target in backports and upstream_tuple(target) < FIRST_SHARING_PODMAN,
        "upgrade": True,
        "rollback_spec": (package_spec(installed, package_manager)
                          if installed in plan["available"] else None),
        "note": "Podman %s from this host's repositories shares non-contiguous maps%s: upgrade from %s"
                % (target, " (declared backport)" if target in backports else "", installed),
    })
    return plan


def upgrade_outcome(plan: Mapping[str, Any], installed: bool, check_mode: bool = False) -> Dict[str, Any]:
    """The plan after the package step ran (INSTALLED: the package module changed Podman)."""
    out = dict(plan)
    if not plan.get("upgrade"):
        return out
    if check_mode:
        out["note"] = "would upgrade Podman %s -> %s (%s)" % (
            plan["installed"], plan["target"], plan["package_manager"])
        return out
    out["upgraded"] = bool(installed)
    out["note"] = ("upgraded Podman %s -> %s (%s)" % (plan["installed"], plan["target"], plan["package_manager"])
                   if installed else "Podman %s was already installed" % plan["target"])
    return out


def failed_proof(plan: Mapping[str, Any], verdict: str, proof: Optional[Mapping[str, Any]],
                 reasons: Sequence[str] = ()) -> Dict[str, Any]:
    """An upgraded host whose proof failed (or that does not say ``shares`` after the upgrade
    and configure): the host fails; the previous Podman goes back when a repository has it."""
    out = dict(plan)
    if not plan.get("upgraded"):
        return out
    # PROOF is the rollout's judgement (module_utils/proof_verdict.judge): `passed` is the one definition
    ran = isinstance(proof, Mapping) and bool(proof.get("ran"))
    passed = ran and bool(proof.get("passed"))  # type: ignore[union-attr]
    if verdict == "shares" and passed:
        return out
    if ran and not passed:  # (the canary's copy also turns the verdict to needs_podman_upgrade)
        what = []
        if int(proof.get("new_mapped_layers") or 0) > 0:  # type: ignore[union-attr]
            what.append("a new non-contiguous map still added a copy")
        failed = proof.get("counted_failures", proof.get("failed_checks"))  # type: ignore[union-attr]
        what += ["check %s failed" % c for c in failed or []]
        why = "proof failed after the upgrade to %s: %s" % (
            plan["target"], "; ".join(what) or "a new non-contiguous map still added a copy")
    else:
        why = "the verdict after the upgrade to %s is %s%s" % (
            plan["target"], verdict, (": " + "; ".join(reasons)) if reasons else "")
    out["proof_failed"] = True
    if plan.get("rollback_spec"):
        out["error"] = "%s; Podman %s is installed again" % (why, plan["installed"])
    else:
        out["error"] = ("%s; Podman %s is no longer in this host's repositories, so %s stays installed"
                        % (why, plan["installed"], plan["target"]))
    out["note"] = out["error"]
    return out
