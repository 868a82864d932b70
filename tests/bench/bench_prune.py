"""Benchmark: prune of N ID-mapped copies vs `rm -rf` of the same directories.

On one lab host (bookworm, Podman 4.3, which copies per map) Podman makes N copies of the
image (default: the seed-size real-userland image, tests/bench/bench_image.py; a distinct
non-contiguous map each). The copies' directories (overlay/<id>, its tar-split and l/<link>)
are then cloned with `cp -a` into the same filesystem. The baseline: `rm -rf` of one clone
just before and of another just after `idmapguard-prune` (planning, locks, JSON, staging, the
deletion after release) runs on the real copies; with --ionice also `ionice -c3 rm -rf` (the
I/O class the prune deletes at: on a disk others use, that class waits for them, and so does
the prune by design; two more clones, so off by default for the seed image's ~190 MB copies).
All inside the host on the same store filesystem, one after the other, in the same run. Prints
the ratios (keep <= 1.2) and this machine's /proc/loadavg at the start and the end.

    python tests/bench/bench_prune.py [--copies 50] [--image userland|filler] [--files N] [--rounds 1] [--ionice]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from tests.lab.lab import Lab  # noqa: E402
import remediate_support as rs  # noqa: E402
import bench_image  # noqa: E402
import bench_latency  # noqa: E402

STORE = rs.STORE


def make_copies(host, tag, first, count):
    for index in range(first, first + count):
        idmap = rs.noncontig_map(index)
        host.podman("create", "--name", "b%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true", check=True)
        host.podman("rm", "b%d" % index, check=True)


# Cloning and deleting 50 seed-size copies (345,000 inodes, 8 GB) took over the lab's default
# 900 s per command on a machine other runs kept at a load of 25.
SLOW = 7200


def timed(host, script):
    """Run a shell snippet inside the host and return its wall time measured there."""
    out = host.exec("s=$(date +%%s.%%N); %s; e=$(date +%%s.%%N); echo \"$s $e\"" % script, check=True,
                    timeout=SLOW).stdout
    start, end = out.strip().splitlines()[-1].split()
    return float(end) - float(start)


def one_round(host, tag, copies, first, ionice):
    make_copies(host, tag, first, copies)
    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    unused = [c for c in report["copies"] if not c["in_use"]]
    assert len(unused) == copies, len(unused)
    inodes = sum(c["inodes"] for c in unused)
    # Clone exactly what a prune deletes, twice, into the same filesystem: rm -rf of one clone
    # before the prune and of the other after it brackets the prune in time, so drifting load
    # on the machine does not favour either side.
    parts = []
    for copy in unused:
        parts.append("%s/overlay/%s" % (STORE, copy["layer_id"]))
        parts.append("%s/overlay-layers/%s.tar-split.gz" % (STORE, copy["layer_id"]))
        if copy.get("link"):
            parts.append("%s/overlay/l/%s" % (STORE, copy["link"]))
    clones = {"plain-a": "", "idle-a": "ionice -c3 ", "idle-b": "ionice -c3 ", "plain-b": ""}
    if not ionice:
        clones = {"plain-a": "", "plain-b": ""}
    for clone in clones:
        host.exec("mkdir -p %s/bench-%s && for p in %s; do if [ -e \"$p\" ] || [ -L \"$p\" ]; then "
                  "cp -a \"$p\" %s/bench-%s/; fi; done" % (STORE, clone, " ".join(parts), STORE, clone), check=True,
                  timeout=SLOW)
    host.exec("sync", check=True, timeout=SLOW)
    rm_times = {}
    rm_freed = []

    def rm_clone(clone):
        used_before = host.inodes_used()
        rm_times[clone] = timed(host, "%srm -rf %s/bench-%s" % (clones[clone], STORE, clone))
        host.exec("sync", check=True, timeout=SLOW)
        rm_freed.append(used_before - host.inodes_used())

    rm_clone("plain-a")
    if ionice:
        rm_clone("idle-a")
    used_before = host.inodes_used()
    prune_time = timed(host, "/usr/local/sbin/idmapguard-prune --min-age 0 > /tmp/bench-prune.json")
    host.exec("sync", check=True, timeout=SLOW)
    result = json.loads(host.exec(["cat", "/tmp/bench-prune.json"], check=True).stdout)
    freed = used_before - host.inodes_used()
    assert result["removed"] == copies and freed == result["inodes_freed"], (result, freed)
    if ionice:
        rm_clone("idle-b")
    rm_clone("plain-b")
    plain = (rm_times["plain-a"] + rm_times["plain-b"]) / 2
    idle = (rm_times["idle-a"] + rm_times["idle-b"]) / 2 if ionice else None
    print("  prune phases: %s" % bench_latency.phases_line(result.get("seconds") or {}, prune_time))
    print("  rm -rf before/after the prune: %.3fs / %.3fs; ionice -c3 rm -rf: %s; inodes %s" % (
        rm_times["plain-a"], rm_times["plain-b"],
        "%.3fs / %.3fs" % (rm_times["idle-a"], rm_times["idle-b"]) if ionice else "-", rm_freed))
    rm_freed = rm_freed[0]
    rm_time = plain
    return {"copies": copies, "inodes": inodes, "rm_rf_s": rm_time, "rm_rf_inodes": rm_freed,
            "prune_s": prune_time, "prune_inodes": freed, "ratio": prune_time / rm_time,
            "rm_rf_idle_s": idle, "ratio_idle": prune_time / idle if idle else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    bench_image.add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ionice", action="store_true", help="also time ionice -c3 rm -rf (two more clones)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_prune needs root (lab hosts)")
    lab = Lab(log=lambda msg: print(msg, file=sys.stderr))
    per_copy, per_copy_bytes = bench_image.copy_cost(args)
    sets = 5 if args.ionice else 3  # the copies and their clones
    inodes = sets * args.copies * per_copy * 12 // 10 + 20000
    size_mb = max(600, (sets * args.copies * per_copy_bytes * 13 // 10 + (1 << 30)) >> 20)
    print("load at start: %s" % bench_image.loadavg(), flush=True)
    host = lab.up(suite="bookworm", inodes=inodes, size="%dM" % size_mb)
    try:
        rs.install_guard(host)
        tag = bench_image.load(host, args)
        print("host %s podman %s, store ext4 %d MB, %d inodes; %s" % (
            host.name, host.podman_version(), size_mb, inodes, bench_image.describe(args)), flush=True)
        results = []
        for number in range(args.rounds):
            started = time.time()
            res = one_round(host, tag, args.copies, number * args.copies, args.ionice)
            results.append(res)
            line = "round %d: %d copies, %d inodes: rm -rf %.3fs (%d inodes), prune %.3fs (%d inodes), " % (
                number, res["copies"], res["inodes"], res["rm_rf_s"], res["rm_rf_inodes"], res["prune_s"],
                res["prune_inodes"])
            print(line + "ratio %.2f, vs ionice -c3 rm -rf %s  [%.0fs incl. setup]" % (
                res["ratio"], "%.2f" % res["ratio_idle"] if args.ionice else "-", time.time() - started), flush=True)
        ratios = sorted(r["ratio"] for r in results)
        idle = ""
        if args.ionice:
            idle_ratios = sorted(r["ratio_idle"] for r in results)
            idle = "; prune/(ionice -c3 rm -rf), the same I/O class as the prune's deletion: %.2f" % (
                idle_ratios[len(idle_ratios) // 2])
        print("RESULT prune/rm-rf ratio: %.2f%s (medians of %d round(s) of %d copies; keep <= 1.2)" % (
            ratios[len(ratios) // 2], idle, len(ratios), args.copies))
        print("load at end: %s" % bench_image.loadavg())
    finally:
        host.down()


if __name__ == "__main__":
    main()
