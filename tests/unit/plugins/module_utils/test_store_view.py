# -*- coding: utf-8 -*-
"""store_view.json_snapshot reads the store through the Store API, under its locks."""

import json
import subprocess
import sys
import threading

from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import StorageSettings
from ansible_collections.idmapguard.storage.plugins.module_utils.store_view import json_snapshot

HOLD_LOCK = """
import fcntl, sys
with open(sys.argv[1], "r+") as f:
    fcntl.lockf(f, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.readline()
"""


def make_store(tmp_path):
    graphroot = tmp_path / "graph"
    layers = graphroot / "overlay-layers"
    layers.mkdir(parents=True)
    (layers / "layers.json").write_text(json.dumps([{"id": "a" * 64, "created": "now"}]))
    (layers / "layers.lock").write_text("")
    return StorageSettings(driver="overlay", graphroot=str(graphroot), runroot=str(tmp_path / "run"))


def test_snapshot_waits_for_a_writer_and_drops_timestamps(tmp_path):
    settings = make_store(tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, settings.graphroot + "/overlay-layers/layers.lock"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        out = []
        reader = threading.Thread(target=lambda: out.append(json_snapshot(settings)))
        reader.start()
        reader.join(0.5)
        # a Podman writer holds layers.lock: the snapshot must not read around it
        assert reader.is_alive() and not out
        writer.stdin.write("\n")
        writer.stdin.flush()
        reader.join(10)
        assert not reader.is_alive()
    finally:
        writer.kill()
        writer.wait()
    assert json.loads(out[0]) == {"layers": [{"id": "a" * 64}], "images": [], "containers": []}


def test_snapshot_of_a_store_podman_never_initialised(tmp_path):
    settings = StorageSettings(driver="overlay", graphroot=str(tmp_path / "none"), runroot=str(tmp_path / "run"))
    assert json.loads(json_snapshot(settings)) == {"layers": [], "images": [], "containers": []}
