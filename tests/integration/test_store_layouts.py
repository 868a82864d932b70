"""The store's location, whole, on the layouts that move files out of graphroot (issue 18 item 4).

* trixie (Podman 5.4.2) with ``transient_store = true``: containers.json and containers.lock live
  in the runroot (c/storage containers.go; store.go makes every container volatile there);
* sid (Podman 5.8.6) with a split ``imagestore``: images.json, images.lock and the image layers
  live in the image store.

On each, the report (``mapped_layers state=report``), a prune (the ``remediate`` role, which
passes the report's location on whole) and the guard (one pass, its guard.json written by the
role) remove only unused copies, keep the copy of a created container, and Podman starts that
container afterwards. What is asserted comes from Podman itself: its images.json mapped-layers,
``podman ps``/``podman images`` and ``podman start``.

Before the location was one value, the role's prune got graphroot and runroot only and failed on
the transient store with "lock file(s) missing: .../overlay-containers/containers.lock".

On a split image store Podman 5.4 and 5.8 (fuse-overlayfs) refuse to make an ID-mapped copy and
Podman 5.8 on native overlay shares the layer (tests/integration/test_imagestore.py), so there
the store holds no copy to remove: the test proves the three read the images where they are and
leave every image, container and layer Podman needs.
"""
import json
import os
import re
import subprocess
import sys

import pytest

import remediate_support as rs

TRANSIENT_CONF = """\
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
transient_store = true
"""
GRAPHROOT_SPLIT = "/var/lib/containers/storage/graph"
IMAGESTORE = "/var/lib/containers/storage/images"
SPLIT_CONF = """\
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "%s"
imagestore = "%s"
""" % (GRAPHROOT_SPLIT, IMAGESTORE)

# (suite, storage.conf, the location Podman's settings give, where images.json is, copies made)
LAYOUTS = [
    ("trixie", TRANSIENT_CONF,
     {"graphroot": rs.STORE, "runroot": "/run/containers/storage", "imagestore": None, "transient_store": True,
      "additional_image_stores": [], "driver": "overlay"},
     rs.STORE, True),
    ("sid", SPLIT_CONF,
     {"graphroot": GRAPHROOT_SPLIT, "runroot": "/run/containers/storage", "imagestore": IMAGESTORE,
      "transient_store": False, "additional_image_stores": [], "driver": "overlay"},
     IMAGESTORE, False),
]

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  roles:
    - role: idmapguard.storage.remediate
      vars:
        idmapguard_remediate_policy: always
        idmapguard_remediate_min_age: 0
        idmapguard_remediate_guard: {guard}
        idmapguard_remediate_guard_enable: false
        idmapguard_remediate_guard_budget_percent: 0
        idmapguard_remediate_guard_grace: 0
  post_tasks:
    - name: Result for the test
      ansible.builtin.debug:
        msg: "RESULT {{{{ idmapguard_remediate_report.location | to_json }}}} {{{{ idmapguard_remediate | to_json }}}}"
"""


def ansible_playbook(inv, playbook):
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    proc = subprocess.run([binary, "-i", inv, playbook], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    match = re.search(r'"msg": "RESULT (\{.*?\}) (\{.*\})"\n', proc.stdout)
    location, outcome = (json.loads(group.replace('\\"', '"')) for group in match.groups())
    return location, outcome


def ansible_module(inv, host, module, args):
    """One module run through ansible-core alone (the default callback: ``host | STATUS => {json}``)."""
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible"), "-i", inv, host.name, "-m", module,
            "-a", json.dumps(args)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    start = proc.stdout.index(" => ", proc.stdout.index(host.name + " | ")) + 4
    result = json.JSONDecoder().raw_decode(proc.stdout[start:])[0]
    return result


def mapped_layers(host, image_root):
    """The mapped copies Podman lists in its own images.json."""
    with open(host.path(image_root + "/overlay-images/images.json")) as handle:
        return sorted(layer for image in json.load(handle) for layer in image.get("mapped-layers") or [])


def make_copies(host, tag, first, count):
    """`count` unused copies: a container per new non-contiguous map, created and removed."""
    for index in range(first, first + count):
        idmap = rs.noncontig_map(index)
        name = "gone%d" % index
        proc = host.podman("create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        assert proc.returncode == 0, proc.stderr
        host.podman("rm", name, check=True)


def podman_view(host):
    containers = host.podman("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    images = host.podman("images", "--format", "{{.ID}}", check=True).stdout.split()
    return sorted(containers), sorted(images)


@pytest.mark.parametrize("suite,conf,location,image_root,copies", LAYOUTS, ids=["trixie-transient", "sid-imagestore"])
def test_report_prune_and_guard_on_the_whole_store(lab_host, inventory, tmp_path, suite, conf, location,
                                                   image_root, copies):
    host = lab_host(suite, storage_conf=conf, inodes=20000, size="600M")
    rs.install_guard(host)
    tag = host.image(files=100)
    keeper_map = rs.noncontig_map(40)
    keep = host.podman("create", "--name", "keeper", "--uidmap", keeper_map, "--gidmap", keeper_map, tag, "true")
    assert keep.returncode == 0, keep.stderr
    if location["transient_store"]:
        # where c/storage keeps the containers of a transient store: the runroot, not graphroot
        assert os.path.exists(host.path(location["runroot"] + "/overlay-containers/containers.lock"))
        assert not os.path.exists(host.path(location["graphroot"] + "/overlay-containers/containers.lock"))
    make_copies(host, tag, 0, 3)
    kept = mapped_layers(host, image_root)
    assert len(kept) == (4 if copies else 0), kept
    before = podman_view(host)
    inv = inventory(host)

    # the report finds the store through Podman, whole, and counts Podman's copies
    report = ansible_module(inv, host, "idmapguard.storage.mapped_layers", {"state": "report", "min_age": 0})
    assert report["location"] == location
    assert sorted(c["layer_id"] for c in report["copies"]) == kept
    in_use = [c["layer_id"] for c in report["copies"] if c["in_use"]]
    assert len(in_use) == (1 if copies else 0), [(c["layer_id"][:12], c["why"]) for c in report["copies"]]

    # the role: report, then a prune given the report's location whole
    book = tmp_path / "remediate.yml"
    book.write_text(PLAYBOOK.format(guard="false"))
    used, outcome = ansible_playbook(inv, str(book))
    assert used == location
    assert outcome["pruned"] is True and int(outcome["copies_removed"]) == (3 if copies else 0), outcome
    assert mapped_layers(host, image_root) == in_use
    assert podman_view(host) == before

    # the guard, its guard.json written by the role with the location whole, one pass
    book.write_text(PLAYBOOK.format(guard="true"))
    ansible_playbook(inv, str(book))
    make_copies(host, tag, 20, 2)
    assert len(mapped_layers(host, image_root)) == (3 if copies else 0)
    with open(host.path("/etc/idmapguard/guard.json")) as handle:
        assert json.load(handle)["location"] == location
    proc = host.exec([rs.GUARD_BIN, "--config", "/etc/idmapguard/guard.json", "once"])
    assert proc.returncode == 0, proc.stderr + proc.stdout
    passed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["evicted"] for e in passed if e.get("event") == "pass"] == [2 if copies else 0], proc.stdout
    assert mapped_layers(host, image_root) == in_use
    assert podman_view(host) == before

    # Podman starts the kept container, on its own copy
    started = host.podman("start", "-a", "keeper")
    assert started.returncode == 0, started.stderr
    assert host.podman("create", "--name", "after", tag, "true").returncode == 0
