"""Build the C ID-map parser (src/idmap.c) as a Python extension `_idmap_cffi` with cffi,
out of tree: `build_idmap_cffi.py OUTDIR` leaves the module in OUTDIR. The pytest tests in
tests/native run the shared vectors through it, so the C parser that the helper uses is
tested with the same table as plugins/module_utils/idmap.py."""
import os
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

CDEF = """
#define IDMAP_MAX_EXTENTS 340
#define IDMAP_MSG_MAX 320
struct idmap_extent { uint32_t container; uint32_t host; uint32_t size; };
struct idmap { size_t n; struct idmap_extent ext[IDMAP_MAX_EXTENTS]; };
struct idmap_error { int code; size_t extent_off; size_t extent_len; char msg[IDMAP_MSG_MAX]; };
int idmap_parse(const char *spec, size_t len, struct idmap *map, struct idmap_error *err);
const char *idmap_code_name(int code);
int idmap_proc_text(const struct idmap *map, char *buf, size_t buflen);
int idmap_to_host(const struct idmap *map, uint32_t container, uint32_t *host);
"""


def main() -> None:
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("_idmap_cffi", '#include "idmap.h"',
                   sources=[os.path.join(SRC, "idmap.c")], include_dirs=[SRC],
                   extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"])
    ffi.compile(tmpdir=out, verbose=False)


if __name__ == "__main__":
    main()
