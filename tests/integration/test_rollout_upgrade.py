"""The rollout's opt-in Podman upgrade on lab hosts over SSH, judged by Podman itself.

- trixie (Podman 5.4) whose only repository carries sid's Podman 5.8: check mode says what it
  would install and changes nothing; the run upgrades Podman with apt, verifies again, proves
  the new Podman with the canary and prunes the copies the old one left; a new map then costs
  no copy (images.json) and about no inode.
- trixie whose repository has only its own 5.4, and bullseye (3.0.1) whose repositories the
  host never fetched: nothing is changed, and the record says there is no Podman >= 5.6.
- bookworm (4.3) whose repository carries trixie's 5.4, wrongly declared a backport: the
  upgrade's proof fails, the host fails, the previous Podman is installed again (the repository
  still has it) and the next batch is never touched.
"""
import json
import os
import random
import subprocess

from test_rollout import FILES, MAPS, NEW_MAP, REPO, create_with_map, mapped_layers, recap

# Lab hosts have no systemd: no guard can run, and the report must not promise a bounded store
# (it did before: "...: the guard keeps the store bounded")
NO_SHARING = "no Podman >= 5.6 in this host's repositories; not guarded: no systemd on this host"
UPGRADE = "idmapguard_rollout_upgrade_podman=true"


def run_playbook(inventory_path: str, report_dir: str, *extra: str) -> subprocess.CompletedProcess:
    """The rollout with the upgrade step on. remediate keeps its own threshold policy (the held
    hosts keep their copies); only a copy's minimum age is lifted (the copies are seconds old)."""
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1")
    argv = ["ansible-playbook", "-i", inventory_path, "idmapguard.storage.rollout",
            "-e", "idmapguard_rollout_report_dir=%s" % report_dir, "-e", UPGRADE,
            "-e", "idmapguard_remediate_min_age=0", *extra]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1200, cwd=REPO, check=False)
    print(proc.stdout[-6000:])
    return proc


def fill(host):
    image = host.image(files=FILES)
    for idmap in MAPS:
        create_with_map(host, image, idmap)
    host.image_tag = image
    return image


def installed(host) -> str:
    return host.exec(["dpkg-query", "-W", "-f", "${Version}", "podman"], check=True).stdout


def rows(report_dir):
    with open(os.path.join(report_dir, "fleet-report.json")) as f:
        report = json.load(f)
    return report, {row["host"]: row for row in report["hosts"]}


def test_upgrade_to_a_sharing_podman_and_hold_the_others(lab_host, inventory, tmp_path):
    up = lab_host("trixie", apt_repo="sid-podman")
    held = lab_host("trixie", apt_repo="trixie-podman")
    old = lab_host("bullseye")
    hosts = [up, held, old]
    for host in hosts:
        fill(host)
    assert [mapped_layers(h) for h in hosts] == [2, 2, 2]
    versions = {h.name: installed(h) for h in hosts}
    inv = inventory(*hosts)
    report_dir = str(tmp_path / "report")
    extra = ["-e", '{"idmapguard_rollout_batches": [1, 2, "100%"]}']

    check = run_playbook(inv, report_dir, "--check", *extra)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr
    assert {h.name: installed(h) for h in hosts} == versions
    assert [mapped_layers(h) for h in hosts] == [2, 2, 2]
    _report, by_host = rows(report_dir)
    assert by_host[up.name]["podman_upgrade"]["note"] == \
        "would upgrade Podman 5.4.2+ds1-2+b2 -> 5.8.6+ds1-3 (apt)"
    assert "would upgrade Podman 5.4.2+ds1-2+b2 -> 5.8.6+ds1-3 (apt)" in by_host[up.name]["changes"]
    assert by_host[held.name]["podman_upgrade"]["note"].startswith(NO_SHARING)

    first = run_playbook(inv, report_dir, *extra)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap(first.stdout).values())

    # Podman itself: the upgraded host runs 5.8 and its old copies are gone ...
    assert up.podman_version() == "5.8.6" and installed(up) == "5.8.6+ds1-3"
    assert mapped_layers(up) == 0
    # ... and a new non-contiguous map costs no copy and (about) no inode
    before = up.inodes_used()
    create_with_map(up, up.image_tag, NEW_MAP, keep=True)
    assert mapped_layers(up) == 0
    assert up.inodes_used() - before < FILES // 10
    # the others are untouched: same Podman, same copies
    assert installed(held) == versions[held.name] and installed(old) == versions[old.name]
    assert mapped_layers(held) == 2 and mapped_layers(old) == 2

    report, by_host = rows(report_dir)
    row = by_host[up.name]
    assert (row["verdict_before"], row["verdict"]) == ("needs_podman_upgrade", "shares")
    assert row["podman_upgrade"]["upgraded"] is True and row["podman_upgrade"]["target"] == "5.8.6+ds1-3"
    # (the canary's inode delta, not a copy: Podman 5.8's first run adds a few files of its own)
    assert row["proof"]["passed"] is True and row["noncontiguous_map_cost"] < FILES // 10
    assert row["known_issue"] == ["commit"]  # 5.8.6: container-libs #1126, known, not fatal
    assert row["copies_removed"] == 2 and row["mapped_copies_after"] == 0
    assert "upgraded Podman 5.4.2+ds1-2+b2 -> 5.8.6+ds1-3 (apt)" in row["changes"]
    for host in (held, old):
        assert by_host[host.name]["verdict"] == "needs_podman_upgrade"
        assert by_host[host.name]["podman_upgrade"]["note"].startswith(NO_SHARING)
        assert not [c for c in by_host[host.name]["changes"] if "odman" in c or "removed" in c]
    assert report["summary"]["podman_upgraded"] == 1
    with open(os.path.join(report_dir, "fleet-report.md")) as f:
        md = f.read()
    assert "**Podman upgrade:** " + NO_SHARING in md
    assert "keeps the store bounded" not in md
    for host in (held, old):
        guard = by_host[host.name]["guard"]
        assert (guard["status"], guard["running"]) == ("not_installed", False)
        assert guard["line"].startswith("not guarded: no systemd")
    assert report["summary"]["unguarded"] == 2

    # converged: nothing more to do anywhere
    second = run_playbook(inv, report_dir, *extra)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    rc = recap(second.stdout)
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in rc.values()), rc


def test_failed_proof_after_an_upgrade_reinstalls_the_previous_podman(lab_host, inventory, tmp_path):
    # the inventory lists a suite's hosts by name: the first one is the canary batch
    tag = "%d-%04x" % (os.getpid(), random.randrange(16 ** 4))
    canary = lab_host("bookworm", name="upg-a-" + tag, apt_repo="trixie-podman-bookworm")
    other = lab_host("bookworm", name="upg-b-" + tag)
    fill(canary)
    before = installed(canary)
    inv = inventory(canary, other)
    report_dir = str(tmp_path / "report")
    # 5.4.2 is not a backport of the sharing change: the canary shows it still copies
    proc = run_playbook(inv, report_dir, "-e", '{"idmapguard_rollout_upgrade_backports": ["5.4.2+ds1-2+b2"]}',
                        "-e", '{"idmapguard_rollout_batches": [1, "100%"]}')
    assert proc.returncode != 0
    rc = recap(proc.stdout)
    assert rc[canary.name]["failed"] == 1 and other.name not in rc

    # Podman itself: the previous version is back and works with the store as it was
    assert installed(canary) == before and canary.podman_version() == "4.3.1"
    assert mapped_layers(canary) == 2  # nothing pruned on a failed host
    assert canary.podman("images", "--format", "{{.Repository}}", check=True).stdout.strip()
    create_with_map(canary, canary.image_tag, NEW_MAP)

    _report, by_host = rows(report_dir)
    row = by_host[canary.name]
    assert row["failed"] is True and row["rolled_back"] is True
    assert "still added a copy" in row["error"] and "4.3.1+ds1-8+deb12u1+b3 is installed again" in row["error"]
    assert row["podman_upgrade"]["rolled_back"] is True
    assert "installed podman=4.3.1+ds1-8+deb12u1+b3 again" in row["changes"]
    assert row["verdict"] == "needs_podman_upgrade"
    assert by_host[other.name]["verdict"] == "not_reached"
