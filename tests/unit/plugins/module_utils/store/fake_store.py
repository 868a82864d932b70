# -*- coding: utf-8 -*-
"""A synthetic overlay store laid out the way containers/storage writes one.

Unit tests only: the real-Podman proof lives in tests/integration/test_remediate*.py.
"""

import hashlib
import json
import os
import random
import string
import time

NONCONTIG = [{"container_id": 0, "host_id": 1065537, "size": 65536},
             {"container_id": 531571, "host_id": 531571, "size": 1}]


def gid(seed):
    return hashlib.sha256(seed.encode()).hexdigest()


def go_time(offset=0.0):
    stamp = time.time() + offset
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + ".123456789Z"


class FakeStore:
    """Build layers, images, containers and mounts; every id is a sha256 of a name."""

    def __init__(self, root):
        self.root = str(root)
        self.graphroot = os.path.join(self.root, "graph")
        self.runroot = os.path.join(self.root, "run")
        self.outside = os.path.join(self.root, "outside")
        for d in ("overlay/l", "overlay-layers", "overlay-images", "overlay-containers"):
            os.makedirs(os.path.join(self.graphroot, d))
        os.makedirs(os.path.join(self.runroot, "overlay-layers"))
        os.makedirs(os.path.join(self.runroot, "overlay-containers"))
        os.makedirs(self.outside)
        with open(os.path.join(self.outside, "precious"), "w") as handle:
            handle.write("must survive")
        for lock in ("overlay-layers/layers.lock", "overlay-images/images.lock",
                     "overlay-containers/containers.lock"):
            self._write(os.path.join(self.graphroot, lock), b"\0" * 64)
        self._write(os.path.join(self.runroot, "overlay-layers/mountpoints.lock"), b"\0" * 64)
        self.layers = []
        self.images = []
        self.containers = []
        self.mounts = []
        self.rng = random.Random(7)

    @staticmethod
    def _write(path, data):
        with open(path, "wb") as handle:
            handle.write(data)

    def path(self, *parts):
        return os.path.join(self.graphroot, *parts)

    def add_layer(self, name, parent=None, files=5, uidmap=None, age=3600.0, flags=None, extra=None, template=None):
        layer_id = gid(name)
        link = "".join(self.rng.choice(string.ascii_uppercase) for _index in range(26))
        ldir = self.path("overlay", layer_id)
        os.makedirs(os.path.join(ldir, "diff", "etc", "sub"))
        for name_ in ("work", "merged"):
            os.makedirs(os.path.join(ldir, name_))
        for i in range(files):
            self._write(os.path.join(ldir, "diff", "etc" if i % 2 else "etc/sub", "f%d" % i), b"x" * 10)
        self._write(os.path.join(ldir, "link"), link.encode())
        os.symlink("../%s/diff" % layer_id, self.path("overlay", "l", link))
        self._write(self.path("overlay-layers", layer_id + ".tar-split.gz"), b"ts")
        record = {"id": layer_id, "created": go_time(-age), "diff-digest": "sha256:" + gid(name + "d"),
                  "x-unknown-field": {"keep": True}}
        if template:  # layers.go create(): a copy takes its template's digests
            record["diff-digest"] = self.record(template)["diff-digest"]
        if parent:
            record["parent"] = parent
        if uidmap:
            record["uidmap"] = uidmap
            record["gidmap"] = uidmap
        if flags:
            record["flags"] = flags
        record.update(extra or {})
        self.layers.append(record)
        return layer_id

    def record(self, layer_id):
        return next(r for r in self.layers if r["id"] == layer_id)

    def add_image(self, name, top, mapped=(), names=None):
        image_id = gid("image:" + name)
        record = {"id": image_id, "names": names or ["localhost/%s:latest" % name], "layer": top,
                  "x-image-unknown": [1, 2]}
        if mapped:
            record["mapped-layers"] = list(mapped)
        self.images.append(record)
        return image_id

    def add_container(self, name, image_id, parent_layer):
        layer_id = self.add_layer("ctr-layer:" + name, parent=parent_layer, files=1, uidmap=NONCONTIG)
        self.containers.append({"id": gid("ctr:" + name), "image": image_id, "layer": layer_id})
        return layer_id

    def mount(self, layer_id):
        self.mounts.append({"id": layer_id, "path": self.path("overlay", layer_id, "merged"), "count": 1})

    def save(self):
        self._write(self.path("overlay-layers", "layers.json"), json.dumps(self.layers).encode())
        self._write(self.path("overlay-images", "images.json"), json.dumps(self.images).encode())
        self._write(self.path("overlay-containers", "containers.json"), json.dumps(self.containers).encode())
        self._write(os.path.join(self.runroot, "overlay-layers", "mountpoints.json"), json.dumps(self.mounts).encode())
        return self

    def read(self, rel):
        with open(self.path(rel)) as handle:
            return json.load(handle)

    def token(self, rel):
        with open(self.path(rel), "rb") as handle:
            return handle.read(64)

    def snapshot(self):
        """Every path under the root (with symlink targets): to prove nothing else changed."""
        out = set()
        for top, dirs, files in os.walk(self.root):
            for name in dirs + files:
                full = os.path.join(top, name)
                out.add((os.path.relpath(full, self.root), os.readlink(full) if os.path.islink(full) else None))
        return out


def standard(store):
    """One image with a top layer (parent: a base layer), three copies:
    C0 used by a container, C1 and C2 unused; plus a second image with one unused copy."""
    base = store.add_layer("base", files=3)
    top = store.add_layer("top", parent=base, files=6)
    copies = [store.add_layer("copy%d" % i, parent=base, files=6, uidmap=NONCONTIG, template=top) for i in range(3)]
    image = store.add_image("app", top, copies)
    store.add_container("c0", image, copies[0])
    top2 = store.add_layer("top2", files=4)
    copy2 = store.add_layer("copy-img2", files=4, uidmap=NONCONTIG, template=top2)
    image2 = store.add_image("other", top2, [copy2])
    store.save()
    return {"base": base, "top": top, "copies": copies, "image": image, "top2": top2, "copy2": copy2,
            "image2": image2}
