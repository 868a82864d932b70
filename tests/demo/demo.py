#!/usr/bin/env python
"""`make demo`: the whole story on lab hosts, with real Podman, over real SSH.

1. Lab hosts: bullseye (Podman 3.0), bookworm (4.3), two trixie hosts (5.4): one whose
   package repository carries a Podman that shares (sid's 5.8), one whose repository has only
   its own 5.4; sid (5.8) and sid with mount_program = fuse-overlayfs; Podman 6.1.1 (the podman6
   suite, Debian experimental) with mount_program = fuse-overlayfs; each with a small
   container store (few inodes).
2. The problem: a 300-file image, then containers with distinct non-contiguous
   --uidmap/--gidmap; inode use after each map, until bookworm's store is out of inodes.
3. The fix: the idmapguard.storage.rollout playbook over SSH (canary batch first), with the
   opt-in Podman upgrade step on (idmapguard_rollout_upgrade_podman) and, on the trixie host
   that cannot upgrade, the remediate role's on-host copy-cache guard (a systemd service on a
   real host; lab hosts have no systemd, so the demo runs one pass of the service's command,
   `idmapguard-guard once`, itself).
4. The result per host: Podman and verdict before/after, inode use before/after, what a new
   non-contiguous map costs now (measured with Podman), and where the fleet report is; then
   the held host is filled with new maps again and the guard brings it back under its bound.
Never touches this machine's /etc/containers or /var/lib/containers; the lab hosts are torn
down at the end, also on failure or Ctrl-C.
"""
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.lab.lab import Lab  # noqa: E402

FILES = int(os.environ.get("DEMO_FILES", "300"))
INODES = int(os.environ.get("DEMO_INODES", "4096"))
MAPS_PER_HOST = int(os.environ.get("DEMO_MAPS", "3"))
OUT = os.environ.get("DEMO_OUT", os.path.join(REPO, "demo-output"))
# label, suite, mount_program, lab package repository (tests/lab/repo.py)
HOSTS = [("bullseye", "bullseye", None, None), ("bookworm", "bookworm", None, None),
         ("trixie-up", "trixie", None, "sid-podman"), ("trixie-held", "trixie", None, "trixie-podman"),
         ("sid", "sid", None, None), ("sid-fuse", "sid", "/usr/bin/fuse-overlayfs", None),
         ("podman6-fuse", "podman6", "/usr/bin/fuse-overlayfs", None)]
GUARDED = "trixie-held"
GUARD_THRESHOLD = 40  # fill the store past this percent of its inodes ...
GUARD_BUDGET = 10  # ... then the guard evicts down to this budget (the role's default)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def noncontiguous_map(i: int) -> List[str]:
    """A distinct 3-extent map per i, the shape that makes older Podman copy the top layer."""
    extents = ["0:%d:65536" % (1065537 + i * 100000), "531571:531571:1", "19997967:19997967:1"]
    args: List[str] = []
    for e in extents:
        args += ["--uidmap", e, "--gidmap", e]
    return args


def mapped_layers(host) -> int:
    path = host.path("/var/lib/containers/storage/overlay-images/images.json")
    try:
        with open(path) as f:
            return sum(len(img.get("mapped-layers") or []) for img in json.load(f))
    except (OSError, ValueError):
        return 0


def create_rm(host, image: str, i: int) -> Optional[str]:
    """podman create alone makes the copy; rm keeps it. Returns Podman's error, if any."""
    name = "demo-%d" % i
    proc = host.podman("create", "--name", name, *noncontiguous_map(i), image, "/bin/true")
    host.podman("rm", "-f", name)
    if proc.returncode != 0:
        return (proc.stderr or proc.stdout).strip().splitlines()[-1] if (proc.stderr or proc.stdout) else "failed"
    return None


def map_cost(host, image: str, i: int) -> Optional[int]:
    """Inodes a new non-contiguous map keeps after create+rm, measured on the store."""
    before = host.inodes_used()
    err = create_rm(host, image, i)
    if err:
        return None
    return host.inodes_used() - before


def fill(label: str, host, image: str, maps: int, exhaust: bool) -> int:
    """Create containers with distinct maps; print inode use per map. Returns maps created."""
    total = os.statvfs(host.path("/var/lib/containers/storage")).f_files
    say("  %-9s map  inodes used (of %d)  mapped copies" % (label, total))
    say("  %-9s   -  %6d                %d" % ("", host.inodes_used(), mapped_layers(host)))
    i = 0
    while True:
        i += 1
        if not exhaust and i > maps:
            return maps
        err = create_rm(host, image, i)
        if err:
            say("  %-9s %3d  %6d                %d   <- podman create failed: %s"
                % ("", i, host.inodes_used(), mapped_layers(host), err[:90]))
            return i - 1
        say("  %-9s %3d  %6d                %d" % ("", i, host.inodes_used(), mapped_layers(host)))
        if i >= 200:
            return i


def outcome(label: str, row: Dict[str, object]) -> str:
    """One phrase per host: the upgrade step's outcome, the guard, what remediate/configure did."""
    upgrade = row.get("podman_upgrade") or {}
    # a proof check that failed as a known upstream bug (container-libs #1126 on 5.8.6): not fatal
    known = ", ".join(str(n) for n in row.get("known_issue") or [])  # type: ignore[union-attr]
    known = "; known_issue: %s" % known if known else ""
    if isinstance(upgrade, dict) and upgrade.get("upgraded"):
        return "Podman upgraded from its repository, proof passed, old copies pruned" + known
    parts = []
    if isinstance(upgrade, dict) and upgrade.get("note"):
        parts.append(str(upgrade["note"]).split(":", maxsplit=1)[0])
    if label == GUARDED:
        parts.append("guard installed")
    changes = [str(c) for c in row.get("changes") or []]  # type: ignore[union-attr]
    parts += [c.split(" (")[0] for c in changes if c.startswith("removed") or "storage.conf" in c]
    return ("; ".join(parts) or ("nothing to do" if row.get("verdict") == "shares" else "reported only")) + known


def guard_once(host, image: str) -> None:
    """Fill the held host with new maps past the guard's bound, then run one pass of the guard."""
    total = os.statvfs(host.path("/var/lib/containers/storage")).f_files
    i = 500
    while 100.0 * host.inodes_used() / total < GUARD_THRESHOLD + 5 and i < 540:
        if create_rm(host, image, i):
            break
        i += 1
    say("  after %d new maps: %d of %d inodes used (%.0f%%), %d mapped copies"
        % (i - 500, host.inodes_used(), total, 100.0 * host.inodes_used() / total, mapped_layers(host)))
    unit = host.exec(["sh", "-c", "sed -n 's/^ExecStart=//p' /etc/systemd/system/idmapguard-guard.service"]).stdout.strip()
    if not unit.endswith(" watch"):
        say("  (the guard is not installed: see the rollout log)")
        return
    command = unit[:-len(" watch")] + " once"
    say("  one pass of the guard service: " + command)
    proc = host.exec(command)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        say("  guard: evicted %s copies (rc %d)" % (result.get("evicted"), proc.returncode))
    except (ValueError, IndexError):
        say("  guard rc %d: %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()[-300:]))
    say("  now: %d of %d inodes used (%.0f%%), %d mapped copies: the store stays bounded"
        % (host.inodes_used(), total, 100.0 * host.inodes_used() / total, mapped_layers(host)))


def ansible_env() -> Dict[str, str]:
    return dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1",
                ANSIBLE_NOCOLOR="1")


def main() -> int:
    if os.geteuid() != 0:
        say("make demo needs root (lab hosts use namespaces, loop devices and mounts)")
        return 1
    os.makedirs(OUT, exist_ok=True)
    lab = Lab(log=lambda m: say("  " + m))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    hosts = {}
    try:
        say("== 1. lab hosts (Debian root filesystems with their own Podman, store: ext4 with %d inodes)" % INODES)
        for label, suite, mp, repo in HOSTS:
            hosts[label] = lab.up(name="demo-%s-%d" % (label, os.getpid() % 10000), suite=suite,
                                  inodes=INODES, mount_program=mp, apt_repo=repo)
        say()
        say("== 2. the problem: a %d-file image, one container per distinct non-contiguous ID map" % FILES)
        images = {}
        for label, host in hosts.items():
            images[label] = host.image(files=FILES)
            fill(label, host, images[label], MAPS_PER_HOST, exhaust=(label == "bookworm"))
        say()
        before = {label: (h.inodes_used(), mapped_layers(h)) for label, h in hosts.items()}
        podman_before = {label: h.podman_version() for label, h in hosts.items()}

        say("== 3. the fix: ansible-playbook idmapguard.storage.rollout over SSH")
        inv = os.path.join(OUT, "inventory.ini")
        with open(inv, "w") as f:
            f.write(lab.inventory([h.name for h in hosts.values()]))
            # the host that cannot upgrade gets the guard (a timer on a real host)
            f.write("[guarded]\n%s\n\n[guarded:vars]\nidmapguard_remediate_guard=true\n"
                    "idmapguard_remediate_guard_enable=false\nidmapguard_remediate_guard_budget_percent=%d\n"
                    "idmapguard_remediate_guard_grace=0\n" % (hosts[GUARDED].name, GUARD_BUDGET))
        report_dir = os.path.join(OUT, "report")
        argv = ["ansible-playbook", "-i", inv, "idmapguard.storage.rollout",
                "-e", "idmapguard_rollout_report_dir=" + report_dir,
                # the sid-fuse store was written through fuse-overlayfs: let configure scan it
                # and clear its .has-mount-program marker when that is safe
                "-e", "idmapguard_configure_allow_store_change=true",
                # reclaim every unused copy now: the demo's copies are seconds old, and the
                # role's default policy waits for 80 % inode use and copies older than 5 min
                "-e", "idmapguard_remediate_policy=always", "-e", "idmapguard_remediate_min_age=0",
                # opt-in: upgrade Podman where the host's own repositories have one that shares
                "-e", "idmapguard_rollout_upgrade_podman=true",
                "-e", '{"idmapguard_rollout_batches": [1, 2, "100%"]}']
        say("  " + " ".join(argv))
        log = os.path.join(OUT, "rollout.log")
        with open(log, "w") as f:
            proc = subprocess.run(argv, env=ansible_env(), stdout=f, stderr=subprocess.STDOUT, cwd=REPO, check=False)
        with open(log) as f:
            lines = f.read().splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")), len(lines))
        for line in lines[start:]:
            if line.strip():
                say("  " + line)
        say("  full log: %s (exit %d)" % (log, proc.returncode))
        say()

        say("== 4. after: what a new non-contiguous map costs now (measured with Podman)")
        report = {}
        try:
            with open(os.path.join(report_dir, "fleet-report.json")) as f:
                report = {row["host"]: row for row in json.load(f)["hosts"]}
        except (OSError, ValueError):
            say("  (no fleet report: the rollout failed early, see the log)")
        rows = []
        for n, (label, host) in enumerate(hosts.items()):
            after = (host.inodes_used(), mapped_layers(host))  # before the measurement below
            cost = map_cost(host, images[label], 900 + n)
            row = report.get(host.name, {})
            version = host.podman_version()
            rows.append((label, podman_before[label] if version == podman_before[label]
                         else "%s -> %s" % (podman_before[label], version),
                         row.get("verdict_before", "?"), row.get("verdict", "?"),
                         before[label][0], after[0], before[label][1], after[1],
                         "failed" if cost is None else "%d" % cost, outcome(label, row)))
        hdr = ("host", "podman", "verdict before", "verdict after", "inodes before", "after",
               "copies before", "after", "new map costs (inodes)", "what the rollout did")
        widths = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
        fmt = "  " + "  ".join("%%-%ds" % w for w in widths)
        say(fmt % hdr)
        say(fmt % tuple("-" * w for w in widths))
        for r in rows:
            say(fmt % r)
        say()
        try:
            with open(os.path.join(report_dir, "fleet-report.json")) as f:
                say("  report summary: " + json.load(f)["summary_line"])
        except (OSError, ValueError, KeyError):
            pass
        say("  fleet report: %s/fleet-report.html (and .md, .json)" % report_dir)
        say()
        say("== 5. the host that cannot upgrade (%s): new maps again, then the guard" % GUARDED)
        guard_once(hosts[GUARDED], images[GUARDED])
        say("  demo took %ds" % (time.time() - started))
        return proc.returncode
    finally:
        say("== teardown of the lab hosts")
        for host in hosts.values():
            try:
                host.down()
            except Exception as exc:  # keep tearing down the others
                say("  teardown of %s: %s" % (host.name, exc))


if __name__ == "__main__":
    sys.exit(main())
