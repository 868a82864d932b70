"""A stale negative probe answer cached by containers/storage, end to end on a lab host (issue 15).

sid (Podman 5.8.6, native overlay, ext4 store) shares layers across non-contiguous maps, until
c/storage's cached answer `<runroot>/overlay/idmapped-lower-dir-false` says otherwise: a probe
that failed once (at 0 free inodes, a transient error) leaves it until the next boot. Here it is
written by hand. Then a new non-contiguous map costs a full copy; idmap_support must call that
fixable_by_config (never "upgrade Podman"); the rollout's configure step removes exactly that
file and its proof shows the next map costs no copy. Everything asserted about copies and
shifting comes from Podman itself (images.json, `podman info`, the store's inode count).
"""
import json
import os
import re
import subprocess
from typing import Any, Dict, List, Optional

from test_verify import install_helper, run_module  # pylint: disable=import-error

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STORE = "/var/lib/containers/storage"
FILES = 300


def podman_info(host) -> Dict[str, Any]:
    return json.loads(host.podman("info", "--format", "json", check=True).stdout)


def mapped_layers(host) -> int:
    with open(host.path(STORE + "/overlay-images/images.json")) as f:
        return sum(len(img.get("mapped-layers") or []) for img in json.load(f))


def new_map_cost(host, image: str, base: int) -> Dict[str, int]:
    """Create (never start) a container with a map this store has not seen; what it cost."""
    args: List[str] = []
    for extent in ("0:%d:65536" % base, "531571:531571:1", "19997967:19997967:1"):
        args += ["--uidmap", extent, "--gidmap", extent]
    copies, inodes = mapped_layers(host), host.inodes_used()
    host.podman("create", "--name", "map-%d" % base, *args, image, "/bin/none", check=True)
    return {"mapped_layers": mapped_layers(host) - copies, "inodes": host.inodes_used() - inodes}


def cache_names(host, runroot: str) -> List[str]:
    return sorted(os.listdir(host.path(runroot + "/overlay")))


def rollout(inventory_path: str, report_dir: str, *extra: str, env: Optional[Dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1", **(env or {}))
    argv = ["ansible-playbook", "-i", inventory_path, "idmapguard.storage.rollout",
            "-e", "idmapguard_rollout_report_dir=%s" % report_dir, *extra]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    print(proc.stdout[-4000:])
    return proc


def report_row(report_dir: str, host) -> Dict[str, Any]:
    with open(os.path.join(report_dir, "fleet-report.json")) as f:
        return {row["host"]: row for row in json.load(f)["hosts"]}[host.name]


def changed_count(out: str, host) -> int:
    m = re.search(r"(?m)^%s\s+: .*changed=(\d+)" % re.escape(host.name), out)
    assert m, out[-2000:]
    return int(m.group(1))


def excerpt(facts: Dict[str, Any]) -> Dict[str, Any]:
    podman = facts["podman"]
    return {"verdict": facts["verdict"], "reason_codes": facts["reason_codes"], "reasons": facts["reasons"],
            "remedy": facts["remedy"], "podman": {k: podman.get(k) for k in (
                "version", "supports_shifting", "graph_status", "probe_cache")},
            "canary": {k: (facts.get("canary") or {}).get(k) for k in ("new_mapped_layers", "new_mapped_layer_inodes")}}


def test_stale_negative_cache_verify_rollout_then_no_copy(lab_host, inventory, tmp_path):
    host = lab_host("sid")
    install_helper(host)
    image = host.image(files=FILES)
    assert host.podman_version().startswith("5.8")
    info = podman_info(host)
    runroot = info["store"]["runRoot"]  # where this Podman keeps c/storage's cached answers
    assert info["store"]["graphDriverName"] == "overlay" and info["store"]["graphStatus"]["Supports shifting"] == "true"
    assert "idmapped-lower-dir-true" in cache_names(host, runroot)

    # the negative answer, by hand, as a probe that failed once leaves it
    cache = runroot + "/overlay"
    host.exec(["sh", "-c", "rm -f %s/idmapped-lower-dir-true && : > %s/idmapped-lower-dir-false" % (cache, cache)],
              check=True)
    assert podman_info(host)["store"]["graphStatus"]["Supports shifting"] == "false"
    cost = new_map_cost(host, image, 2000000)
    assert cost["mapped_layers"] == 1 and cost["inodes"] > FILES, cost  # a full copy of the image

    # verify: fixable_by_config, the stale file named, not "upgrade Podman"
    inv = inventory(host)
    before = run_module(inv, host, "canary=true")
    print("BEFORE", json.dumps(excerpt(before), indent=1))
    assert before["verdict"] == "fixable_by_config" and before["reason_codes"] == ["probe_cache_stale"]
    assert before["podman"]["probe_cache"]["stale"] == ["idmapped-lower-dir"]
    assert before["podman"]["probe_cache"]["markers"]["idmapped-lower-dir"] is False
    assert before["podman"]["supports_shifting"] is False
    assert before["canary"]["new_mapped_layers"] == 1  # Podman copies right now
    assert cache + "/idmapped-lower-dir-false" in before["remedy"]
    assert "pgrade" not in before["remedy"] + " ".join(before["reasons"])
    assert "idmapped-lower-dir-false" in cache_names(host, runroot)  # verify changed nothing there

    # --check: says what it would remove, removes nothing
    report_dir = str(tmp_path / "report")
    check = rollout(inv, report_dir, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr
    assert "idmapped-lower-dir-false" in cache_names(host, runroot)
    assert "would remove stale cached probe answer %s/idmapped-lower-dir-false" % cache in report_row(
        report_dir, host)["changes"]

    first = rollout(inv, report_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    row = report_row(report_dir, host)
    print("ROLLOUT", json.dumps({k: row[k] for k in ("verdict_before", "verdict", "changes", "proof",
                                                     "noncontiguous_map_cost")}, indent=1))
    assert row["verdict_before"] == "fixable_by_config" and row["verdict"] == "shares"
    assert "removed stale cached probe answer %s/idmapped-lower-dir-false" % cache in row["changes"]
    assert row["proof"]["passed"] is True and row["proof"]["new_mapped_layers"] == 0
    # a default rollout (no proof_accept) keeps the change: 5.8.6's commit failure is #1126, known
    assert row["known_issue"] == ["commit"] and not row["rolled_back"] and not row["failed"]
    assert row["proof"]["known_issues"]["commit"][0]["id"] == "container-libs#1126"
    # c/storage probed again and cached the true answer; nothing else in the cache was touched
    names = cache_names(host, runroot)
    assert "idmapped-lower-dir-true" in names and "idmapped-lower-dir-false" not in names
    assert {"overlay-true", "native-diff()-true", "metacopy()-false", "volatile-true"} <= set(names)

    # what Podman itself now says and does
    assert podman_info(host)["store"]["graphStatus"]["Supports shifting"] == "true"
    cost = new_map_cost(host, image, 3000000)
    assert cost["mapped_layers"] == 0 and cost["inodes"] < 50, cost
    after = run_module(inv, host)
    print("AFTER", json.dumps(excerpt(after), indent=1))
    assert after["verdict"] == "shares" and after["reason_codes"] == []
    assert after["podman"]["probe_cache"]["markers"]["idmapped-lower-dir"] is True

    second = rollout(inv, report_dir)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    assert changed_count(second.stdout, host) == 0


def test_helper_installed_by_the_rollout_judges_the_stale_cache_with_two_verifies(lab_host, inventory, tmp_path):
    """A fresh host: the helper is missing, so the first verify cannot prove the cached negative
    answer stale (the probe alone can). The helper role installs the helper and runs that probe;
    the verdict is made again from it on the controller (issue 19: no second idmap_support for the
    helper), and configure decides from that verdict: it removes the stale answer, the proof after
    it passes, and idmap_support ran twice in all (a callback counts the module calls)."""
    host = lab_host("sid")
    assert not os.path.exists(host.path("/usr/local/libexec/idmapguard/idmapped-mount"))
    runroot = podman_info(host)["store"]["runRoot"]
    cache = runroot + "/overlay"
    host.exec(["sh", "-c", "rm -f %s/idmapped-lower-dir-true && : > %s/idmapped-lower-dir-false" % (cache, cache)],
              check=True)
    assert podman_info(host)["store"]["graphStatus"]["Supports shifting"] == "false"
    inv = inventory(host)
    report_dir = str(tmp_path / "report")
    counts = str(tmp_path / "counts.json")
    proc = rollout(inv, report_dir, env={"ANSIBLE_CALLBACK_PLUGINS": os.path.join(REPO, "tests", "bench", "callback"),
                                         "ANSIBLE_CALLBACKS_ENABLED": "count_tasks", "BENCH_COUNT_FILE": counts})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    row = report_row(report_dir, host)
    print("ROLLOUT", json.dumps({k: row[k] for k in ("verdict_before", "reason_codes", "verdict", "changes")}, indent=1))
    # judged with the probe the installed helper ran: stale, not "unproven"
    assert row["verdict_before"] == "fixable_by_config" and row["verdict"] == "shares"
    assert row["changes"][0] == "installed helper at /usr/local/libexec/idmapguard/idmapped-mount"
    assert "removed stale cached probe answer %s/idmapped-lower-dir-false" % cache in row["changes"]
    assert row["proof"]["passed"] is True and row["proof"]["new_mapped_layers"] == 0
    with open(counts) as f:
        assert json.load(f)[host.name]["modules"]["idmap_support"] == 2
    # Podman itself
    assert podman_info(host)["store"]["graphStatus"]["Supports shifting"] == "true"
    assert "idmapped-lower-dir-false" not in cache_names(host, runroot)


def test_mount_program_marker_without_mount_program_is_found(lab_host, inventory):
    """graphroot's overlay/.has-mount-program says true (layers were once written through a mount
    program): c/storage takes fuse-overlayfs from PATH with nothing configured, and copies."""
    host = lab_host("sid")
    install_helper(host)
    image = host.image(files=40)
    marker = STORE + "/overlay/.has-mount-program"
    host.exec(["sh", "-c", "printf true > %s" % marker], check=True)
    store = podman_info(host)["store"]
    assert store["graphOptions"] == {} and store["graphStatus"]["Native Overlay Diff"] == "false"
    assert new_map_cost(host, image, 2000000)["mapped_layers"] == 1
    result = run_module(inventory(host), host)
    print(json.dumps(excerpt(result), indent=1))
    assert result["verdict"] == "fixable_by_config" and result["reason_codes"] == ["mount_program_marker"]
    assert result["podman"]["mount_program"] is None
    assert result["podman"]["mount_program_marker"]["content"] == "true"
    assert marker in result["reasons"][0] and "pgrade" not in result["remedy"]
