"""A real node_exporter serves a lab host's textfile directory; the metrics idmapguard writes
there (the guard's pass, the rollout's verify step) are scraped over HTTP and checked against
what Podman's own store, `podman version` and `df -i` say on the host.

node_exporter is this machine's Debian binary (prometheus-node-exporter, linked to libc only),
copied into the host and run inside its namespaces (labctl exec), listening on the host's own
address only. The textfile directory is Debian's default, made in the host, so `auto` finds it.
"""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import remediate_support as rs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"      # Debian's, found by metrics_dir "auto"
CONFIG = "/etc/idmapguard/guard.json"
PORT = 9100
MAPS = [rs.noncontig_map(i) for i in range(3)]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, frozenset of label pairs): value} of an exposition text."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def df_inodes(host, path):
    """Inodes, IUsed, IFree of `df -i PATH` in the host."""
    fields = host.exec(["df", "-i", "-P", path], check=True).stdout.splitlines()[-1].split()
    return {"total": int(fields[1]), "used": int(fields[2]), "free": int(fields[3])}


def start_node_exporter(host):
    shutil.copy2(shutil.which("prometheus-node-exporter"), host.path("/usr/local/bin/node_exporter"))
    cmd = ("echo $$ > /run/node_exporter.pid; exec /usr/local/bin/node_exporter --web.listen-address=%s:%d "
           "--collector.disable-defaults --collector.textfile --collector.textfile.directory=%s"
           % (host.ip, PORT, TEXTFILE_DIR))
    proc = subprocess.Popen(host.nsenter() + ["/bin/sh", "-c", cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for _attempt in range(100):
        try:
            urllib.request.urlopen("http://%s:%d/metrics" % (host.ip, PORT), timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("node_exporter exited: %s" % proc.stderr.read())
            time.sleep(0.2)
    raise AssertionError("node_exporter did not answer on %s:%d" % (host.ip, PORT))


def stop_node_exporter(host, proc):
    with open(host.path("/run/node_exporter.pid")) as handle:
        pid = handle.read().strip()
    host.exec(["kill", "-TERM", pid])
    proc.wait(timeout=30)


def test_node_exporter_serves_what_podman_and_df_say(lab_host, inventory, tmp_path):
    host = lab_host("bookworm")                    # Podman 4.3: one full copy per map
    image = host.image(files=200)
    for index, idmap in enumerate(MAPS):
        args = []
        for extent in idmap.split(","):
            args += ["--uidmap", extent, "--gidmap", extent]
        host.podman("create", "--name", "c%d" % index, *args, image, "/bin/true", check=True)
    host.podman("rm", "c2", check=True)           # its copy stays, unused: the guard's cache
    host.exec(["mkdir", "-p", TEXTFILE_DIR], check=True)

    # verify/rollout's file: the rollout's helper and verify steps write idmapguard_host.prom
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_PIPELINING="1")
    play = subprocess.run(["ansible-playbook", "-i", inventory(host), "idmapguard.storage.rollout",
                           "-e", '{"idmapguard_rollout_steps": ["helper", "verify"]}',
                           "-e", "idmapguard_rollout_report_dir=%s" % (tmp_path / "report")],
                          env=env, capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    assert play.returncode == 0, play.stdout[-3000:] + play.stderr
    assert "Write this host's metrics for node_exporter" in play.stdout

    # the guard's file: one pass, as the service makes at every change (budget 100%: keeps all)
    rs.install_guard(host)
    host.write_file(CONFIG, json.dumps({"graphroot": rs.STORE, "runroot": "/run/containers/storage",
                                        "state_file": "/var/lib/idmapguard/guard-state.json",
                                        "budget_percent": 100, "low_free_percent": 0, "grace": 0}))
    once = host.exec([rs.GUARD_BIN, "--config", CONFIG, "once"])
    assert once.returncode == 0, once.stderr + once.stdout

    files = sorted(os.listdir(host.path(TEXTFILE_DIR)))
    assert files == ["idmapguard_guard.prom", "idmapguard_host.prom"]
    for name in files:     # what the collection wrote on a real host passes Prometheus' own lint
        with open(host.path(os.path.join(TEXTFILE_DIR, name))) as handle:
            check = subprocess.run(["promtool", "check", "metrics"], input=handle.read(),
                                   capture_output=True, text=True, check=False)
        assert check.returncode == 0 and not check.stdout.strip(), name + check.stdout + check.stderr

    df = df_inodes(host, rs.STORE)
    node_exporter = start_node_exporter(host)
    try:
        body = urllib.request.urlopen("http://%s:%d/metrics" % (host.ip, PORT), timeout=10).read().decode()
    finally:
        stop_node_exporter(host, node_exporter)
    print("\n".join(line for line in body.splitlines() if "idmapguard" in line))
    scraped = parse(body)

    containers = rs.podman_json(host, "ps", "-a")
    version = host.exec(["podman", "version", "--format", "{{.Client.Version}}"], check=True).stdout.strip()
    store = {"graphroot": rs.STORE}
    assert value(scraped, "node_textfile_scrape_error") == 0
    # the store's filesystem, as df -i sees it (nothing wrote to it since the pass)
    assert value(scraped, "idmapguard_store_inodes", **store) == df["total"]
    assert value(scraped, "idmapguard_store_inodes_free", **store) == df["free"]
    # copies: Podman's images.json lists 3, 2 under the containers `podman ps -a` shows
    assert len(containers) == 2
    assert value(scraped, "idmapguard_guard_mapped_copies", **store) == rs.mapped_copy_count(host) == 3
    assert value(scraped, "idmapguard_guard_copies_in_use", **store) == len(containers)
    assert value(scraped, "idmapguard_guard_cached_copies", **store) == 1
    assert value(scraped, "idmapguard_guard_evictions_total", reason="over_budget", **store) == 0
    assert abs(value(scraped, "idmapguard_guard_last_pass_timestamp_seconds", **store) - time.time()) < 600
    # verify's view of the same host
    assert value(scraped, "idmapguard_host_verdict", verdict="needs_podman_upgrade") == 1
    assert value(scraped, "idmapguard_host_verdict", verdict="shares") == 0
    assert value(scraped, "idmapguard_host_mapped_copies") == 3
    assert value(scraped, "idmapguard_host_store_inodes") == df["total"]
    assert value(scraped, "idmapguard_host_info", podman_version=version) == 1
    assert version.startswith("4.3")
