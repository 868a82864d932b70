"""How long does `idmapped-mount probe` take, measured against `podman info` on the same host?

    bench_probe.py --helper native/build/idmapped-mount [--runs 9] [--suite sid] [--local]

On a lab host (the default; --local uses this machine instead) the helper is copied
into the host and both commands are timed *inside* it by a small Python timer, so entering the
host costs neither side anything. Without the lab, this machine's Podman is used with a
throw-away --root/--runroot under /tmp and a private CONTAINERS_CONF, never the machine's own
store or configuration. Prints the median of each and their ratio (goal: probe <= 0.1x).
No timing assertion: the number is for people, the exit status only says the runs worked.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs wherever the measurement happens (inside a lab host or here): alternate the two
# commands so that drift (cache, load from other work) hits both alike.
TIMER = r"""
import json, statistics, subprocess, sys, time
spec = json.loads(sys.argv[1])
times = {"probe": [], "podman_info": []}
for i in range(spec["runs"] + 1):
    for key in ("probe", "podman_info"):
        t = time.perf_counter()
        res = subprocess.run(spec[key], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=spec["env"])
        dt = time.perf_counter() - t
        if res.returncode != 0:
            sys.exit("%s failed (%d): %s" % (key, res.returncode, res.stderr.decode()[-500:]))
        if key == "probe":
            checks = json.loads(res.stdout)["checks"]
        if i:  # the first round warms caches and is not counted
            times[key].append(dt)
print(json.dumps({"median": {k: statistics.median(v) for k, v in times.items()},
                  "runs": spec["runs"], "checks": {k: v["ok"] for k, v in checks.items()}}))
"""


def on_lab(helper: str, runs: int, suite: str) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.lab.lab import Lab, STORE  # pylint: disable=import-outside-toplevel

    lab = Lab()
    host = lab.up(suite=suite)
    try:
        with open(helper, "rb") as f:
            host.write_file("/usr/local/bin/idmapped-mount", f.read(), 0o755)
        host.podman("info", check=True)  # creates the store directory the probe looks at
        spec = {"runs": runs, "env": None,
                "probe": ["/usr/local/bin/idmapped-mount", "probe", STORE],
                "podman_info": ["podman", "info", "--format", "json"]}
        # the lab's podman wrapper options (containers.conf) are in the host's own config
        res = host.exec(["python3", "-c", TIMER, json.dumps(spec)], check=True)
        out = json.loads(res.stdout)
        out["where"] = "lab host %s (%s, podman %s)" % (host.name, suite, host.podman_version())
        return out
    finally:
        host.down()


def local(helper: str, runs: int) -> dict:
    podman = shutil.which("podman", path="/usr/bin:/bin")
    if not podman:
        sys.exit("bench_probe: no lab and no podman on this machine")
    tmp = tempfile.mkdtemp(prefix="bench-probe-")
    try:
        conf = os.path.join(tmp, "containers.conf")
        with open(conf, "w", encoding="ascii") as f:
            f.write('[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\ntmp_dir = "%s"\n'
                    % os.path.join(tmp, "libpod-tmp"))
        root, runroot = os.path.join(tmp, "root"), os.path.join(tmp, "runroot")
        os.makedirs(root)
        storage_conf = os.path.join(tmp, "storage.conf")
        with open(storage_conf, "w", encoding="ascii") as f:
            f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' % (root, runroot))
        env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage_conf)
        spec = {"runs": runs, "env": env,
                "probe": [helper, "probe", root],
                "podman_info": [podman, "--root", root, "--runroot", runroot, "info", "--format", "json"]}
        res = subprocess.run(["/usr/bin/python3", "-c", TIMER, json.dumps(spec)], capture_output=True,
                             check=False, text=True)
        if res.returncode != 0:
            sys.exit("bench_probe: " + res.stderr)
        out = json.loads(res.stdout)
        out["where"] = "this machine, podman with a throw-away store in " + tmp
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description="probe wall time vs podman info")
    ap.add_argument("--helper", default=str(REPO / "native" / "build" / "idmapped-mount"))
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--suite", default="sid")
    ap.add_argument("--local", action="store_true", help="time on this machine with a throw-away store instead of a lab host")
    args = ap.parse_args()
    helper = os.path.abspath(args.helper)
    out = local(helper, args.runs) if args.local else on_lab(helper, args.runs, args.suite)
    probe, info = out["median"]["probe"], out["median"]["podman_info"]
    print("where:        %s" % out["where"])
    print("runs:         %d each (median; one warm-up round not counted)" % out["runs"])
    print("probe checks: %s" % ", ".join("%s=%s" % kv for kv in out["checks"].items()))
    print("probe:        %8.2f ms" % (probe * 1000))
    print("podman info:  %8.2f ms" % (info * 1000))
    print("ratio:        %8.4f x podman info (goal <= 0.1)" % (probe / info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
