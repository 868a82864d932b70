# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where containers/storage (overlay driver, versions 1.43 to 1.6x) keeps each file.

Matches store.go (getLayerStore/getImageStore/getContainerStore), layers.go (newLayerStore:
``layers.json`` + ``volatile-layers.json``, ``mountpoints.json`` in the runroot, tar-split
``<id>.tar-split.gz`` and the per-layer big-data dir ``overlay-layers/<id>``), images.go and
containers.go, and drivers/overlay/overlay.go (``overlay/<id>/{diff,work,merged,link,lower}``
and the short-name symlink ``overlay/l/<link>`` -> ``../<id>/diff``).

Every id that ends up in a path goes through :func:`checked_id` first: store metadata is
untrusted input.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
import re
from typing import List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import TamperedStoreError

_ID_RE = re.compile(r"\A[0-9a-f]{64}\Z")
# overlay.go generateID(): 26 characters of base32 (A-Z, 2-7); accept digits 0-9 to be lenient.
_LINK_RE = re.compile(r"\A[A-Z0-9]{26}\Z")

DRIVER = "overlay"


def is_valid_id(value: object) -> bool:
    """A layer/image/container id as c/storage makes it: 64 lowercase hex digits."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def checked_id(value: object, what: str) -> str:
    """Return ``value`` if it may be used in a path, raise TamperedStoreError otherwise."""
    if not is_valid_id(value):
        raise TamperedStoreError("%s has an invalid id %r (expected 64 lowercase hex digits)" % (what, value))
    return str(value)


def is_valid_link(value: str) -> bool:
    """The short name in ``overlay/<id>/link`` and ``overlay/l/``."""
    return _LINK_RE.match(value) is not None


class StoreLayout:
    """Paths of one overlay store. ``transient`` and ``imagestore`` follow storage.conf."""

    def __init__(self, graphroot: str, runroot: str, imagestore: Optional[str] = None,
                 transient: bool = False) -> None:
        if not graphroot or not os.path.isabs(graphroot):
            raise ValueError("graphroot must be an absolute path, got %r" % (graphroot,))
        if not runroot or not os.path.isabs(runroot):
            raise ValueError("runroot must be an absolute path, got %r" % (runroot,))
        if imagestore is not None and not os.path.isabs(imagestore):
            raise ValueError("imagestore must be an absolute path, got %r" % (imagestore,))
        self.graphroot = os.path.normpath(graphroot)
        self.runroot = os.path.normpath(runroot)
        self.imagestore = os.path.normpath(imagestore) if imagestore else None
        self.transient = transient

    # layers.go: layerdir = graphroot/overlay-layers, rundir = runroot/overlay-layers
    @property
    def layer_dir(self) -> str:
        return os.path.join(self.graphroot, DRIVER + "-layers")

    @property
    def layer_run_dir(self) -> str:
        return os.path.join(self.runroot, DRIVER + "-layers")

    @property
    def layers_lock(self) -> str:
        return os.path.join(self.layer_dir, "layers.lock")

    @property
    def mountpoints_lock(self) -> str:
        return os.path.join(self.layer_run_dir, "mountpoints.lock")

    @property
    def mountpoints_json(self) -> str:
        return os.path.join(self.layer_run_dir, "mountpoints.json")

    def layer_json_files(self) -> List[str]:
        """Every file a layer record may live in; c/storage < 1.44 writes only the first."""
        volatile_dir = self.layer_run_dir if self.transient else self.layer_dir
        files = [os.path.join(self.layer_dir, "layers.json"),
                 os.path.join(volatile_dir, "volatile-layers.json")]
        if self.imagestore:
            files.append(os.path.join(self.imagestore, DRIVER + "-layers", "layers.json"))
        return files

    # store.go getImageStore(): images live in the imagestore when one is set.
    @property
    def image_dir(self) -> str:
        return os.path.join(self.imagestore or self.graphroot, DRIVER + "-images")

    @property
    def images_lock(self) -> str:
        return os.path.join(self.image_dir, "images.lock")

    @property
    def images_json(self) -> str:
        return os.path.join(self.image_dir, "images.json")

    # containers.go: containers.json in the graphroot, volatile ones in the graphroot or, with
    # a transient store, everything in the runroot.
    @property
    def container_dir(self) -> str:
        return os.path.join(self.runroot if self.transient else self.graphroot, DRIVER + "-containers")

    @property
    def containers_lock(self) -> str:
        return os.path.join(self.container_dir, "containers.lock")

    def container_json_files(self) -> List[str]:
        run_dir = os.path.join(self.runroot, DRIVER + "-containers")
        graph_dir = os.path.join(self.graphroot, DRIVER + "-containers")
        return [os.path.join(graph_dir, "containers.json"),
                os.path.join(graph_dir, "volatile-containers.json"),
                os.path.join(run_dir, "containers.json"),
                os.path.join(run_dir, "volatile-containers.json")]

    # drivers/overlay: the layer's own directory and the short-name link directory.
    @property
    def driver_dir(self) -> str:
        return os.path.join(self.graphroot, DRIVER)

    @property
    def link_dir(self) -> str:
        return os.path.join(self.driver_dir, "l")

    def tar_split_name(self, layer_id: str) -> str:
        return checked_id(layer_id, "layer") + ".tar-split.gz"
