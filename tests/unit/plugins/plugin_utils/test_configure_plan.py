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
    STORAGE_DROPIN,
    ConfigureInputs,
    configure_outcome,
    configure_plan,
    sorts_after,
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
    entry = {k: plan["storage_conf"][k] for k in ("run", "reason", "settings", "absent", "placement", "path")}
    assert entry == {"run": action == "configure", "reason": reason, "settings": settings, "absent": absent,
                     "placement": "main", "path": "/etc/containers/storage.conf"}


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


# --- where the storage.conf edit goes (issue 20): our drop-in, the main file, or CONTAINERS_STORAGE_CONF's file
MAIN = {"path": "/etc/containers/storage.conf", "kind": "main"}
VENDOR = {"path": "/usr/share/containers/storage.conf", "kind": "main"}
FUSE = "/usr/bin/fuse-overlayfs"


def conf_facts(version, reads, files, origins=None, mount_program=FUSE, driver="overlay", verdict="fixable_by_config"):
    base = {key: {"file": None, "kind": "default", "line": None}
            for key in ("driver", "graphroot", "runroot", "imagestore", "transient_store", "mount_program")}
    base.update(origins or {})
    return {"verdict": verdict, "reasons": ["uses fuse-overlayfs"],
            "podman": {"version": version, "reads_dropins": reads, "storage_conf_files": files,
                       "setting_files": base, "mount_program": mount_program, "driver": driver}}


def origin(path, line=2, kind="drop-in"):
    return {"file": path, "kind": kind, "line": line}


# (facts, placement, path, settings, absent, refused: a piece of the message or "")
PLACEMENT_CASES = [
    # 4.3.1 / 5.4.2 read no drop-ins: today's in-place edit of the main file
    (conf_facts("4.3.1", False, [MAIN], {"mount_program": origin(MAIN["path"], 9, "main")}),
     "main", "/etc/containers/storage.conf", {"storage.driver": "overlay"}, FIX_ABSENT, ""),
    (conf_facts("5.4.2", False, [VENDOR]), "main", "/etc/containers/storage.conf",
     {"storage.driver": "overlay"}, FIX_ABSENT, ""),
    # no facts about the files: in place, as always
    (conf_facts(None, None, []), "main", "/etc/containers/storage.conf", {"storage.driver": "overlay"}, FIX_ABSENT, ""),
    # 5.8.6 / 6.1.1 with the mount program in the main file: our drop-in overrides it; the driver
    # Podman already uses is left out, the mount program is set to "" (both spellings)
    (conf_facts("5.8.6", True, [MAIN], {"mount_program": origin(MAIN["path"], 9, "main")}),
     "dropin", STORAGE_DROPIN, {}, FIX_ABSENT, ""),
    # ... in an earlier drop-in: overridden too
    (conf_facts("6.1.1", True, [MAIN, {"path": "/etc/containers/storage.conf.d/50-fuse.conf", "kind": "drop-in"}],
                {"mount_program": origin("/etc/containers/storage.conf.d/50-fuse.conf")}),
     "dropin", STORAGE_DROPIN, {}, FIX_ABSENT, ""),
    # only /usr/share has a main file: it stays, Podman reads our drop-in after it
    (conf_facts("6.1.1", True, [VENDOR], {"mount_program": origin(VENDOR["path"], 12, "main")}),
     "dropin", STORAGE_DROPIN, {}, FIX_ABSENT, ""),
    # a drop-in read after ours sets mount_program: refused, naming the file, line and key
    (conf_facts("6.1.1", True, [MAIN, {"path": "/etc/containers/storage.conf.d/zzz-site.conf", "kind": "drop-in"}],
                {"mount_program": origin("/etc/containers/storage.conf.d/zzz-site.conf", 3)}),
     "dropin", STORAGE_DROPIN, {}, FIX_ABSENT,
     "/etc/containers/storage.conf.d/zzz-site.conf line 3 sets mount_program"),
    # ... in /usr/share, whose drop-ins sort with the others by name
    (conf_facts("5.8.6", True, [MAIN], {"mount_program": origin("/usr/share/containers/storage.conf.d/zzzz.conf")}),
     "dropin", STORAGE_DROPIN, {}, FIX_ABSENT, "/usr/share/containers/storage.conf.d/zzzz.conf line 2"),
    # a later drop-in that sets a key we do not change is no reason to refuse
    (conf_facts("6.1.1", True, [MAIN], {"graphroot": origin("/etc/containers/storage.conf.d/zzz.conf")}),
     "dropin", STORAGE_DROPIN, {}, FIX_ABSENT, ""),
    # nothing to override: the drop-in would change nothing Podman uses, so nothing is written
    (conf_facts("6.1.1", True, [MAIN], mount_program=None), "dropin", STORAGE_DROPIN, {}, [], ""),
    # Podman uses another driver: the drop-in sets it
    (conf_facts("6.1.1", True, [MAIN], driver="vfs", mount_program=None), "dropin", STORAGE_DROPIN,
     {"storage.driver": "overlay"}, [], ""),
    # CONTAINERS_STORAGE_CONF: that file alone is read, drop-ins are not: edited in place
    (conf_facts("6.1.1", True, [{"path": "/srv/podman/storage.conf", "kind": "env"}]),
     "env", "/srv/podman/storage.conf", {"storage.driver": "overlay"}, FIX_ABSENT, ""),
]


@pytest.mark.parametrize("facts_,placement,path,settings,absent,refused", PLACEMENT_CASES)
def test_storage_conf_placement_and_refusal(facts_, placement, path, settings, absent, refused):
    step = configure_plan(ConfigureInputs(facts=facts_))["storage_conf"]
    assert (step["placement"], step["path"], step["dropin"]) == (placement, path, placement == "dropin")
    assert (step["settings"], step["absent"]) == (settings, absent)
    if refused:
        assert refused in step["refused"] and "nothing was changed" in step["refused"]
        assert step["run"] is False and step["reason"] == step["refused"]
    else:
        assert step["refused"] == "" and step["run"] is True


def test_the_main_path_is_the_role_variable_where_podman_reads_no_dropins():
    step = configure_plan(ConfigureInputs(facts=conf_facts("4.3.1", False, [MAIN]), path="/srv/s.conf"))["storage_conf"]
    assert (step["placement"], step["path"]) == ("main", "/srv/s.conf")


def test_a_skipped_host_is_not_refused():
    facts_ = conf_facts("6.1.1", True, [MAIN], {"mount_program": origin("/etc/containers/storage.conf.d/zzz.conf")},
                        verdict="needs_podman_upgrade")
    step = configure_plan(ConfigureInputs(facts=facts_))["storage_conf"]
    assert step["refused"] == "" and step["run"] is False


# (drop-in path, read after ours?)
ORDER_CASES = [
    ("/etc/containers/storage.conf.d/50-a.conf", False),
    ("/etc/containers/storage.rootful.conf.d/99-last.conf", False),
    ("/usr/share/containers/storage.conf.d/zzz.conf", True),
    ("/etc/containers/storage.conf.d/zz-idmapguard2.conf", True),
    # the same name in an earlier directory is replaced by ours (ours is in the last directory)
    ("/etc/containers/storage.conf.d/zz-idmapguard.conf", False),
    (STORAGE_DROPIN, False),
    # upper case sorts before lower case, as Go's sort of the names
    ("/etc/containers/storage.conf.d/ZZZ.conf", False),
]


@pytest.mark.parametrize("path,later", ORDER_CASES)
def test_which_dropins_podman_reads_after_ours(path, later):
    assert sorts_after(path) is later


def test_outcome_says_where_the_edit_went():
    plan = configure_plan(ConfigureInputs(facts=conf_facts("6.1.1", True, [MAIN])))
    undo = {"path": STORAGE_DROPIN, "existed": False, "content": None, "mode": None, "owner": None, "group": None}
    out = configure_outcome(plan, {"changed": True, "path": STORAGE_DROPIN, "undo": undo}, None, [])
    assert (out["placement"], out["path"], out["undo"]) == ("dropin", STORAGE_DROPIN, undo)


def unit(name, path, copying, same_files=False):
    return {"unit": name, "storage_conf": {"path": path, "file": "/etc/systemd/system/%s" % name, "line": 3}
            if path else None, "copying": copying, "same_files": same_files}


# (units of the facts, verdict, targets (unit, path, settings, absent))
UNIT_CASES = [
    ([unit("podman.service", "/srv/s.conf", {"mount_program": FUSE})], "fixable_by_config",
     [("podman.service", "/srv/s.conf", {}, FIX_ABSENT)]),
    ([unit("web.service", "/srv/w.conf", {"driver": "vfs"})], "fixable_by_config",
     [("web.service", "/srv/w.conf", {"storage.driver": "overlay"}, [])]),
    # a unit without the variable, one whose files copy nothing, one reading the shell's files: nothing
    ([unit("a.service", None, {"mount_program": FUSE}), unit("b.service", "/srv/b.conf", {}),
      unit("c.service", "/srv/c.conf", {"mount_program": FUSE}, same_files=True)], "fixable_by_config", []),
    # two units naming one file: edited once
    ([unit("a.service", "/srv/s.conf", {"mount_program": FUSE}),
      unit("b.service", "/srv/s.conf", {"mount_program": FUSE})],
     "fixable_by_config", [("a.service", "/srv/s.conf", {}, FIX_ABSENT)]),
    # a host that is not configured
    ([unit("podman.service", "/srv/s.conf", {"mount_program": FUSE})], "needs_podman_upgrade", []),
]


@pytest.mark.parametrize("units,verdict,targets", UNIT_CASES)
def test_files_units_name_in_containers_storage_conf(units, verdict, targets):
    facts_ = conf_facts("6.1.1", True, [MAIN], mount_program=None, verdict=verdict)
    facts_["podman"]["unit_storage_conf"] = units
    step = configure_plan(ConfigureInputs(facts=facts_))["unit_storage_conf"]
    assert [(t["unit"], t["path"], t["settings"], t["absent"]) for t in step["targets"]] == targets
    assert step["run"] is bool(targets)


def test_outcome_lists_the_unit_files_edited_and_their_undo():
    facts_ = conf_facts("6.1.1", True, [MAIN], mount_program=None)
    facts_["podman"]["unit_storage_conf"] = [unit("podman.service", "/srv/s.conf", {"mount_program": FUSE})]
    plan = configure_plan(ConfigureInputs(facts=facts_))
    undo = {"path": "/srv/s.conf", "existed": True, "content": "x", "mode": "0644", "owner": "0", "group": "0"}
    loop = {"changed": True, "results": [{"changed": True, "path": "/srv/s.conf", "undo": undo}]}
    out = configure_outcome(plan, {"changed": False}, None, ["podman.socket"], None, loop)
    assert (out["action"], out["unit_files"], out["unit_undo"]) == ("configured", ["/srv/s.conf"], [undo])
    assert out["restarted"] == ["podman.socket"]
