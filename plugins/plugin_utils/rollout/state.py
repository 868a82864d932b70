# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rollout knows about one host, and the operator's options it runs with.

The state travels between tasks as a plain dict (the fact `_igr`); `State.from_dict` and
`State.as_dict` convert, so every function here works on typed fields."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.reclaim_policy import POLICIES

# Where the helper role installs idmapped-mount and verify looks for it, unless the operator says
# otherwise (the default of idmapguard_helper_dest and idmapguard_verify_helper; a play's tasks
# do not see role defaults, so the rollout names it).
DEFAULT_HELPER = "/usr/local/libexec/idmapguard/idmapped-mount"
# The steps an operator selects (idmapguard_rollout_steps); verify always runs.
ALL_STEPS = ["helper", "verify", "configure", "proof", "remediate", "guard"]
PROOF_MODES = ("changed", "always", "never")


class RolloutError(ValueError):
    """Options or a step result the rollout cannot work with (the filter's error)."""


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


@dataclass
class Options:
    """The operator's variables, as the rollout reads them (None: not set, the role decides)."""

    steps: List[str] = field(default_factory=lambda: list(ALL_STEPS))
    proof: str = "changed"                     # idmapguard_rollout_proof
    proof_strict: bool = False                 # idmapguard_rollout_proof_strict: known issues fail too
    proof_accept: List[str] = field(default_factory=list)  # idmapguard_rollout_proof_accept
    disable_idmap_reason: str = ""             # idmapguard_verify_disable_idmap_reason
    upgrade_podman: bool = False               # idmapguard_rollout_upgrade_podman
    upgrade_backports: List[str] = field(default_factory=list)
    upgrade_update_cache: bool = True
    guard: bool = True                         # idmapguard_rollout_guard: guard every host that copies
    guard_enable: bool = True                  # idmapguard_remediate_guard_enable (false: files only)
    remediate_guard: Optional[bool] = None     # idmapguard_remediate_guard, when set by the operator
    remediate_policy: Optional[str] = None     # None: reclaim_policy's default
    remediate_threshold: Optional[float] = None
    remediate_graphroot: str = ""
    podman_backport: bool = False              # idmapguard_verify_podman_backport
    helper_dest: Optional[str] = None          # idmapguard_helper_dest (None: the roles' default)
    verify_helper: Optional[str] = None        # idmapguard_verify_helper

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Options":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RolloutError("unknown rollout options: %s" % ", ".join(unknown))
        values = {k: v for k, v in data.items() if v is not None or k in ("remediate_guard",)}
        opts = cls(**values)
        opts.steps = [str(s) for s in (opts.steps if opts.steps is not None else ALL_STEPS)]
        bad = sorted(set(opts.steps) - set(ALL_STEPS))
        if bad:
            raise RolloutError("idmapguard_rollout_steps: unknown steps %s (known: %s)"
                               % (", ".join(bad), ", ".join(ALL_STEPS)))
        opts.proof = str(opts.proof or "changed")
        if opts.proof not in PROOF_MODES:
            raise RolloutError("idmapguard_rollout_proof must be one of %s, got %r" % (", ".join(PROOF_MODES), opts.proof))
        for name in ("proof_strict", "upgrade_podman", "upgrade_update_cache", "guard", "guard_enable", "podman_backport"):
            setattr(opts, name, _bool(getattr(opts, name)))
        if opts.remediate_guard is not None and opts.remediate_guard != "":
            opts.remediate_guard = _bool(opts.remediate_guard)
        else:
            opts.remediate_guard = None
        if opts.remediate_policy in ("", None):
            opts.remediate_policy = None
        elif opts.remediate_policy not in POLICIES:
            raise RolloutError("idmapguard_remediate_policy must be one of %s, got %r"
                               % (", ".join(POLICIES), opts.remediate_policy))
        if opts.remediate_threshold in ("", None):
            opts.remediate_threshold = None
        else:
            try:
                opts.remediate_threshold = float(opts.remediate_threshold)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise RolloutError("idmapguard_remediate_inode_threshold must be a number, got %r"
                                   % (opts.remediate_threshold,))
        opts.upgrade_backports = [str(v) for v in opts.upgrade_backports or []]
        opts.proof_accept = [str(v) for v in opts.proof_accept or []]
        opts.disable_idmap_reason = str(opts.disable_idmap_reason or "")
        opts.remediate_graphroot = str(opts.remediate_graphroot or "")
        opts.helper_dest = str(opts.helper_dest) if opts.helper_dest else None
        opts.verify_helper = str(opts.verify_helper) if opts.verify_helper else None
        return opts


@dataclass
class State:
    """One host's rollout so far. `done` lists the steps that ran, in order; `plan` is what
    runs next (plan.plan of this state, stored so YAML reads it without another call)."""

    host: str
    check_mode: bool = False
    options: Options = field(default_factory=Options)
    done: List[str] = field(default_factory=list)
    # the facts of idmap_support: before any change, and now (after the steps so far)
    before: Dict[str, Any] = field(default_factory=dict)
    after: Dict[str, Any] = field(default_factory=dict)
    helper: Dict[str, Any] = field(default_factory=dict)       # the helper role's idmapguard_helper
    helper_path: str = DEFAULT_HELPER                          # where verify finds the helper
    # the facts were judged again on the controller from the probe the just-installed helper ran
    # (idmap_support.with_probe), so no second verify is needed for the helper
    rejudged: bool = False
    backport: bool = False                                     # verify's podman_backport from now on
    disable_kept: str = ""                                     # why _CONTAINERS_OVERLAY_DISABLE_IDMAP stays
    configure: Dict[str, Any] = field(default_factory=dict)    # the configure role's idmapguard_configure
    proof: Optional[Dict[str, Any]] = None                     # proof.judge of the last canary and proof
    rolled_back: bool = False
    upgrade: Dict[str, Any] = field(default_factory=dict)      # podman_upgrade plan and outcome
    remediated: Dict[str, Any] = field(default_factory=dict)   # the remediate role's idmapguard_remediate
    guard: Dict[str, Any] = field(default_factory=dict)        # what the guard step did
    changes: List[str] = field(default_factory=list)
    failed: Optional[Dict[str, Any]] = None                    # {task, msg}: the rescue's failure
    plan: Dict[str, Any] = field(default_factory=dict)
    # the plan entry each step ran with: a role that reads its entry while it runs (the remediate
    # role's decision and guard) keeps reading the same, though its result already moved the state
    ran: Dict[str, Any] = field(default_factory=dict)

    @property
    def now(self) -> Mapping[str, Any]:
        """The latest facts."""
        return self.after or self.before

    @property
    def verified(self) -> bool:
        return "verify" in self.done

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "State":
        if not isinstance(data, Mapping) or not data.get("host"):
            raise RolloutError("not a rollout state (no host): %r" % (type(data).__name__,))
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["options"] = Options.from_dict(dict(data.get("options") or {}))
        for key in ("before", "after", "helper", "configure", "upgrade", "remediated", "guard", "plan", "ran"):
            values[key] = dict(values.get(key) or {})
        values["done"] = list(values.get("done") or [])
        values["changes"] = [str(c) for c in values.get("changes") or []]
        values["check_mode"] = _bool(values.get("check_mode", False))
        values["rolled_back"] = _bool(values.get("rolled_back", False))
        values["rejudged"] = _bool(values.get("rejudged", False))
        return cls(**values)


def start(host: str, options: Mapping[str, Any], check_mode: bool = False) -> State:
    """The state before verify: where verify finds the helper, and the Podman backport it is told about.

    Where the helper step runs, verify looks where it installs (idmapguard_helper_dest); else
    where the operator says the helper is (idmapguard_verify_helper)."""
    opts = Options.from_dict(options)
    if "helper" in opts.steps:
        path = opts.helper_dest
    else:
        path = opts.verify_helper or opts.helper_dest
    return State(host=str(host), check_mode=_bool(check_mode), options=opts, helper_path=path or DEFAULT_HELPER,
                 backport=opts.podman_backport)
