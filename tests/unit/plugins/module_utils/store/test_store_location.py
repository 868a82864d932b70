# -*- coding: utf-8 -*-
"""The store's location as one value: made by podman_host, carried as a dict, built into a Store."""

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import settings_from_conf_text
from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store.errors import StoreError
from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import LocationError

CONF = """[storage]
driver = "overlay"
graphroot = "/srv/graph/"
runroot = "/run/store"
imagestore = "/srv/images"
transient_store = true
[storage.options]
additionalimagestores = ["/ro/one"]
"""


def test_settings_give_the_whole_location():
    location = settings_from_conf_text(CONF, "/etc/containers/storage.conf").location()
    assert location == StoreLocation("/srv/graph", "/run/store", "/srv/images", True, ("/ro/one",))
    assert location.as_dict() == {"graphroot": "/srv/graph", "runroot": "/run/store", "imagestore": "/srv/images",
                                  "transient_store": True, "additional_image_stores": ["/ro/one"],
                                  "driver": "overlay"}
    assert StoreLocation.from_dict(location.as_dict()) == location


def test_the_store_follows_every_part_of_the_location():
    store = Store(settings_from_conf_text(CONF).location())
    layout = store.layout
    assert layout.containers_lock == "/run/store/overlay-containers/containers.lock"  # transient_store
    assert layout.images_lock == "/srv/images/overlay-images/images.lock"            # imagestore
    assert layout.layers_lock == "/srv/graph/overlay-layers/layers.lock"
    assert store.additional == ["/ro/one"]


@pytest.mark.parametrize("value,words", [
    ({"graphroot": "relative", "runroot": "/r"}, "absolute"),
    ({"graphroot": "/g"}, "runroot must be an absolute path"),
    ({"graphroot": "/g", "runroot": "/r", "imagestore": "i"}, "imagestore"),
    ({"graphroot": "/g", "runroot": "/r", "transient_store": "yes"}, "transient_store"),
    ({"graphroot": "/g", "runroot": "/r", "additional_image_stores": "/a"}, "additional_image_stores"),
    ({"graphroot": "/g", "runroot": "/r", "graph_root": "/g"}, "graph_root"),
    (["/g", "/r"], "mapping"),
])
def test_bad_locations_are_refused_by_name(value, words):
    with pytest.raises(LocationError, match=words):
        StoreLocation.from_dict(value)


def test_a_store_is_built_from_a_location_only():
    with pytest.raises(TypeError):
        Store("/g", "/r")  # pylint: disable=too-many-function-args
    with pytest.raises(StoreError, match="vfs"):
        Store(StoreLocation("/g", "/r", driver="vfs"))
