# -*- coding: utf-8 -*-
"""The consistency gate: its rules as a table, then the Store refusing (prune) or marking
(report) a store that fails it, with nothing changed on disk."""

import json
import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.store import Store, StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.store.consistency import (
    InconsistentStoreError, LayerFile, gate_findings, read_layer_file,
)

from ansible_collections.idmapguard.storage.tests.unit.plugins.module_utils.store.fake_store import gid, standard

L1, L2, L3, TOP, COPY, OTHER = (gid(n) for n in ("l1", "l2", "l3", "top", "copy", "other"))
MAIN = "/g/overlay-layers/layers.json"
VOLATILE = "/g/overlay-layers/volatile-layers.json"


def files(main=None, volatile=None):
    """Layer files from short specs: None absent, "" 0 bytes, "!x" does not parse, list of ids."""
    out = []
    for path, spec, is_main in ((MAIN, main, True), (VOLATILE, volatile, False)):
        if spec is None:
            out.append(LayerFile(path=path, exists=False, main=is_main))
        elif spec == "":
            out.append(LayerFile(path=path, exists=True, size=0, main=is_main))
        elif isinstance(spec, str) and spec.startswith("!"):
            out.append(LayerFile(path=path, exists=True, size=10, error=spec[1:], main=is_main))
        else:
            out.append(LayerFile(path=path, exists=True, size=2 + 70 * len(spec), ids=list(spec), main=is_main))
    return out


def layers_of(*records):
    return {r["id"]: r for r in records}


IMAGE = {"id": gid("img"), "names": ["localhost/app:1"], "layer": TOP, "mapped-layers": [COPY]}
GOOD_LAYERS = layers_of({"id": L1}, {"id": TOP, "parent": L1}, {"id": COPY, "parent": L1})

# (case, layer files, images, layers (None: a file does not parse), additional ids, expected first finding or None)
TABLE = [
    ("consistent", files([L1, TOP, COPY]), [IMAGE], GOOD_LAYERS, (), None),
    ("no images, no layers", files(None), [], {}, (), None),
    ("no images, [] layers", files([]), [], {}, (), None),
    ("null layers.json, no images", files([]), [], {}, (), None),
    ("volatile layer holds the copy", files([L1, TOP], [COPY]), [IMAGE], GOOD_LAYERS, (), None),
    ("parent in an additional image store", files([TOP]), [dict(IMAGE, **{"mapped-layers": []})],
     layers_of({"id": TOP, "parent": L1}), (L1,), None),
    ("top layer in an additional image store", files([]), [dict(IMAGE, **{"mapped-layers": []})], {}, (TOP,),
     MAIN + " lists no layers while images.json lists 1 image(s)"),
    ("[] with images", files([]), [IMAGE], {}, (),
     MAIN + " lists no layers while images.json lists 1 image(s)"),
    ("0 bytes with images", files(""), [IMAGE], {}, (),
     MAIN + " is 0 bytes (c/storage writes [] for no layers, never an empty file)"),
    ("0 bytes without images", files(""), [], {}, (),
     MAIN + " is 0 bytes (c/storage writes [] for no layers, never an empty file)"),
    ("missing with images", files(None), [IMAGE], {}, (),
     MAIN + " does not exist while images.json lists 1 image(s)"),
    ("truncated", files("!not valid JSON (Expecting ',' delimiter)"), [IMAGE], None, (),
     MAIN + " is not valid JSON (Expecting ',' delimiter)"),
    ("volatile file truncated", files([L1, TOP, COPY], "!not valid JSON (x)"), [IMAGE], None, (),
     VOLATILE + " is not valid JSON (x)"),
    ("top layer missing", files([L1, COPY]), [IMAGE], layers_of({"id": L1}, {"id": COPY, "parent": L1}), (),
     "image %s (localhost/app:1): its top layer %s is not in any layer file" % (IMAGE["id"][:12], TOP[:12])),
    ("mapped layer missing", files([L1, TOP]), [IMAGE], layers_of({"id": L1}, {"id": TOP, "parent": L1}), (),
     "image %s (localhost/app:1): mapped layer %s is not in any layer file" % (IMAGE["id"][:12], COPY[:12])),
    ("parent missing", files([TOP, COPY]), [IMAGE],
     layers_of({"id": TOP, "parent": L1}, {"id": COPY, "parent": L1}), (),
     "layer %s: its parent %s is not in any layer file" % (TOP[:12], L1[:12])),
    ("top layer before mapped layer", files([L1]), [IMAGE], layers_of({"id": L1}), (),
     "image %s (localhost/app:1): its top layer %s is not in any layer file" % (IMAGE["id"][:12], TOP[:12])),
]


@pytest.mark.parametrize("case,layer_files,images,layers,additional,first", TABLE, ids=[row[0] for row in TABLE])
def test_gate_rules(case, layer_files, images, layers, additional, first):
    findings = gate_findings(layer_files, images, layers, additional)
    if first is None:
        assert findings == [], case
    else:
        assert findings and findings[0] == first, (case, findings)


@pytest.mark.parametrize("content,size,error", [
    (b"", 0, None), (b"[]", 2, None), (b"null", 4, None), (b'[{"id":"a"}', 11, "not valid JSON"),
    (b'{"id":"a"}', 10, "not a JSON list of objects"), (b"\xff\xfe", 2, "not valid JSON"),
])
def test_layer_file_facts(tmp_path, content, size, error):
    path = tmp_path / "layers.json"
    path.write_bytes(content)
    facts = read_layer_file(str(path))
    assert facts.exists and facts.size == size
    assert (facts.error or "").startswith(error or "") and bool(facts.error) == bool(error)
    assert not read_layer_file(str(tmp_path / "absent.json")).exists


def _write_layers(fake_store, how, ids):
    path = fake_store.path("overlay-layers", "layers.json")
    if how == "[]":
        data = b"[]"
    elif how == "0-byte":
        data = b""
    elif how == "truncated":
        whole = json.dumps(fake_store.layers).encode()
        data = whole[:len(whole) // 2]
    elif how == "top-missing":
        data = json.dumps([r for r in fake_store.layers if r["id"] != ids["top"]]).encode()
    with open(path, "wb") as handle:
        handle.write(data)


@pytest.mark.parametrize("how,first", [
    ("[]", "lists no layers while images.json lists 2 image(s)"),
    ("0-byte", "is 0 bytes"),
    ("truncated", "is not valid JSON"),
    ("top-missing", "its top layer"),
])
def test_inconsistent_store_is_refused_and_reported(fake_store, how, first):
    ids = standard(fake_store)
    _write_layers(fake_store, how, ids)
    before = fake_store.snapshot()
    layers_before = open(fake_store.path("overlay-layers", "layers.json"), "rb").read()
    images_before = open(fake_store.path("overlay-images", "images.json"), "rb").read()
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    with pytest.raises(InconsistentStoreError) as err:
        store.prune_plan(0)
    assert first in str(err.value) and str(err.value).endswith("nothing was changed")
    report = store.inventory()
    assert report.consistency == "inconsistent" and first in report.inconsistencies[0]
    assert report.copies == [] and len(report.images) == 2
    as_dict = report.as_dict()
    assert as_dict["mapped_copies"] == 0 and as_dict["consistency"] == "inconsistent"
    assert fake_store.snapshot() == before
    assert open(fake_store.path("overlay-layers", "layers.json"), "rb").read() == layers_before
    assert open(fake_store.path("overlay-images", "images.json"), "rb").read() == images_before


def test_gate_runs_again_under_the_write_locks(fake_store):
    """A plan made on a good store is not carried out when layers.json is emptied meanwhile."""
    ids = standard(fake_store)
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    plan = store.prune_plan(60)
    assert plan.copies
    _write_layers(fake_store, "[]", ids)
    before = fake_store.snapshot()
    with pytest.raises(InconsistentStoreError):
        store.prune(plan, 60)
    assert fake_store.snapshot() == before
    assert not os.path.exists(fake_store.path("idmapguard-staging"))


def test_copy_listed_under_two_images_is_one_copy(fake_store):
    ids = standard(fake_store)
    shared = ids["copies"][1]
    fake_store.images[1]["mapped-layers"].append(shared)
    fake_store.save()
    store = Store(StoreLocation(fake_store.graphroot, fake_store.runroot))
    inventory = store.inventory()
    listed = [c for c in inventory.copies if c.layer_id == shared]
    assert len(listed) == 1 and listed[0].also_listed_by == [ids["image2"]]
    plan = store.prune_plan(60)
    assert plan.layer_ids.count(shared) == 1
    result = store.prune(plan, 60)
    assert [c.layer_id for c in result.removed].count(shared) == 1
    assert result.inodes_freed == sum(c.inodes for c in result.removed)
    images = fake_store.read("overlay-images/images.json")
    assert all(shared not in (i.get("mapped-layers") or []) for i in images)
