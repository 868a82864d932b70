# -*- coding: utf-8 -*-
"""metrics_textfile: the exposition text, where it goes, how it is written, what each metric
says. promtool's own judgement of the rendered files: tests/metrics/test_promtool.py."""

import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import metrics_textfile as mt


def test_render_help_type_samples_and_escaping():
    metric = mt.Metric("idmapguard_x_inodes", "gauge", "a\\b\nc").add(3, path='/a"b\\c\nd')
    text = mt.render([metric, mt.Metric("idmapguard_empty", "gauge", "no samples")])
    assert text == ('# HELP idmapguard_x_inodes a\\\\b\\nc\n# TYPE idmapguard_x_inodes gauge\n'
                    'idmapguard_x_inodes{path="/a\\"b\\\\c\\nd"} 3\n')


@pytest.mark.parametrize("name,kind,why", [
    ("1bad", "gauge", "not a metric name"),
    ("idmapguard_x_total", "gauge", "only counters"),
    ("idmapguard_x", "counter", "only counters"),
    ("idmapguard_x", "summary", "gauge or counter"),
])
def test_metric_refuses_bad_definitions(name, kind, why):
    with pytest.raises(mt.MetricsError, match=why):
        mt.Metric(name, kind, "h")


def test_metric_refuses_bad_labels_values_and_duplicates():
    with pytest.raises(mt.MetricsError, match="label name"):
        mt.Metric("idmapguard_x", "gauge", "h").add(1, **{"__x": "y"})
    with pytest.raises(mt.MetricsError, match="not a number"):
        mt.Metric("idmapguard_x", "gauge", "h").add("3")
    with pytest.raises(mt.MetricsError, match="twice"):
        mt.render([mt.Metric("idmapguard_x", "gauge", "h").add(1)] * 2)


@pytest.mark.parametrize("setting,existing,expected", [
    (None, [mt.DEBIAN_TEXTFILE_DIR, mt.RHEL_TEXTFILE_DIR], mt.DEBIAN_TEXTFILE_DIR),
    ("auto", [mt.RHEL_TEXTFILE_DIR], mt.RHEL_TEXTFILE_DIR),
    ("auto", [], None),                           # no node_exporter: nothing written
    ("", [mt.DEBIAN_TEXTFILE_DIR], None),         # off
    ("/srv/metrics", [], "/srv/metrics"),         # explicit: as given (created when written)
])
def test_resolve_directory(setting, existing, expected):
    assert mt.resolve_directory(setting, isdir=lambda p: p in existing) == expected


def test_resolve_directory_refuses_a_relative_path():
    with pytest.raises(mt.MetricsError, match="absolute"):
        mt.resolve_directory("metrics")


def test_write_textfile_atomic_idempotent_check_mode(tmp_path):
    directory = str(tmp_path / "tf")
    assert mt.write_textfile(directory, "a.prom", "x 1\n", check_mode=True) == (True, None)
    assert not os.path.exists(directory)
    assert mt.write_textfile(directory, "a.prom", "x 1\n") == (True, None)
    assert mt.write_textfile(directory, "a.prom", "x 1\n") == (False, "x 1\n")
    assert mt.write_textfile(directory, "a.prom", "x 2\n") == (True, "x 1\n")
    assert os.listdir(directory) == ["a.prom"]    # no temp file left behind
    assert oct(os.stat(os.path.join(directory, "a.prom")).st_mode & 0o777) == "0o644"
    with pytest.raises(mt.MetricsError, match="NAME.prom"):
        mt.write_textfile(directory, "a.txt", "x 1\n")


@pytest.mark.parametrize("reason,label", [
    ("over budget: cache 9 > 8 inodes", "over_budget"),
    ("low free inodes: 3 < 10", "low_free_inodes"),
    ("something new", "other"),
    ("", "other"),
])
def test_eviction_reason_label(reason, label):
    assert mt.eviction_reason_label(reason) == label


STATUS = {
    "updated": 1764700000.5, "passes": 7, "catching_up": True, "staging_left": 1,
    "store": {"graphroot": "/var/lib/containers/storage", "runroot": "/run/containers/storage"},
    "budget": {"budget_inodes": 400, "low_free_inodes": 400, "inodes_total": 4000},
    "cache": {"copies": 2, "inodes": 300, "in_use_copies": 1, "all_copies": 3},
    "filesystem": {"inodes_total": 4000, "inodes_used": 3500, "inodes_free": 500},
    "evictions": {"total": 5, "inodes": 750, "by_reason": {"over_budget": 4, "low_free_inodes": 1}},
    "stranded": [{"path": "/s/stranded-1/x.stranded-EPERM", "errno": "EPERM", "what_to_do": "chattr -i"}],
}


def samples(metrics):
    return {(m.name, tuple(sorted(labels.items()))): value for m in metrics for labels, value in m.samples}


def test_guard_metrics_from_the_status():
    got = samples(mt.guard_metrics(STATUS))
    g = (("graphroot", "/var/lib/containers/storage"),)
    assert got[("idmapguard_guard_budget_inodes", g)] == 400
    assert got[("idmapguard_guard_cached_copies", g)] == 2
    assert got[("idmapguard_guard_cached_inodes", g)] == 300
    assert got[("idmapguard_guard_copies_in_use", g)] == 1
    assert got[("idmapguard_guard_mapped_copies", g)] == 3
    assert got[("idmapguard_guard_evictions_total", (g[0], ("reason", "over_budget")))] == 4
    assert got[("idmapguard_guard_evictions_total", (g[0], ("reason", "low_free_inodes")))] == 1
    assert got[("idmapguard_guard_evicted_inodes_total", g)] == 750
    assert got[("idmapguard_guard_last_pass_timestamp_seconds", g)] == 1764700000.5
    assert got[("idmapguard_guard_catching_up", g)] == 1
    assert got[("idmapguard_guard_staging_left", g)] == 1
    assert got[("idmapguard_guard_stranded_entries", g)] == 1
    assert got[("idmapguard_store_inodes", g)] == 4000
    assert got[("idmapguard_store_inodes_free", g)] == 500


def test_guard_metrics_of_a_fresh_guard_count_zero_evictions_per_reason():
    got = samples(mt.guard_metrics({"store": {"graphroot": "/g"}}))
    assert got[("idmapguard_guard_evictions_total", (("graphroot", "/g"), ("reason", "over_budget")))] == 0
    assert ("idmapguard_guard_budget_inodes", (("graphroot", "/g"),)) not in got   # unknown: no sample


def test_guard_metrics_mark_an_inconsistent_store():
    g = ("graphroot", "/g")
    bad = samples(mt.guard_metrics({"store": {"graphroot": "/g"}, "consistency": "inconsistent",
                                    "stranded": [{"path": "/g/s/a.stranded-EPERM", "errno": "EPERM"}]}))
    assert bad[("idmapguard_guard_store_inconsistent", (g,))] == 1
    assert bad[("idmapguard_guard_stranded_entries", (g,))] == 1
    clean = samples(mt.guard_metrics({"store": {"graphroot": "/g"}}))
    assert clean[("idmapguard_guard_store_inconsistent", (g,))] == 0


RECORD = {"host": "h", "verdict": "needs_podman_upgrade", "podman_version": "4.3.1",
          "mapped_copies_before": 9, "mapped_copies_after": 4, "noncontiguous_map_cost": 812,
          "inodes_total": 4000, "inodes_used_before": 3900, "inodes_used_after": 2000}


@pytest.mark.parametrize("upgrade,offered", [
    ({}, None),                                                        # the upgrade step did not list
    ({"package_manager": "apt", "target": "5.8.6+ds1-1"}, 1),
    ({"package_manager": "apt", "target": None, "note": "no Podman >= 5.6"}, 0),
])
def test_host_metrics(upgrade, offered):
    got = samples(mt.host_metrics(dict(RECORD, podman_upgrade=upgrade), helper_version="0.3.0"))
    verdicts = {dict(k[1])["verdict"]: v for k, v in got.items() if k[0] == "idmapguard_host_verdict"}
    assert verdicts["needs_podman_upgrade"] == 1 and verdicts["shares"] == 0
    assert sum(verdicts.values()) == 1 and set(mt.VERDICTS) <= set(verdicts)
    assert got[("idmapguard_host_mapped_copies", ())] == 4
    assert got[("idmapguard_host_noncontiguous_map_cost_inodes", ())] == 812
    assert got[("idmapguard_host_store_inodes_used", ())] == 2000
    assert got.get(("idmapguard_host_podman_upgrade_available", ())) == offered
    info = [k for k in got if k[0] == "idmapguard_host_info"]
    assert info == [("idmapguard_host_info", (("helper_version", "0.3.0"), ("podman_version", "4.3.1")))]


def test_host_metrics_of_a_failed_host_without_figures():
    got = samples(mt.host_metrics({"host": "h", "failed": True}))
    assert got[("idmapguard_host_verdict", (("verdict", "failed"),))] == 1
    assert ("idmapguard_host_mapped_copies", ()) not in got


def test_write_host_metrics_module_work(tmp_path):
    params = {"dest": str(tmp_path / "tf"), "record": RECORD, "helper_version": "0.3.0"}
    planned = mt.write_host_metrics(params, check_mode=True)
    assert planned["changed"] and planned["diff"]["before"] == "" and not (tmp_path / "tf").exists()
    done = mt.write_host_metrics(params)
    assert done["changed"] and done["path"] == str(tmp_path / "tf" / mt.HOST_FILE)
    assert (tmp_path / "tf" / mt.HOST_FILE).read_text() == done["metrics"] == done["diff"]["after"]
    again = mt.write_host_metrics(params)
    assert not again["changed"] and again["diff"]["before"] == again["diff"]["after"]
    off = mt.write_host_metrics(dict(params, dest=""))
    assert not off["changed"] and "off" in off["skipped_reason"]


def test_observe_host_file(tmp_path):
    dest = str(tmp_path / "tf")
    assert mt.observe_host_file(dest) == {"dir": dest, "sha256": None}
    done = mt.write_host_metrics({"dest": dest, "record": RECORD, "helper_version": ""})
    seen = mt.observe_host_file(dest)
    assert seen["dir"] == dest and len(seen["sha256"]) == 64
    assert mt.observe_host_file("") == {"dir": None, "sha256": None}
    # a bad setting is left to the write, which fails with the reason
    assert mt.observe_host_file("relative/dir") == {"dir": "relative/dir", "sha256": None}
    assert done["changed"]
