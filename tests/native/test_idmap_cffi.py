"""The C parser (src/idmap.c, through cffi) against the shared vectors, and against the
Python parser on random input (both must give the same verdict and error code)."""
import random

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils import idmap as pyidmap


def c_parse(mod, spec: bytes):
    ffi, lib = mod.ffi, mod.lib
    out = ffi.new("struct idmap *")
    err = ffi.new("struct idmap_error *")
    rc = lib.idmap_parse(spec, len(spec), out, err)
    if rc == 0:
        return [[e.container, e.host, e.size] for e in out.ext[0:out.n]], None
    code = ffi.string(lib.idmap_code_name(rc)).decode()
    assert code == ffi.string(lib.idmap_code_name(err.code)).decode()
    extent = spec[err.extent_off:err.extent_off + err.extent_len]
    return None, (code, extent, ffi.string(err.msg).decode("ascii"))


def test_valid_vectors(cparser, vectors):
    for case in vectors["valid"]:
        extents, error = c_parse(cparser, case["spec"].encode())
        assert error is None, (case["name"], error)
        assert extents == case["extents"], case["name"]


def test_invalid_vectors(cparser, vectors):
    for case in vectors["invalid"]:
        spec = case["spec"].encode("utf-8")
        extents, error = c_parse(cparser, spec)
        assert extents is None, "accepted: " + case["name"]
        code, extent, msg = error
        assert code == case["code"], case["name"]
        assert extent == case["extent"].encode("utf-8"), case["name"]
        shown = case["extent"]
        if shown and shown.isprintable() and shown.isascii() and len(shown) <= 64:
            assert "'%s'" % shown in msg, (case["name"], msg)


def test_proc_text_and_lookup(cparser):
    ffi, lib = cparser.ffi, cparser.lib
    m = ffi.new("struct idmap *")
    err = ffi.new("struct idmap_error *")
    spec = pyidmap.DEFAULT_UIDMAP.encode()
    assert lib.idmap_parse(spec, len(spec), m, err) == 0
    buf = ffi.new("char[4096]")
    n = lib.idmap_proc_text(m, buf, 4096)
    assert ffi.string(buf).decode() == pyidmap.uid_map_text(pyidmap.parse_idmap(pyidmap.DEFAULT_UIDMAP))
    assert n == len(ffi.string(buf))
    assert lib.idmap_proc_text(m, buf, 10) == -1
    host = ffi.new("uint32_t *")
    for container, want in [(0, 1065537), (65535, 1131072), (531571, 531571), (19997967, 19997967)]:
        assert lib.idmap_to_host(m, container, host) == 1 and host[0] == want
    for unmapped in (65536, 531570, 531572, 19997968):
        assert lib.idmap_to_host(m, unmapped, host) == 0


ALPHABET = "0123456789:,-" + "x 9"


@pytest.mark.parametrize("seed", range(4))
def test_c_and_python_agree_on_random_specs(cparser, seed):
    rng = random.Random(seed)
    pieces = ["0", "1", "65536", "1065537", "4294967295", "4294967294", "531571", "99999999999"]
    for _round in range(2500):
        if rng.random() < 0.5:
            spec = "".join(rng.choice(ALPHABET) for _char in range(rng.randint(0, 24)))
        else:
            spec = ",".join(":".join(rng.choice(pieces + [str(rng.randint(0, 300))]) for _part in range(3))
                            for _extent in range(rng.randint(1, 5)))
        extents, error = c_parse(cparser, spec.encode())
        try:
            py = pyidmap.parse_idmap(spec)
        except pyidmap.IDMapError as exc:
            assert error is not None, (spec, extents)
            assert (exc.code, exc.extent.encode()) == error[:2], spec
        else:
            assert error is None, (spec, error)
            assert [list(e) for e in py] == extents, spec
