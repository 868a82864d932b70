"""Benchmark: `podman create` latency while a prune runs, and while `state: report` runs, vs idle.

On one lab host (bookworm, Podman 4.3, which copies per map) Podman makes N unused copies of
the image (default: the seed-size real-userland image, tests/bench/bench_image.py; a distinct
non-contiguous map each). A loop inside the host then creates and
removes an unrelated container (no map: no copy of its own) and records each `podman create`
wall time, in three windows per round, interleaved so drifting load on the shared machine
hits both sides: idle, during the prune (or the report) of the N copies, idle again (with at
least as many creates in all as during the load, so both maxima are over samples of the same
size). Prints median and max latency of each side and their ratios (goal <= 1.5 for both).

    python tests/bench/bench_latency.py [--copies 50] [--image userland|filler] [--files N] [--rounds 1]
                                        [--report-copies 0] [--lib DIR] [--busy N]

This machine's /proc/loadavg is printed at the start and the end (the lab shares its cores).

--busy N keeps N CPU-bound processes (at nice 0) running on the machine during every
measured window, idle windows included (not while Podman makes the copies): a busy host,
where a walk at normal priority competes with Podman for the CPU.

--lib DIR installs plugins/module_utils from another checkout (e.g. the code before this
change) to measure it the same way. --compare-lib DIR installs it next to this checkout's and
runs every report round with both, on the same copies, in alternating order: both ratios come
from one run.
"""
import argparse
import json
import os
import subprocess
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from tests.lab.lab import Lab  # noqa: E402
import remediate_support as rs  # noqa: E402
import bench_image  # noqa: E402

LOOP = r"""
rm -f /tmp/bench-stop /tmp/bench-lat; echo $$ > /tmp/bench-pid; i=0
while [ ! -e /tmp/bench-stop ]; do
  s=$(date +%s%N); podman create --name lat$i {tag} true >/dev/null 2>>/tmp/bench-err || echo "ERR $i" >>/tmp/bench-lat
  e=$(date +%s%N); echo "$s $e" >>/tmp/bench-lat
  podman rm lat$i >/dev/null 2>>/tmp/bench-err; i=$((i+1))
done
"""


def make_copies(host, tag, first, count):
    script = ("for i in $(seq %d %d); do b=$((1065537 + i * 70000)); m=0:$b:65536,531571:531571:1; "
              "podman create --name b$i --uidmap $m --gidmap $m %s true >/dev/null && podman rm b$i >/dev/null "
              "|| exit 1; done" % (first, first + count - 1, tag))
    # 50 seed-size copies took longer than the lab's 900 s default at a machine load of 30.
    host.exec(script, check=True, timeout=7200)


def now_ns(host):
    return int(host.exec("date +%s%N", check=True).stdout.strip())


def samples(host, start_ns=None, end_ns=None):
    """Create latencies (s) whose create started inside [start_ns, end_ns]."""
    out = []
    errors = 0
    for line in host.exec("cat /tmp/bench-lat 2>/dev/null || true").stdout.splitlines():
        if line.startswith("ERR"):
            errors += 1
            continue
        start, end = (int(v) for v in line.split())
        if (start_ns is None or start >= start_ns) and (end_ns is None or start <= end_ns):
            out.append((end - start) / 1e9)
    return out, errors


def loop_start(host, tag):
    host.exec(["sh", "-c", "nohup sh -c '%s' >/dev/null 2>&1 &" % LOOP.format(tag=tag).replace("'", "'\\''")],
              check=True)


def loop_stop(host):
    host.exec("touch /tmp/bench-stop; while kill -0 $(cat /tmp/bench-pid) 2>/dev/null; do sleep 0.1; done",
              check=True)


BUSY = [0]  # CPU hogs during measured windows (--busy)


class Busy:
    """BUSY[0] CPU-bound processes at nice 0 while the block runs."""

    def __enter__(self):
        self.hogs = [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]) for _hog in range(BUSY[0])]
        return self

    def __exit__(self, *exc):
        for hog in self.hogs:
            hog.kill()
            hog.wait()


def idle_window(host, tag, creates):
    with Busy():
        loop_start(host, tag)
        deadline = time.time() + 120
        while len(samples(host)[0]) < creates and time.time() < deadline:
            time.sleep(0.3)
        loop_stop(host)
    return samples(host)


def loaded_window(host, tag, command, warmup=2):
    """Creates that started while ``command`` ran inside the host; (latencies, errors, seconds)."""
    with Busy():
        loop_start(host, tag)
        while len(samples(host)[0]) < warmup:
            time.sleep(0.1)
        start = now_ns(host)
        host.exec(command, check=True, timeout=1800)
        end = now_ns(host)
        loop_stop(host)
    lat, errors = samples(host, start, end)
    if not lat:  # the command was faster than one create: take the create that overlapped it
        lat = [max(samples(host, None, end)[0][-1:] or [0.0])]
    return lat, errors, (end - start) / 1e9


def stats(values):
    return statistics.median(values), max(values)


def one_round(host, tag, count, first, what, creates, fresh=True, clean=True):
    if fresh:
        make_copies(host, tag, first, count)
        host.exec("sync", check=True)
    idle_a, err_a = idle_window(host, tag, creates)
    if what == "prune":
        command = "/usr/local/sbin/idmapguard-prune --min-age 0 > /tmp/bench-out.json"
    else:
        command = "/usr/local/sbin/idmapguard-prune --report --min-age 0 > /tmp/bench-out.json"
    loaded, err_l, seconds = loaded_window(host, tag, command)
    # The maxima compare samples of the same size: the idle side gets as many creates as the
    # loaded one (a max of 100 samples beats a max of 20 by chance alone).
    idle_b, err_b = idle_window(host, tag, max(creates, len(loaded) - len(idle_a)))
    phases = prune_phases(host, seconds) if what == "prune" else ""
    if what == "report" and clean:
        host.exec("/usr/local/sbin/idmapguard-prune --min-age 0 >/dev/null", check=True)  # clean for the next
    idle = idle_a + idle_b
    (idle_med, idle_max), (load_med, load_max) = stats(idle), stats(loaded)
    return {"what": what, "copies": count, "seconds": seconds, "idle_n": len(idle), "loaded_n": len(loaded),
            "idle_median": idle_med, "idle_max": idle_max, "loaded_median": load_med, "loaded_max": load_max,
            "ratio_median": load_med / idle_med, "ratio_max": load_max / idle_max,
            "errors": err_a + err_l + err_b, "phases": phases}


def prune_phases(host, seconds):
    """Where the prune's time went, from its own output: planning with the pre-flight walk of
    every planned copy, the write-lock hold, the deletion after release (and how long it paused
    for Podman); the rest is start-up and the consistency gate."""
    out = json.loads(host.exec(["cat", "/tmp/bench-out.json"], check=True).stdout).get("seconds") or {}
    return phases_line(out, seconds)


def phases_line(phases, seconds):
    """The prune's phases; the pre-flight walk after the first batch's runs in a child process,
    overlapped with the deletion (its own time, and what the prune waited for it)."""
    line = "plan + pre-flight walk %.1fs, write locks %.2fs, deletion %.1fs (paused for Podman %.1fs), " \
        "rest %.1fs" % (phases.get("plan_and_preflight", 0.0), phases.get("locks", 0.0), phases.get("delete", 0.0),
                        phases.get("delete_paused", 0.0), seconds - phases.get("plan_and_preflight", 0.0)
                        - phases.get("locks", 0.0) - phases.get("delete", 0.0))
    if "walk" in phases:
        line += "; walk in its child %.1fs (waited for %.1fs)" % (phases["walk"], phases.get("walk_waited", 0.0))
    return line


BASE_LIB = "/usr/local/lib/idmapguard-base"
BASE_PRUNE = "/usr/local/sbin/idmapguard-prune-base"


def install_base_lib(host, lib):
    """A second guard archive (another checkout's module_utils) with its own idmapguard-prune."""
    rs.install_archive(host, lib=BASE_LIB, module_utils=os.path.join(lib, "plugins", "module_utils"),
                       bins=((BASE_PRUNE, "prune"),))


def report_rounds(host, tag, count, first, rounds, creates, binaries):
    """Report rounds on one set of copies, each round with every binary (order alternating)."""
    make_copies(host, tag, first, count)
    host.exec("sync", check=True)
    per_bin = {name: [] for name, _path in binaries}
    for number in range(rounds):
        order = binaries if number % 2 == 0 else list(reversed(binaries))
        for name, path in order:
            idle_a, err_a = idle_window(host, tag, creates)
            loaded, err_l, seconds = loaded_window(host, tag, "%s --report --min-age 0 > /tmp/bench-out.json" % path)
            idle_b, err_b = idle_window(host, tag, max(creates, len(loaded) - len(idle_a)))
            (idle_med, idle_max), (load_med, load_max) = stats(idle_a + idle_b), stats(loaded)
            res = {"seconds": seconds, "ratio_median": load_med / idle_med, "ratio_max": load_max / idle_max,
                   "errors": err_a + err_l + err_b}
            per_bin[name].append(res)
            print("  report %d copies round %d, %s: %.1fs; create idle median %.3fs max %.3fs (n=%d), during "
                  "median %.3fs max %.3fs (n=%d); ratio median %.2f max %.2f; podman errors %d" % (
                      count, number, name, seconds, idle_med, idle_max, len(idle_a + idle_b), load_med, load_max,
                      len(loaded), res["ratio_median"], res["ratio_max"], res["errors"]))
    host.exec("/usr/local/sbin/idmapguard-prune --min-age 0 >/dev/null", check=True)
    return per_bin


def install_lib(host, lib):
    """The guard archive of LIB's checkout (one with copy_cache_guard/zipapp_main.py), else this one's."""
    if lib:
        rs.install_archive(host, module_utils=os.path.join(lib, "plugins", "module_utils"))
    else:
        rs.install_guard(host)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", default="50")
    parser.add_argument("--report-copies", type=int, default=0, help="0: skip the report benchmark")
    bench_image.add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--creates", type=int, default=6, help="creates per idle window")
    parser.add_argument("--lib", help="checkout whose plugins/module_utils to measure instead of this one")
    parser.add_argument("--compare-lib", help="checkout whose module_utils each report round also runs with")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes to run meanwhile (a busy host)")
    parser.add_argument("--report-then-prune", action="store_true",
                        help="report on the report copies, then prune those same copies (saves making them twice)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_latency needs root (lab hosts)")
    counts = [int(c) for c in args.copies.split(",") if c]
    biggest = max(counts + [args.report_copies])
    per_copy, per_copy_bytes = bench_image.copy_cost(args)
    inodes = biggest * per_copy * 13 // 10 + 30000
    size_mb = max(800, (biggest * per_copy_bytes * 13 // 10 + (1 << 30)) >> 20)
    print("load at start: %s" % bench_image.loadavg(), flush=True)
    lab = Lab(log=lambda msg: print(msg, file=sys.stderr))
    host = lab.up(suite="bookworm", inodes=inodes, size="%dM" % size_mb)
    try:
        install_lib(host, args.lib)
        tag = bench_image.load(host, args)
        host.exec("podman create --name warm %s true >/dev/null && podman rm warm >/dev/null" % tag, check=True)
        print("host %s podman %s, store ext4 %d MB, %d inodes, lib %s, %d CPU hog(s); %s" % (
            host.name, host.podman_version(), size_mb, inodes, args.lib or REPO, args.busy,
            bench_image.describe(args)), flush=True)
        BUSY[0] = args.busy
        jobs = [("prune", n, True) for n in counts]
        summary = []
        if args.report_copies and args.compare_lib:
            install_base_lib(host, args.compare_lib)
            binaries = [("this", "/usr/local/sbin/idmapguard-prune"), ("base", BASE_PRUNE)]
            per_bin = report_rounds(host, tag, args.report_copies, 5000, args.rounds, args.creates, binaries)
            for name, path in binaries:
                rounds = per_bin[name]
                summary.append(("report (%s: %s)" % (name, args.compare_lib if name == "base" else REPO),
                                args.report_copies, statistics.median(r["ratio_median"] for r in rounds),
                                statistics.median(r["ratio_max"] for r in rounds), sum(r["errors"] for r in rounds)))
        elif args.report_copies:
            if args.report_then_prune:
                jobs = [("report", args.report_copies, True), ("prune", args.report_copies, False)]
            else:
                jobs.append(("report", args.report_copies, True))
        first = 0
        for what, count, fresh_copies in jobs:
            rounds = []
            for number in range(args.rounds):
                fresh = fresh_copies or number > 0
                if what == "report" and args.report_then_prune:
                    fresh = number == 0
                res = one_round(host, tag, count, first, what, args.creates, fresh=fresh,
                                clean=not args.report_then_prune)
                first += count
                rounds.append(res)
                print("  %s %d copies round %d: %.1fs; create idle median %.3fs max %.3fs (n=%d), during "
                      "median %.3fs max %.3fs (n=%d); ratio median %.2f max %.2f; podman errors %d" % (
                          what, count, number, res["seconds"], res["idle_median"], res["idle_max"], res["idle_n"],
                          res["loaded_median"], res["loaded_max"], res["loaded_n"], res["ratio_median"],
                          res["ratio_max"], res["errors"]))
                if res["phases"]:
                    print("    prune phases: %s" % res["phases"])
            med = statistics.median(r["ratio_median"] for r in rounds)
            mx = statistics.median(r["ratio_max"] for r in rounds)
            summary.append((what, count, med, mx, sum(r["errors"] for r in rounds)))
        for what, count, med, mx, errors in summary:
            print("RESULT create latency during %s of %d copies vs idle: median %.2fx, max %.2fx "
                  "(median of %d round(s); goal <= 1.5); podman errors %d" % (what, count, med, mx, args.rounds, errors))
        print("load at end: %s" % bench_image.loadavg())
    finally:
        host.down()


if __name__ == "__main__":
    main()
