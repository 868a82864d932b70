"""A store with a split `imagestore` (storage.conf [storage] imagestore), on Podman 5.4 (trixie)
and 5.8 (sid): what Podman itself does with a non-contiguous map there, and that
idmap_support, mapped_layers and the rollout's decision agree with it (issue 12).

`podman info` does not print a split imagestore; idmap_support used to take its settings
from `podman info` alone, so it looked for images in graphroot, found none, reported 0
mapped copies and the rollout's remediate gate skipped the host. The settings now come from
one producer (podman_host.storage_settings) that adds the imagestore from storage.conf.

What is asserted about Podman comes from its own files: images.json's mapped-layers (in the
image store, where the image records live), layers.json in both stores, the inode count.
"""
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from test_verify import install_helper  # noqa: E402

from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.advance import advance  # noqa: E402
from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout.state import start  # noqa: E402

# Both on the lab's store filesystem (mounted at /var/lib/containers/storage).
GRAPHROOT = "/var/lib/containers/storage/graph"
IMAGESTORE = "/var/lib/containers/storage/images"
STORAGE_CONF = """\
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "%s"
imagestore = "%s"
""" % (GRAPHROOT, IMAGESTORE)
FUSE = '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
NONCONTIGUOUS = "0:1065537:65536,531571:531571:1,19997967:19997967:1"
FILES = 200

# What Podman does with a non-contiguous map on a split image store, measured on the lab:
#   "fails": wherever it would copy, `podman create` fails making the ID-mapped copy
#            ("creating an ID-mapped copy of layer ...: storage-chown-by-maps: lchown ...:
#            read-only file system") and leaves no copy: Podman 5.4.2 (trixie), and Podman 5.8.6
#            with fuse-overlayfs as mount_program (sid)
#   "shares": an idmapped mount, no copy: Podman 5.8.6 on native overlay (sid)
# So a split image store never holds mapped copies; the facts must say 0, with the imagestore
# found, and the rollout must not try to remediate.
CASES = [
    ("trixie", "", "fails", "needs_podman_upgrade"),
    ("sid", "", "shares", "shares"),
    ("sid", FUSE, "fails", "fixable_by_config"),
]


def read_json(host, inside: str) -> List[Dict[str, Any]]:
    path = host.path(inside)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


def podman_view(host) -> Dict[str, Any]:
    """What Podman's own files say: layers per store, mapped copies per image."""
    images = read_json(host, IMAGESTORE + "/overlay-images/images.json")
    return {
        "graph_layers": {l["id"] for l in read_json(host, GRAPHROOT + "/overlay-layers/layers.json")},
        "image_layers": {l["id"] for l in read_json(host, IMAGESTORE + "/overlay-layers/layers.json")},
        "graph_images": len(read_json(host, GRAPHROOT + "/overlay-images/images.json")),
        "images": len(images),
        "mapped": [m for img in images for m in (img.get("mapped-layers") or [])],
    }


def ansible_module(inventory_path: str, host, module: str, args: str = "") -> Dict[str, Any]:
    """One module run through ansible-core alone (the default callback: ``host | STATUS => {json}``)."""
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False")
    argv = ["ansible", "-i", inventory_path, host.name, "-m", module] + (["-a", args] if args else [])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    start = proc.stdout.index(" => ", proc.stdout.index(host.name + " | ")) + 4
    result = json.JSONDecoder().raw_decode(proc.stdout[start:])[0]
    return result


@pytest.mark.parametrize("suite,extra_conf,podman_does,verdict", CASES, ids=["trixie", "sid", "sid-fuse"])
def test_split_imagestore_non_contiguous_map(lab_host, inventory, suite, extra_conf, podman_does, verdict):
    host = lab_host(suite, storage_conf=STORAGE_CONF + extra_conf, inodes=8192)
    install_helper(host)
    info = json.loads(host.podman("info", "--format", "json", check=True).stdout)
    assert info["store"]["graphRoot"] == GRAPHROOT
    image = host.image(files=FILES)
    loaded = podman_view(host)
    # the image record lives in the image store, nothing of it in graphroot's images.json; the
    # layer's record is in one of the two layers.json (graphroot on 5.4, the image store on 5.8)
    assert loaded["images"] == 1 and loaded["graph_images"] == 0
    layer_records = loaded["graph_layers"] | loaded["image_layers"]
    assert len(layer_records) == 1 and not (loaded["graph_layers"] & loaded["image_layers"])
    layer = next(iter(layer_records))
    assert os.path.isdir(host.path("%s/overlay/%s/diff" % (IMAGESTORE, layer)))

    inodes_before = host.inodes_used()
    args: List[str] = []
    for extent in NONCONTIGUOUS.split(","):
        args += ["--uidmap", extent, "--gidmap", extent]
    created = host.podman("create", "--name", "mapped", *args, image, "/bin/true")
    host.podman("rm", "--ignore", "mapped", check=True)
    after = podman_view(host)
    inode_cost = host.inodes_used() - inodes_before
    new_layers = (after["graph_layers"] | after["image_layers"]) - layer_records
    print("\n%s (podman %s), split imagestore%s, one non-contiguous map: create rc=%d %s; layer record in %s; "
          "mapped-layers %s; new layers in graphroot %d, in imagestore %d; %d inodes left after rm"
          % (suite, host.podman_version(), " + fuse-overlayfs" if extra_conf else "", created.returncode,
             created.stderr.strip()[-160:], "graphroot" if loaded["graph_layers"] else "imagestore", after["mapped"],
             len(after["graph_layers"] - loaded["graph_layers"]), len(after["image_layers"] - loaded["image_layers"]),
             inode_cost))
    if podman_does == "fails":
        assert created.returncode != 0 and "ID-mapped copy" in created.stderr, created.stderr
    else:
        assert created.returncode == 0, created.stderr
    # either way no copy is left: nothing in mapped-layers, no new layer, few inodes
    assert after["mapped"] == [] and not new_layers and inode_cost < FILES / 4
    copies = len(after["mapped"])

    inv = inventory(host)
    facts = ansible_module(inv, host, "idmapguard.storage.idmap_support")["ansible_facts"]["idmapguard"]
    assert facts["podman"]["imagestore"] == IMAGESTORE
    assert facts["podman"]["origins"]["imagestore"] == "storage.conf /etc/containers/storage.conf"
    assert facts["graphroot"]["path"] == GRAPHROOT
    assert facts["graphroot"]["mapped_copies"] == copies
    assert facts["verdict"] == verdict, facts["reasons"]

    # mapped_layers (issue 10a's module) finds the store the same way and counts the same copies
    report = ansible_module(inv, host, "idmapguard.storage.mapped_layers", "state=report")
    assert report["store"]["imagestore"] == IMAGESTORE
    assert report["mapped_copies"] == copies

    # the rollout's remediate step runs exactly where Podman left a copy (policy always, as the
    # operator who wants every copy back sets it)
    steps = advance(start(host.name, {"remediate_policy": "always", "steps": ["verify", "remediate"]}),
                    "verify", {"facts": facts}).plan
    assert steps["remediate"]["run"] is (copies > 0) and steps["act"] is (copies > 0)
