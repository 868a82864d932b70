# -*- coding: utf-8 -*-
"""plugin_utils.configure_plan: the configure role's decisions, as tables."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.idmapguard.storage.plugins.filter.configure_plan import (
    FilterModule,
    configure_outcome_filter,
    configure_plan_filter,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.host_env import UNIT_DIRS
from ansible_collections.idmapguard.storage.plugins.plugin_utils.configure_plan import (
    FIX_ABSENT,
    STEPS,
    ConfigureInputs,
    configure_outcome,
    configure_plan,
    split_disable_idmap_places,
)


def facts(verdict, reasons=("r1",), remedy=None, where=None):
    out = {"verdict": verdict, "reasons": list(reasons), "podman": {}}
    if remedy is not None:
        out["remedy"] = remedy
    if where is not None:
        out["podman"]["disable_idmap_env"] = {"set": bool(where), "where": list(where)}
    return out


# (inputs, action, reason, settings, absent)
HOST_CASES = [
    (ConfigureInputs(facts=facts("fixable_by_config", ["uses fuse-overlayfs", "podman 5.8"])),
     "configure", "verdict fixable_by_config: uses fuse-overlayfs; podman 5.8",
     {"storage.driver": "overlay"}, FIX_ABSENT),
    (ConfigureInputs(facts=facts("shares")), "configure", "verdict shares: nothing required", {}, []),
    (ConfigureInputs(facts=facts("needs_podman_upgrade", ["podman 4.9 copies"])),
     "skipped", "verdict needs_podman_upgrade: podman 4.9 copies", {}, []),
    (ConfigureInputs(facts=facts("unsupported_kernel", [], remedy="upgrade the kernel")),
     "skipped", "verdict unsupported_kernel: upgrade the kernel", {}, []),
    (ConfigureInputs(facts=facts("unsupported_filesystem", [])),
     "skipped", "verdict unsupported_filesystem: no configuration change can make this host share layers", {}, []),
    (ConfigureInputs(facts=facts("martian")), "skipped", "unknown verdict martian", {}, []),
    (ConfigureInputs(), "undecided", "no facts", {}, []),
    # explicit edits need no facts, and win over an unknown verdict
    (ConfigureInputs(settings={"storage.options.overlay.mountopt": "nodev"}), "configure", "explicit settings",
     {"storage.options.overlay.mountopt": "nodev"}, []),
    (ConfigureInputs(facts=facts("martian"), absent=["storage.imagestore"]), "configure", "explicit settings",
     {}, ["storage.imagestore"]),
    # the override beats the facts' verdict
    (ConfigureInputs(facts=facts("shares"), verdict="fixable_by_config"), "configure",
     "verdict fixable_by_config: r1", {"storage.driver": "overlay"}, FIX_ABSENT),
    # operator edits come after the fix, and may override it
    (ConfigureInputs(facts=facts("fixable_by_config", []), settings={"storage.driver": "overlay2", "a.b": 1},
                     absent=["x.y"]),
     "configure", "verdict fixable_by_config: ", {"storage.driver": "overlay2", "a.b": 1}, FIX_ABSENT + ["x.y"]),
]


@pytest.mark.parametrize("inputs,action,reason,settings,absent", HOST_CASES)
def test_host_decision_and_storage_conf_edit(inputs, action, reason, settings, absent):
    plan = configure_plan(inputs)
    assert (plan["action"], plan["reason"]) == (action, reason)
    assert plan["storage_conf"] == {"run": action == "configure", "reason": reason,
                                    "settings": settings, "absent": absent}


# (places that set _CONTAINERS_OVERLAY_DISABLE_IDMAP, units a drop-in fixes, places reported)
PLACE_CASES = [
    (["/etc/systemd/system/podman.service"], ["podman.service"], []),
    (["/run/systemd/system/podman.socket"], ["podman.socket"], []),
    (["/usr/lib/systemd/system/podman.service.d/10-env.conf"], ["podman.service"], []),
    (["/lib/systemd/system/podman-restart.service"], ["podman-restart.service"], []),
    # host_env searches /usr/local/lib/systemd/system too; the Jinja plan missed it (issue 12)
    (["/usr/local/lib/systemd/system/podman.service"], ["podman.service"], []),
    (["/usr/local/lib/systemd/system/web.container.d/env.conf"], ["web.container"], []),
    # drop-ins for every service: one global drop-in unsets it for all
    (["/etc/systemd/system/service.d/env.conf"], ["service"], []),
    # the same unit twice (unit file and drop-in) gets one drop-in
    (["/etc/systemd/system/podman.service", "/etc/systemd/system/podman.service.d/x.conf"], ["podman.service"], []),
    (["process environment", "/etc/environment", "/etc/default/podman"], [],
     ["process environment", "/etc/environment", "/etc/default/podman"]),
    # not a directory systemd reads units from
    (["/opt/systemd/system/podman.service", "/etc/systemd/system/sub/podman.service"], [],
     ["/opt/systemd/system/podman.service", "/etc/systemd/system/sub/podman.service"]),
]


@pytest.mark.parametrize("where,units,reported", PLACE_CASES)
def test_places_split_into_fixable_units_and_reported_places(where, units, reported):
    assert split_disable_idmap_places(where) == (units, reported)
    plan = configure_plan(ConfigureInputs(facts=facts("fixable_by_config", where=where)))
    assert plan["disable_idmap_env"]["units"] == units
    assert plan["disable_idmap_env"]["not_fixed"] == reported
    assert plan["disable_idmap_env"]["run"] is bool(units)


@pytest.mark.parametrize("unit_dir", UNIT_DIRS)
def test_every_directory_host_env_searches_is_fixable(unit_dir):
    assert split_disable_idmap_places([unit_dir + "/podman.service"]) == (["podman.service"], [])


# (verdict, unset variable, run, units, reason)
ENV_STEP_CASES = [
    ("fixable_by_config", True, True, ["podman.service"], "set in podman.service"),
    ("shares", True, True, ["podman.service"], "set in podman.service"),
    ("fixable_by_config", False, False, ["podman.service"], "idmapguard_configure_unset_disable_idmap_env is false"),
    ("needs_podman_upgrade", True, False, [], "host not configured"),
]


@pytest.mark.parametrize("verdict,unset,run,units,reason", ENV_STEP_CASES)
def test_disable_idmap_env_step(verdict, unset, run, units, reason):
    where = ["/etc/systemd/system/podman.service", "/etc/environment"]
    plan = configure_plan(ConfigureInputs(facts=facts(verdict, where=where), unset_disable_idmap_env=unset))
    assert plan["disable_idmap_env"] == {"run": run, "reason": reason, "units": units,
                                         "not_fixed": ["/etc/environment"], "kept": None}


def test_env_not_set_means_nothing_to_do():
    plan = configure_plan(ConfigureInputs(facts=facts("fixable_by_config", where=[])))
    assert plan["disable_idmap_env"] == {"run": False, "reason": "no unit sets _CONTAINERS_OVERLAY_DISABLE_IDMAP",
                                         "units": [], "not_fixed": [], "kept": None}


def test_a_deliberate_disable_is_kept():
    """Set on purpose (operator's word or a failing proof check, in the facts): no drop-in."""
    f = facts("fixable_by_config", where=["/etc/systemd/system/podman.service.d/x.conf"])
    f["podman"]["disable_idmap_env"]["kept"] = "the correctness proof fails without it: commit (#1126)"
    plan = configure_plan(ConfigureInputs(facts=f))
    assert plan["disable_idmap_env"]["run"] is False and plan["disable_idmap_env"]["units"] == []
    assert plan["disable_idmap_env"]["reason"] == ("kept on purpose in podman.service: the correctness proof fails "
                                                   "without it: commit (#1126)")


def test_every_step_has_run_and_reason():
    plan = configure_plan(ConfigureInputs(facts=facts("fixable_by_config")))
    for name, _step in STEPS:
        assert isinstance(plan[name]["run"], bool) and isinstance(plan[name]["reason"], str)


CONF_CHANGED = {"changed": True, "changed_keys": ["storage.driver"], "podman": {"driver": "overlay"},
                "mount_program_marker": {"cleared": True}}
DROPINS = {"changed": True, "results": [{"changed": True, "dest": "/etc/systemd/system/a.d/x.conf"},
                                        {"changed": False, "dest": "/etc/systemd/system/b.d/x.conf"}]}
SKIPPED = {"changed": False, "skipped": True}


# (verdict, storage_conf result, dropins result, action, dropins written, restarted)
OUTCOME_CASES = [
    ("fixable_by_config", CONF_CHANGED, None, "configured", [], ["podman.socket"]),
    ("fixable_by_config", {"changed": False, "changed_keys": []}, DROPINS, "configured",
     ["/etc/systemd/system/a.d/x.conf"], ["podman.socket"]),
    ("shares", {"changed": False}, None, "unchanged", [], []),
    ("needs_podman_upgrade", SKIPPED, None, "skipped", [], []),
]


@pytest.mark.parametrize("verdict,conf,dropins,action,written,restarted", OUTCOME_CASES)
def test_outcome(verdict, conf, dropins, action, written, restarted):
    plan = configure_plan(ConfigureInputs(facts=facts(verdict, where=["/etc/environment"])))
    out = configure_outcome(plan, conf, dropins, ["podman.socket"])
    assert (out["action"], out["dropins"], out["restarted"]) == (action, written, restarted)
    assert out["reason"] == plan["reason"] and out["verdict"] == verdict
    assert out["not_fixed"] == ["/etc/environment"]
    assert out["changed_keys"] == list((conf or {}).get("changed_keys") or [])
    assert out["podman"] == (conf or {}).get("podman")
    assert out["mount_program_marker"] == (conf or {}).get("mount_program_marker")


def test_filters_are_registered_and_check_their_input():
    assert set(FilterModule().filters()) == {"configure_plan", "configure_outcome"}
    # Jinja passes role variables as they are: strings for booleans, None for an empty default
    plan = configure_plan_filter(None, verdict=None, settings=None, absent=None, unset_disable_idmap_env="false")
    assert plan["action"] == "undecided"
    plan = configure_plan_filter(facts("fixable_by_config", where=["/etc/systemd/system/podman.service"]),
                                 unset_disable_idmap_env="no")
    assert plan["disable_idmap_env"]["run"] is False
    for bad in ({"facts": ["x"]}, {"facts": {}, "settings": ["x"]}, {"facts": {}, "absent": "storage.driver"}):
        with pytest.raises(AnsibleFilterError):
            configure_plan_filter(bad.pop("facts"), **bad)
    with pytest.raises(AnsibleFilterError):
        configure_outcome_filter({"reason": "no action"})


MARKER = "/run/containers/storage/overlay/idmapped-lower-dir-false"


def cache_facts(verdict, stale):
    out = facts(verdict)
    out["podman"] = {"runroot": "/run/containers/storage",
                     "probe_cache": {"markers": {"idmapped-lower-dir": False}, "stale": list(stale),
                                     "files": {"idmapped-lower-dir": MARKER}}}
    return out


@pytest.mark.parametrize("verdict,stale,run,reason", [
    ("fixable_by_config", ["idmapped-lower-dir"], True, "stale cached probe answer(s): " + MARKER),
    # a negative answer the probe confirms or could not judge is never listed as stale: left alone
    ("fixable_by_config", [], False, "no stale cached probe answer"),
    ("unsupported_filesystem", [], False, "no stale cached probe answer"),
    # on a host that cannot share anyway the file stays (old Podman: upgrade first)
    ("needs_podman_upgrade", ["idmapped-lower-dir"], False, "host not configured"),
    ("copies_unexplained", [], False, "no stale cached probe answer"),
])
def test_probe_cache_step(verdict, stale, run, reason):
    plan = configure_plan(ConfigureInputs(facts=cache_facts(verdict, stale)))
    step = plan["probe_cache"]
    assert (step["run"], step["reason"]) == (run, reason)
    assert step["features"] == (["idmapped-lower-dir"] if run else [])
    assert step["runroot"] == "/run/containers/storage"


def test_copies_unexplained_is_left_alone():
    plan = configure_plan(ConfigureInputs(facts=facts("copies_unexplained", ["canary copied, no rule explains it"])))
    assert plan["action"] == "skipped" and "no rule explains it" in plan["reason"]
    assert not plan["storage_conf"]["run"]


def test_outcome_of_a_cleared_cache():
    plan = configure_plan(ConfigureInputs(facts=cache_facts("fixable_by_config", ["idmapped-lower-dir"])))
    out = configure_outcome(plan, {"changed": False}, None, ["podman.socket"],
                            {"changed": True, "removed": [MARKER]})
    assert out["action"] == "configured" and out["probe_cache_cleared"] == [MARKER]
    assert out["restarted"] == ["podman.socket"]  # a Podman service keeps the old answer in memory
    out = configure_outcome(plan, {"changed": False}, None, [], {"changed": False, "removed": [], "absent": [MARKER]})
    assert out["action"] == "unchanged" and out["probe_cache_cleared"] == []
