"""plugins/module_utils/idmap.py against the shared vectors (the C parser is tested against
the same file in tests/native/test_idmap_cffi.py)."""
import json
from pathlib import Path

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import idmap

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "vectors" / "idmap_specs.json").read_text("ascii"))


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_valid(case):
    extents = idmap.parse_idmap(case["spec"])
    assert [list(e) for e in extents] == case["extents"]
    assert all(isinstance(e, tuple) for e in extents)
    assert idmap.is_contiguous(extents) is case["contiguous"]
    # format_idmap is the inverse (up to leading zeros, which it drops)
    assert idmap.parse_idmap(idmap.format_idmap(extents)) == extents
    storage = [{"container_id": c, "host_id": h, "size": s} for c, h, s in extents]
    assert idmap.from_storage_json(storage) == extents


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_invalid(case):
    with pytest.raises(idmap.IDMapError) as exc:
        idmap.parse_idmap(case["spec"])
    assert isinstance(exc.value, ValueError)
    assert exc.value.code == case["code"]
    assert exc.value.extent == case["extent"]
    if case["extent"]:
        assert "'%s'" % case["extent"] in str(exc.value)


def test_defaults_are_non_contiguous_with_three_extents():
    for spec in (idmap.DEFAULT_UIDMAP, idmap.DEFAULT_GIDMAP):
        extents = idmap.parse_idmap(spec)
        assert len(extents) == 3 and not idmap.is_contiguous(extents)


def test_format_and_proc_text():
    extents = [(0, 1065537, 65536), (531571, 531571, 1)]
    assert idmap.format_idmap(extents) == "0:1065537:65536,531571:531571:1"
    assert idmap.uid_map_text(extents) == "0 1065537 65536\n531571 531571 1\n"


@pytest.mark.parametrize("entries, code", [
    ([], "empty"),
    ([{"container_id": 0, "host_id": 1}], "syntax"),
    ([{"container_id": 0, "host_id": 1, "size": "1"}], "syntax"),
    ([{"container_id": 0, "host_id": 1, "size": True}], "syntax"),
    (["0:1:1"], "syntax"),
    ([{"container_id": -1, "host_id": 1, "size": 1}], "negative"),
    ([{"container_id": 0, "host_id": 1, "size": 0}], "zero_size"),
    ([{"container_id": 0, "host_id": 2 ** 32, "size": 1}], "overflow"),
    ([{"container_id": 0, "host_id": 1, "size": 5}, {"container_id": 4, "host_id": 100, "size": 1}],
     "overlap_container"),
])
def test_from_storage_json_rejects(entries, code):
    with pytest.raises(idmap.IDMapError) as exc:
        idmap.from_storage_json(entries)
    assert exc.value.code == code


def test_non_string_spec():
    with pytest.raises(idmap.IDMapError):
        idmap.parse_idmap(None)  # type: ignore[arg-type]
