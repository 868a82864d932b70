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

from ansible_collections.idmapguard.storage.plugins.plugin_utils.rollout import StepInputs, rollout_steps  # noqa: E402

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
NONCONTIGUOUS = "0:1065537:65536,531571:531571:1,19997967:19997967:1"
FILES = 200


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
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_HOST_KEY_CHECKING="False")
    argv = ["ansible", "-i", inventory_path, host.name, "-m", module] + (["-a", args] if args else [])
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host.name]
    assert proc.returncode == 0 and not result.get("failed"), proc.stdout[-3000:] + proc.stderr[-3000:]
    return result


@pytest.mark.parametrize("suite,copies", [("trixie", True), ("sid", False)])
def test_split_imagestore_non_contiguous_map(lab_host, inventory, suite, copies):
    host = lab_host(suite, storage_conf=STORAGE_CONF, inodes=8192)
    install_helper(host)
    info = json.loads(host.podman("info", "--format", "json", check=True).stdout)
    assert info["store"]["graphRoot"] == GRAPHROOT
    image = host.image(files=FILES)
    loaded = podman_view(host)
    # Podman keeps the image and its layer in the image store, nothing of it in graphroot
    assert loaded["images"] == 1 and loaded["graph_images"] == 0
    assert len(loaded["image_layers"]) == 1 and not loaded["graph_layers"]

    inodes_before = host.inodes_used()
    args: List[str] = []
    for extent in NONCONTIGUOUS.split(","):
        args += ["--uidmap", extent, "--gidmap", extent]
    host.podman("create", "--name", "mapped", *args, image, "/bin/true", check=True)
    host.podman("rm", "mapped", check=True)
    after = podman_view(host)
    inode_cost = host.inodes_used() - inodes_before
    new_graph_layers = after["graph_layers"] - loaded["graph_layers"]
    new_image_layers = after["image_layers"] - loaded["image_layers"]
    print("\n%s (podman %s), split imagestore, one non-contiguous map: mapped-layers %s; new layers in "
          "graphroot %d, in imagestore %d; %d inodes left behind after rm"
          % (suite, host.podman_version(), after["mapped"], len(new_graph_layers), len(new_image_layers), inode_cost))
    if copies:
        # Podman < 5.6 copies the image's layer, records it in the image's mapped-layers (image
        # store) and writes the copy as a layer of the read-write store (graphroot)
        assert len(after["mapped"]) == 1
        assert set(after["mapped"]) == new_graph_layers and not new_image_layers
        assert inode_cost >= FILES
    else:
        # Podman 5.8 on native overlay shares the layer through an idmapped mount: no copy
        assert after["mapped"] == [] and not new_graph_layers and not new_image_layers
        assert inode_cost < FILES / 4

    inv = inventory(host)
    facts = ansible_module(inv, host, "idmapguard.storage.idmap_support")["ansible_facts"]["idmapguard"]
    assert facts["podman"]["imagestore"] == IMAGESTORE
    assert facts["podman"]["origins"]["imagestore"] == "storage.conf /etc/containers/storage.conf"
    assert facts["graphroot"]["path"] == GRAPHROOT
    assert facts["graphroot"]["mapped_copies"] == len(after["mapped"])
    assert facts["verdict"] == ("needs_podman_upgrade" if copies else "shares"), facts["reasons"]

    # mapped_layers (issue 10a's module) finds the store the same way and counts the same copies
    report = ansible_module(inv, host, "idmapguard.storage.mapped_layers", "state=report")
    assert report["store"]["imagestore"] == IMAGESTORE
    assert report["mapped_copies"] == len(after["mapped"])

    # the rollout's remediate step runs exactly where Podman left a copy (policy always, as the
    # operator who wants every copy back sets it)
    steps = rollout_steps(StepInputs(facts=facts, remediate_policy="always"))
    assert steps["remediate"]["run"] is copies and steps["act"] is copies
