# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The correctness proof's image, built offline from what the host already has.

No registry: the image is a root filesystem tar for `podman import`, holding a few of the
host's own programs (BusyBox when the host has one, else sh, stat, cat, touch and chown) with
every shared library they load (read from their ELF headers, so no `ldd` is needed), plus the
files the proof checks: owned by 0, by a mapped id of a later extent, by an unmapped id, and an
executable carrying a v3 `security.capability` (written as a PAX xattr record).

Requires on the host: an ELF userland (glibc or musl, any architecture the kernel runs), and
either a BusyBox binary or the usual sh/stat/cat/touch/chown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import glob
import io
import os
import struct
import tarfile
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

# Programs the proof's script calls, each also a BusyBox applet.
TOOLS = ("sh", "stat", "cat", "touch", "chown", "true")
BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")
LIB_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")
FIXED_MTIME = 1700000000

PT_DYNAMIC, PT_INTERP, PT_LOAD = 2, 3, 1
DT_NEEDED, DT_STRTAB = 1, 5
VFS_CAP_REVISION_3 = 0x03000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
CAP_NET_BIND_SERVICE = 10


class ProofImageError(RuntimeError):
    """The host lacks what the proof image is made of (the message says what)."""


def elf_dependencies(path: str) -> Tuple[Optional[str], List[str]]:
    """(PT_INTERP path or None, DT_NEEDED names) of an ELF file; ProofImageError if not ELF."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"\x7fELF":
        raise ProofImageError("%s is not an ELF executable" % path)
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
        ph_fmt, dyn_fmt = endian + "IIQQQQQQ", endian + "qQ"
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
        ph_fmt, dyn_fmt = endian + "IIIIIIII", endian + "iI"
    loads = []  # type: List[Tuple[int, int, int]]
    interp = None  # type: Optional[str]
    dynamic = None  # type: Optional[Tuple[int, int]]
    for index in range(phnum):
        fields = struct.unpack_from(ph_fmt, data, phoff + index * phentsize)
        if is64:
            p_type, _flags, offset, vaddr, _paddr, filesz = fields[:6]
        else:
            p_type, offset, vaddr, _paddr, filesz = fields[:5]
        if p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_INTERP:
            interp = data[offset:offset + filesz].split(b"\0")[0].decode("utf-8", "replace")
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return interp, []
    entry = struct.calcsize(dyn_fmt)
    needed_offsets, strtab = [], None  # type: List[int], Optional[int]
    for pos in range(dynamic[0], dynamic[0] + dynamic[1] - entry + 1, entry):
        tag, value = struct.unpack_from(dyn_fmt, data, pos)
        if tag == 0:
            break
        if tag == DT_NEEDED:
            needed_offsets.append(value)
        elif tag == DT_STRTAB:
            strtab = value
    if strtab is None:
        return interp, []
    base = None
    for vaddr, offset, filesz in loads:
        if vaddr <= strtab < vaddr + filesz:
            base = strtab - vaddr + offset
    if base is None:
        raise ProofImageError("%s: string table outside its loaded segments" % path)
    names = [data[base + off:data.index(b"\0", base + off)].decode("utf-8", "replace") for off in needed_offsets]
    return interp, names


def library_dirs(interp: Optional[str] = None, conf: str = "/etc/ld.so.conf") -> List[str]:
    """Where the dynamic loader looks: the interpreter's directory, ld.so.conf(.d), the defaults."""
    dirs = []  # type: List[str]

    def read(path: str, depth: int = 0) -> None:
        try:
            with open(path) as handle:
                lines = handle.read().splitlines()
        except (IOError, OSError):
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include") and depth < 4:
                pattern = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
                if not os.path.isabs(pattern):
                    pattern = os.path.join(os.path.dirname(path), pattern)
                for included in sorted(glob.glob(pattern)):
                    read(included, depth + 1)
            elif line:
                dirs.append(line)

    if interp:
        dirs.append(os.path.dirname(interp))
    read(conf)
    multiarch = [d for d in glob.glob("/usr/lib/*-linux-gnu*") + glob.glob("/lib/*-linux-gnu*") if os.path.isdir(d)]
    seen = []  # type: List[str]
    for directory in dirs + sorted(multiarch) + list(LIB_DIRS):
        if directory not in seen:
            seen.append(directory)
    return seen


def closure(programs: Sequence[str]) -> List[str]:
    """The programs, their interpreter and every shared library they load (host paths)."""
    out = []  # type: List[str]
    todo = list(programs)
    dirs = None  # type: Optional[List[str]]
    while todo:
        path = todo.pop(0)
        if path in out:
            continue
        out.append(path)
        interp, needed = elf_dependencies(os.path.realpath(path))
        if interp and interp not in out:
            todo.append(interp)
        if dirs is None and needed:
            dirs = library_dirs(interp)
        for name in needed:
            found = next((os.path.join(d, name) for d in (dirs or []) if os.path.exists(os.path.join(d, name))), None)
            if found is None:
                raise ProofImageError("%s needs %s, which is in none of %s" % (path, name, ", ".join(dirs or [])))
            todo.append(found)
    return out


def _which(name: str, dirs: Iterable[str] = BIN_DIRS) -> Optional[str]:
    for directory in dirs:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_toolbox(busybox_paths: Sequence[str] = BUSYBOX_PATHS, bin_dirs: Sequence[str] = BIN_DIRS) -> Dict[str, str]:
    """{tool name: host path}: BusyBox for every tool when there is one, else each program."""
    for path in busybox_paths:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return {name: path for name in TOOLS}
    tools = {}  # type: Dict[str, str]
    missing = []  # type: List[str]
    for name in TOOLS:
        path = _which(name, bin_dirs)
        if path is None:
            missing.append(name)
        else:
            tools[name] = path
    if missing:
        raise ProofImageError("the proof image is built from the host's programs, and %s is missing (no BusyBox either)"
                              % ", ".join(missing))
    return tools


def v3_capability(rootid: int, cap: int = CAP_NET_BIND_SERVICE) -> bytes:
    """A v3 security.capability value: `cap` permitted and effective, owned by `rootid`."""
    return struct.pack("<IIIIII", VFS_CAP_REVISION_3 | VFS_CAP_FLAGS_EFFECTIVE, 1 << cap, 0, 0, 0, rootid)


def parse_capability(value: Optional[bytes]) -> Dict[str, object]:
    """Revision and rootid of a security.capability value (v2 has rootid 0 by definition)."""
    if not value:
        return {"revision": None, "rootid": None}
    magic, = struct.unpack_from("<I", value, 0)
    revision = magic >> 24
    rootid = struct.unpack_from("<I", value, 20)[0] if revision == 3 and len(value) >= 24 else 0
    return {"revision": revision, "rootid": rootid}


def _add(tar: tarfile.TarFile, name: str, data: Optional[bytes] = None, mode: int = 0o644, uid: int = 0,
         gid: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "", xattrs: Optional[Dict[str, bytes]] = None) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime, info.linkname = kind, mode, uid, gid, FIXED_MTIME, link
    info.size = len(data) if data is not None else 0
    if xattrs:
        info.pax_headers = {"SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape")
                            for key, value in xattrs.items()}
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def write_proof_tar(path: str, tools: Dict[str, str], mapped_id: int, unmapped_id: int, cap_rootid: int) -> List[str]:
    """Write the proof's root filesystem; return the host files it copied."""
    files = closure(sorted(set(tools.values())))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        made = set()  # type: Set[str]

        def parents(inside: str) -> None:
            parts = inside.strip("/").split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    _add(tar, directory, mode=0o755, kind=tarfile.DIRTYPE)

        for directory, mode in (("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("proof", 0o755)):
            made.add(directory)
            _add(tar, directory, mode=mode, kind=tarfile.DIRTYPE)
        for host_path in files:
            inside = os.path.realpath(host_path).lstrip("/")
            parents(inside)
            with open(host_path, "rb") as handle:
                _add(tar, inside, handle.read(), mode=0o755)
            # the name a program was found under, and the loader's own name, point at the file
            if host_path.lstrip("/") != inside:
                parents(host_path.lstrip("/"))
                _add(tar, host_path.lstrip("/"), kind=tarfile.SYMTYPE, link="/" + inside, mode=0o777)
        parents("bin/x")
        for name, host_path in sorted(tools.items()):
            if "bin/" + name not in (f.lstrip("/") for f in files):
                _add(tar, "bin/" + name, kind=tarfile.SYMTYPE, link="/" + os.path.realpath(host_path).lstrip("/"),
                     mode=0o777)
        _add(tar, "proof/cap", mode=0o755, kind=tarfile.DIRTYPE)
        _add(tar, "proof/owned-root", b"root\n")
        _add(tar, "proof/owned-mapped", b"mapped\n", uid=mapped_id, gid=mapped_id)
        _add(tar, "proof/owned-unmapped", b"unmapped\n", uid=unmapped_id, gid=unmapped_id)
        with open(os.path.realpath(tools["true"]), "rb") as handle:
            _add(tar, "proof/cap/true", handle.read(), mode=0o755,
                 xattrs={"security.capability": v3_capability(cap_rootid)})
    return files
