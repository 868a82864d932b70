# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the configure role does on a host, decided from the verify facts and the role's variables.

`configure_plan` is a pure function; the role only runs the steps it returns. The plan is:

    {"action": "configure" | "skipped" | "undecided", "reason": str, "verdict": str,
     <step>: {"run": bool, "reason": str, ...what the step needs...}, ...}

with one entry per step in `STEPS`. A new step is one more function in that table: it gets the
inputs and the host-level decision and returns its entry; the role adds a task that runs when
`plan.<step>.run`.

`configure_outcome` turns the results of the tasks back into the `idmapguard_configure` fact.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ansible_collections.idmapguard.storage.plugins.module_utils.host_env import UNIT_DIRS
from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    DEFAULT_STORAGE_CONF,
    DROPIN_DIRS,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.safety import SETTING_DOTTED

# Verdicts no storage.conf edit can change (copies_unexplained: no known cause, so nothing to change).
UNFIXABLE = ("needs_podman_upgrade", "unsupported_kernel", "unsupported_filesystem", "copies_unexplained")
# What a fixable_by_config host needs: native overlay, no mount program (both spellings).
FIX_SETTINGS = {"storage.driver": "overlay"}
FIX_ABSENT = ["storage.options.overlay.mount_program", "storage.options.mount_program"]
# Our own storage.conf drop-in, on a Podman that reads drop-ins (containers-config(5), measured on 5.8.6
# and 6.1.1): Podman reads the main file, then every `*.conf` of the drop-in directories sorted by
# file name across the directories (a later directory's file replaces one of the same name), and a
# key set in a later file wins. `zz-` sorts after the usual `NN-name.conf`; the rootful directory
# is the last one read, and it keeps the change away from rootless Podman (which we never judged).
STORAGE_DROPIN = DROPIN_DIRS[-1] + "/zz-idmapguard.conf"
# Dotted keys whose winning file the verify facts report (podman.setting_files), by setting name.
TRACKED_KEYS = SETTING_DOTTED
# A unit file or one of its drop-ins, in any directory host_env searches: the unit's name.
UNIT_PATH = re.compile(r"^(?:%s)/([^/]+?)(?:\.d/[^/]+)?$" % "|".join(re.escape(d) for d in UNIT_DIRS))


@dataclass
class ConfigureInputs:
    """The role's variables the plan depends on (names without the `idmapguard_configure_` prefix)."""

    facts: Mapping[str, Any] = field(default_factory=dict)
    verdict: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    absent: List[str] = field(default_factory=list)
    unset_disable_idmap_env: bool = True
    path: str = DEFAULT_STORAGE_CONF


@dataclass
class HostDecision:
    action: str
    reason: str
    verdict: str


def decide(inputs: ConfigureInputs) -> HostDecision:
    """configure, skipped (with why) or undecided (no facts and nothing explicit to do)."""
    facts = inputs.facts
    verdict = inputs.verdict or facts.get("verdict") or ""
    reasons = "; ".join(facts.get("reasons") or [])
    if verdict in UNFIXABLE:
        why = reasons or facts.get("remedy") or "no configuration change can make this host share layers"
        return HostDecision("skipped", "verdict %s: %s" % (verdict, why), verdict)
    if verdict == "fixable_by_config":
        return HostDecision("configure", "verdict fixable_by_config: %s" % reasons, verdict)
    if verdict == "shares":
        return HostDecision("configure", "verdict shares: nothing required", verdict)
    if inputs.settings or inputs.absent:
        # the operator said what to change: no verdict needed (and an unknown one does not stop it)
        return HostDecision("configure", "explicit settings", verdict)
    if verdict:
        return HostDecision("skipped", "unknown verdict %s" % verdict, verdict)
    return HostDecision("undecided", "no facts", verdict)


def storage_conf_placement(facts: Mapping[str, Any], main_path: str) -> Dict[str, Any]:
    """Which file the edit goes to, from what the facts say this host's Podman reads:

    - `env`: CONTAINERS_STORAGE_CONF names a file; Podman reads that file alone (no main file, no
      drop-in), so that file is edited in place;
    - `dropin`: Podman reads drop-ins; our own drop-in (STORAGE_DROPIN) is read after the main file
      (`/etc`, or `/usr/share` when /etc has none: either stays as it is) and wins over it;
    - `main`: Podman reads the main file only (before 5.5), or the facts do not say: the main file
      is edited in place (starting from the vendor file when /etc has none), as always.
    """
    podman = facts.get("podman") or {}
    files = [f for f in podman.get("storage_conf_files") or [] if isinstance(f, Mapping)]
    named = [f for f in files if f.get("kind") == "env"]
    version = podman.get("version") or "unknown"
    if named:
        path = str(named[-1].get("path"))
        return {"placement": "env", "path": path, "dropin": False,
                "why": "CONTAINERS_STORAGE_CONF names %s, which Podman reads alone" % path}
    if podman.get("reads_dropins"):
        return {"placement": "dropin", "path": STORAGE_DROPIN, "dropin": True,
                "why": "Podman %s reads storage.conf drop-ins: %s is read after the main file" % (version, STORAGE_DROPIN)}
    why = "Podman %s reads no storage.conf drop-ins" % version if podman.get("reads_dropins") is False \
        else "no facts say whether Podman reads drop-ins"
    return {"placement": "main", "path": main_path, "dropin": False, "why": why + ": %s is edited in place" % main_path}


def sorts_after(path: str, ours: str = STORAGE_DROPIN) -> bool:
    """Whether Podman reads the drop-in PATH after OURS (by file name across the directories; of two
    files with the same name only the one in the later directory is read)."""
    name, our_name = os.path.basename(path), os.path.basename(ours)
    if name != our_name:
        return name > our_name
    rank = {d: i for i, d in enumerate(DROPIN_DIRS)}
    return path != ours and rank.get(os.path.dirname(path), -1) > rank.get(os.path.dirname(ours), -1)


def later_dropin_refusal(facts: Mapping[str, Any], keys: List[str], ours: str = STORAGE_DROPIN) -> str:
    """Why our drop-in would not win (a drop-in read after it sets a key we change), or ""."""
    origins = (facts.get("podman") or {}).get("setting_files") or {}
    found = []  # type: List[str]
    for key in keys:
        origin = origins.get(TRACKED_KEYS.get(key, "")) or {}
        where = origin.get("file")
        if origin.get("kind") == "drop-in" and where and sorts_after(str(where), ours):
            line = " line %s" % origin["line"] if origin.get("line") else ""
            entry = "%s%s sets %s" % (where, line, TRACKED_KEYS[key])
            if entry not in found:
                found.append(entry)
    if not found:
        return ""
    return ("refusing to write %s: %s, and Podman reads it after %s, so it would override this change; "
            "nothing was changed. Remove the setting there (or rename that file to sort before %s)."
            % (ours, "; ".join(found), os.path.basename(ours), os.path.basename(ours)))


def _effective_unchanged(facts: Mapping[str, Any], key: str, value: Any) -> bool:
    """Whether the facts say Podman already uses VALUE for KEY (None: unset), for a tracked key."""
    name = TRACKED_KEYS.get(key)
    podman = facts.get("podman") or {}
    if name is None or name not in podman:
        return False
    current = podman.get(name)
    return (current in (None, "") and value in (None, "")) or current == value


def storage_conf_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """The storage.conf edit: the fix for the verdict, then the operator's own edits, in the file
    `storage_conf_placement` picks.

    In a drop-in a key cannot be removed, only set again: an `absent` key is written as an empty
    string (containers/storage's "not set" for its string options), and only where the facts say
    Podman uses a value for it now; a setting Podman already uses is left out. So a drop-in is
    written only when it changes what Podman uses."""
    settings = dict(FIX_SETTINGS) if host.verdict == "fixable_by_config" else {}
    absent = list(FIX_ABSENT) if host.verdict == "fixable_by_config" else []
    settings.update(inputs.settings)
    absent.extend(inputs.absent)
    place = storage_conf_placement(inputs.facts, inputs.path)
    refused = ""
    if place["dropin"]:
        settings = {k: v for k, v in settings.items() if not _effective_unchanged(inputs.facts, k, v)}
        absent = [k for k in absent if k not in settings and not _effective_unchanged(inputs.facts, k, None)]
        refused = later_dropin_refusal(inputs.facts, list(settings) + absent) if host.action == "configure" else ""
    run = host.action == "configure" and not refused
    return {"run": run, "reason": refused or host.reason, "refused": refused, "settings": settings,
            "absent": absent, "placement": place["placement"], "path": place["path"], "dropin": place["dropin"],
            "placement_reason": place["why"]}


def unit_storage_conf_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """The storage.conf files that units starting Podman name in CONTAINERS_STORAGE_CONF, where the
    facts (podman.unit_storage_conf) say they make that Podman copy: each is edited in place, since
    Podman started with the variable reads that file alone (no main file, no drop-in)."""
    podman = inputs.facts.get("podman") or {}
    main_path = storage_conf_placement(inputs.facts, inputs.path)["path"]
    targets = []  # type: List[Dict[str, Any]]
    for unit in podman.get("unit_storage_conf") or []:
        named = (unit.get("storage_conf") or {}) if isinstance(unit, Mapping) else {}
        path, copying = named.get("path"), unit.get("copying") or {}
        if not path or not copying or unit.get("same_files") or path == main_path \
                or path in [t["path"] for t in targets]:
            continue
        targets.append({"unit": str(unit.get("unit")), "path": str(path),
                        "settings": dict(FIX_SETTINGS) if "driver" in copying else {},
                        "absent": list(FIX_ABSENT) if "mount_program" in copying else []})
    run = host.action == "configure" and host.verdict == "fixable_by_config" and bool(targets)
    if run:
        reason = "; ".join("%s names %s in CONTAINERS_STORAGE_CONF" % (t["unit"], t["path"]) for t in targets)
    elif targets:
        reason = "host not configured"
    else:
        reason = "no unit names a storage.conf that makes Podman copy"
    return {"run": run, "reason": reason, "targets": targets if run else []}


def split_disable_idmap_places(where: List[str]) -> Tuple[List[str], List[str]]:
    """(units a drop-in can fix, other places) among those that set _CONTAINERS_OVERLAY_DISABLE_IDMAP."""
    units = []  # type: List[str]
    others = []  # type: List[str]
    for place in where:
        match = UNIT_PATH.match(place)
        if match is None:
            others.append(place)
        elif match.group(1) not in units:
            units.append(match.group(1))
    return units, others


def disable_idmap_env_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """Drop-ins unsetting _CONTAINERS_OVERLAY_DISABLE_IDMAP for the units the facts name."""
    env = (inputs.facts.get("podman") or {}).get("disable_idmap_env") or {}
    units, not_fixed = split_disable_idmap_places(list(env.get("where") or [])) if env.get("set") else ([], [])
    if host.action == "skipped":
        # A host that cannot share layers keeps its units as they are; the other places are still reported.
        units = []
    kept = env.get("kept")
    if host.action != "configure":
        reason = "host not configured"
    elif kept and units:
        # set on purpose (the operator said so, or the correctness proof fails without it)
        reason = "kept on purpose in %s: %s" % (", ".join(units), kept)
        units = []
    elif not units:
        reason = "no unit sets _CONTAINERS_OVERLAY_DISABLE_IDMAP"
    elif not inputs.unset_disable_idmap_env:
        reason = "idmapguard_configure_unset_disable_idmap_env is false"
    else:
        reason = "set in %s" % ", ".join(units)
    run = host.action == "configure" and bool(units) and inputs.unset_disable_idmap_env
    return {"run": run, "reason": reason, "units": units, "not_fixed": not_fixed, "kept": kept}


def probe_cache_step(inputs: ConfigureInputs, host: HostDecision) -> Dict[str, Any]:
    """Remove the negative answers containers/storage cached in its runroot that verify proved stale.

    Only those in `podman.probe_cache.stale`: idmap_support lists a cached answer there only where
    the helper's probe on graphroot's filesystem passed. A negative answer the probe confirms, or
    could not judge, is never in that list and stays.
    """
    podman = inputs.facts.get("podman") or {}
    cache = podman.get("probe_cache") or {}
    stale = [str(f) for f in cache.get("stale") or []]
    files = [str((cache.get("files") or {}).get(f) or f) for f in stale]
    run = host.action == "configure" and host.verdict == "fixable_by_config" and bool(stale)
    if run:
        reason = "stale cached probe answer(s): %s" % ", ".join(files)
    elif stale:
        reason = "host not configured"
    else:
        reason = "no stale cached probe answer"
    return {"run": run, "reason": reason, "runroot": podman.get("runroot") or "/run/containers/storage",
            "features": stale if run else [], "files": files if run else []}


Step = Callable[[ConfigureInputs, HostDecision], Dict[str, Any]]
# Run by the role in this order, each task guarded by `plan.<name>.run`.
STEPS = (
    ("storage_conf", storage_conf_step),
    ("unit_storage_conf", unit_storage_conf_step),
    ("disable_idmap_env", disable_idmap_env_step),
    ("probe_cache", probe_cache_step),
)  # type: Tuple[Tuple[str, Step], ...]


def configure_plan(inputs: ConfigureInputs) -> Dict[str, Any]:
    host = decide(inputs)
    plan = {"action": host.action, "reason": host.reason, "verdict": host.verdict}  # type: Dict[str, Any]
    for name, step in STEPS:
        plan[name] = step(inputs, host)
    return plan


def _changed(result: Optional[Mapping[str, Any]]) -> bool:
    return bool((result or {}).get("changed"))


def _changed_items(loop_result: Optional[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The items of a loop task's registered result that changed something (also of a loop that
    failed at a later item: the earlier items' changes are on disk all the same)."""
    return [item for item in (loop_result or {}).get("results") or []
            if isinstance(item, Mapping) and item.get("changed")]


def undo_after_failure(storage_conf: Optional[Mapping[str, Any]], unit_conf: Optional[Mapping[str, Any]] = None,
                       dropins: Optional[Mapping[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """What the configure role had changed when one of its tasks failed before it published
    `idmapguard_configure`: the same keys the rollback reads from that fact (`undo`, `unit_undo`,
    `dropins`), from the results its tasks had registered. None: it had changed nothing."""
    conf = storage_conf or {}
    unit_changed = _changed_items(unit_conf)
    written = [item.get("dest") for item in _changed_items(dropins)]
    undo = conf.get("undo") if _changed(conf) else None
    unit_undo = [item.get("undo") for item in unit_changed if item.get("undo")]
    if not (undo or unit_undo or written):
        return None
    return {"action": "configured", "conf_changed": bool(undo), "path": conf.get("path"), "undo": undo,
            "unit_files": [item.get("path") for item in unit_changed], "unit_undo": unit_undo, "dropins": written}


def configure_outcome(plan: Mapping[str, Any], storage_conf: Optional[Mapping[str, Any]],
                      dropins: Optional[Mapping[str, Any]], restart_units: List[str],
                      probe_cache: Optional[Mapping[str, Any]] = None,
                      unit_conf: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The `idmapguard_configure` fact from the plan and the registered results of its steps."""
    conf = storage_conf or {}
    unit_changed = _changed_items(unit_conf)
    # a running Podman service keeps the driver's answers in memory: a cleared cache restarts it too
    changed = _changed(conf) or _changed(dropins) or _changed(probe_cache) or bool(unit_changed)
    if plan["action"] == "skipped":
        action = "skipped"
    else:
        action = "configured" if changed else "unchanged"
    written = [item.get("dest") for item in _changed_items(dropins)]
    return {
        "action": action,
        "reason": plan["reason"],
        "verdict": plan["verdict"],
        "path": conf.get("path") or plan["storage_conf"].get("path"),
        # where the edit went: `dropin` (our own drop-in), `main` (in place) or `env` (CONTAINERS_STORAGE_CONF's file)
        "placement": plan["storage_conf"].get("placement"),
        "conf_changed": _changed(conf),
        # what puts storage.conf back (the storage_conf module's `undo`), for the rollout's rollback
        "undo": conf.get("undo") if _changed(conf) else None,
        "changed_keys": list(conf.get("changed_keys") or []),
        # the files units name in CONTAINERS_STORAGE_CONF, edited in place, and what puts each back
        "unit_files": [item.get("path") for item in unit_changed],
        "unit_undo": [item.get("undo") for item in unit_changed if item.get("undo")],
        "mount_program_marker": conf.get("mount_program_marker"),
        "podman": conf.get("podman"),
        "dropins": written,
        "not_fixed": list(plan["disable_idmap_env"]["not_fixed"]),
        "probe_cache_cleared": list((probe_cache or {}).get("removed") or []) if _changed(probe_cache) else [],
        "disable_idmap_kept": plan["disable_idmap_env"].get("kept"),
        "restarted": list(restart_units) if changed else [],
    }
