"""The seed-size lab image: about 6,900 entries of a real Debian userland, built offline.

The seed's copy (almalinux:8) is ~6,860 files of a real distribution userland, where the
filler images of image.py are busybox plus tiny files. This image is taken from the lab's
cached bookworm root filesystem (rootfs.py), so it needs no registry and no network:

* a deterministic walk (sorted names) of the rootfs in a fixed order of trees (etc, usr/bin,
  usr/sbin, usr/lib64, usr/libexec, usr/lib, var, usr/share, usr/include), cut at exactly
  ``entries`` tar members; the parents of every member come first;
* files larger than ``MAX_FILE_BYTES`` are left out (the lab's compilers and Podman itself,
  not a base image's), except what running ``true`` needs (the loader and libc), so a copy
  costs about what the seed's does in bytes too (~100-200 MB, not 400);
* the rootfs's symlinks and hard links (perl, gunzip, ...) as they are, its setuid/setgid
  programs (passwd, su, mount, newuidmap, chage, ...) with their real owners and modes;
* added, since a minbase rootfs has none of them: one program with a file capability
  (``security.capability``, cap_net_raw+ep, as Debian's ping carries), user extended
  attributes on a file and a directory, and entries owned by 531571 and 65534 like the
  filler images (so the single-ID map extent 531571:531571:1 and the overflow ID matter).

One layer, a rootfs tar for ``podman import``, cached under $LAB_CACHE/images/ keyed by the
rootfs's recipe hash, this recipe's version and the entry count. ``describe()`` gives its
composition (what the benches and the report print).
"""
import hashlib
import io
import json
import os
import stat
import struct
import tarfile
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

try:
    from . import rootfs as lab_rootfs
except ImportError:
    import rootfs as lab_rootfs  # type: ignore

RECIPE_VERSION = "1"
SOURCE_SUITE = "bookworm"
DEFAULT_ENTRIES = 6900
MAX_FILE_BYTES = 1 << 20
# Needed to start the image's /usr/bin/true whatever the cap (resolved through the rootfs).
ALWAYS = ("usr/lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
          "usr/lib/x86_64-linux-gnu/libc.so.6")
TREES = ("etc", "usr/bin", "usr/sbin", "usr/lib64", "usr/libexec", "usr/lib", "var", "usr/share", "usr/include")
# Host-specific or lab-specific, not userland: never copied into an image.
EXCLUDE_PREFIXES = ("etc/ssh/ssh_host_", "etc/idmapguard-lab-podman-version", "etc/ssh/sshd_config.d/idmapguard",
                    "etc/resolv.conf", "etc/hostname", "var/cache/", "var/log/", "var/tmp/", "var/lib/apt/lists/")
EMPTY_DIRS = ("dev", "proc", "sys", "run", "tmp", "root", "home", "boot", "media", "mnt", "opt", "srv")
# vfs_cap_data revision 2, effective flag; permitted = CAP_NET_RAW (13): what `setcap cap_net_raw+ep` writes.
CAP_NET_RAW_EP = struct.pack("<IIIII", 0x02000000 | 0x1, 1 << 13, 0, 0, 0)
CAP_FILE = "usr/bin/idmapguard-net-raw"
XATTR_FILE = "usr/lib/os-release"
XATTR_DIR = "usr/share/doc"
XATTR_NAME = "user.idmapguard.origin"
FAR_ID = 531571
OVERFLOW_ID = 65534
# Hard links added (a minbase rootfs under the size cap has one, gunzip/uncompress): to a
# setuid program, to a plain program, and to a file of the far owner, across directories.
HARDLINKS = (("usr/local/sbin/su", "usr/bin/su"), ("usr/local/bin/true", "usr/bin/true"),
             ("home/far/owned-531571", "etc/owned-531571"))
# Members added to the rootfs's: (name, kind, mode, uid, gid, data)
ADDED = (
    ("home/far", tarfile.DIRTYPE, 0o750, FAR_ID, FAR_ID, None),
    ("home/far/.profile", tarfile.REGTYPE, 0o644, FAR_ID, FAR_ID, b"# owned by 531571\n"),
    ("etc/owned-531571", tarfile.REGTYPE, 0o644, FAR_ID, FAR_ID, b"far\n"),
    ("etc/owned-65534", tarfile.REGTYPE, 0o644, OVERFLOW_ID, OVERFLOW_ID, b"nobody\n"),
)


def _excluded(rel: str) -> bool:
    return any(rel == p.rstrip("/") or rel.startswith(p) for p in EXCLUDE_PREFIXES)


def _walk(root: str, top: str) -> Iterator[str]:
    """Paths (relative to root) under TOP, sorted, each directory before its contents."""
    start = os.path.join(root, top)
    if not os.path.lexists(start):
        return
    yield top
    if os.path.islink(start) or not os.path.isdir(start):
        return
    for name in sorted(os.listdir(start)):
        yield from _walk(root, top + "/" + name)


def _xattrs(path: str) -> Dict[str, bytes]:
    """user.* and security.capability of PATH (what a layer tar carries); none on symlinks."""
    out = {}
    try:
        for name in os.listxattr(path, follow_symlinks=False):
            if name.startswith("user.") or name == "security.capability":
                out[name] = os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        pass
    return out


class _Builder:
    def __init__(self, root: str, entries: int, tar: tarfile.TarFile) -> None:
        self.root, self.entries, self.tar = root, entries, tar
        self.names: List[str] = []
        self.seen = set()
        self.inodes: Dict[Tuple[int, int], str] = {}
        self.stats = {"entries": 0, "regular": 0, "dirs": 0, "symlinks": 0, "hardlinks": 0, "setuid": 0,
                      "setgid": 0, "caps": 0, "xattrs": 0, "bytes": 0, "owners": {}, "skipped_large": 0}

    def room(self) -> int:
        return self.entries - len(self.names)

    def _pax(self, ti: tarfile.TarInfo, xattrs: Dict[str, bytes]) -> None:
        if xattrs:
            # bytes as str through surrogateescape: tarfile writes them back byte for byte
            ti.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
            self.stats["xattrs"] += sum(1 for k in xattrs if k != "security.capability")
            self.stats["caps"] += 1 if "security.capability" in xattrs else 0

    def _count(self, ti: tarfile.TarInfo) -> None:
        self.names.append(ti.name)
        self.seen.add(ti.name)
        s = self.stats
        s["entries"] += 1
        kind = {tarfile.REGTYPE: "regular", tarfile.DIRTYPE: "dirs", tarfile.SYMTYPE: "symlinks",
                tarfile.LNKTYPE: "hardlinks"}[ti.type]
        s[kind] += 1
        if ti.type == tarfile.REGTYPE:
            s["setuid"] += 1 if ti.mode & stat.S_ISUID else 0
            s["setgid"] += 1 if ti.mode & stat.S_ISGID else 0
            s["bytes"] += ti.size
        owner = "%d:%d" % (ti.uid, ti.gid)
        s["owners"][owner] = s["owners"].get(owner, 0) + 1

    def add_path(self, rel: str, extra_xattrs: Optional[Dict[str, bytes]] = None,
                 name: Optional[str] = None, force: bool = False) -> bool:
        """Add rootfs path REL (as NAME), its missing parents first; False when it does not fit."""
        name = name or rel
        if name in self.seen or self.room() <= 0:
            return False
        parent = os.path.dirname(name)
        if parent and parent not in self.seen:
            if self.room() < 2 or not self.add_path(os.path.dirname(rel), name=parent):
                return False
        path = os.path.join(self.root, rel)
        st = os.lstat(path)
        ti = tarfile.TarInfo(name)
        ti.mode, ti.uid, ti.gid, ti.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        ti.uname = ti.gname = ""
        data = None
        if stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.inodes and extra_xattrs is None:
                ti.type, ti.linkname = tarfile.LNKTYPE, self.inodes[key]
            else:
                if st.st_size > MAX_FILE_BYTES and not force:
                    self.stats["skipped_large"] += 1
                    return False
                ti.type, ti.size = tarfile.REGTYPE, st.st_size
                if extra_xattrs is None:
                    self.inodes[key] = name
                with open(path, "rb") as handle:
                    data = handle.read()
        else:
            return False  # devices, fifos, sockets: not in an image layer
        xattrs = _xattrs(path) if ti.type in (tarfile.REGTYPE, tarfile.DIRTYPE) else {}
        xattrs.update(extra_xattrs or {})
        self._pax(ti, xattrs)
        self.tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        self._count(ti)
        return True

    def add_hardlink(self, name: str, target: str) -> None:
        """NAME as a hard link to the member TARGET (already added)."""
        if os.path.dirname(name) not in self.seen:
            self.add_path(os.path.dirname(name))
        for member in reversed(self.tar.getmembers()):
            if member.name == target:
                break
        else:
            raise ValueError("hard link target %s is not in the image" % target)
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname = tarfile.LNKTYPE, target
        ti.mode, ti.uid, ti.gid, ti.mtime = member.mode, member.uid, member.gid, member.mtime
        self.tar.addfile(ti)
        self._count(ti)

    def add_member(self, name: str, kind: bytes, mode: int, uid: int, gid: int, data: Optional[bytes]) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, 1700000000
        ti.size = len(data) if data is not None else 0
        self.tar.addfile(ti, io.BytesIO(data) if data is not None else None)
        self._count(ti)


def _build_tar(root: str, out: str, entries: int) -> Dict[str, object]:
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        b = _Builder(root, entries, tar)
        # The skeleton: top-level symlinks (bin -> usr/bin, ...) and directories, empty.
        for name in sorted(os.listdir(root)):
            if os.path.islink(os.path.join(root, name)) or name in EMPTY_DIRS:
                b.add_path(name)
        for name, kind, mode, uid, gid, data in ADDED:
            if os.path.dirname(name) and os.path.dirname(name) not in b.seen:
                b.add_path(os.path.dirname(name))
            b.add_member(name, kind, mode, uid, gid, data)
        for rel in ALWAYS:
            b.add_path(rel, force=True)
        for name, target in HARDLINKS:
            b.add_path(target)
            b.add_hardlink(name, target)
        b.add_path("usr/bin/true", extra_xattrs={"security.capability": CAP_NET_RAW_EP}, name=CAP_FILE)
        b.add_path(XATTR_FILE, extra_xattrs={XATTR_NAME: b"bookworm rootfs (file)"})
        b.add_path(XATTR_DIR, extra_xattrs={XATTR_NAME: b"bookworm rootfs (directory)"})
        for top in TREES:
            for rel in _walk(root, top):
                if b.room() <= 0:
                    break
                if not _excluded(rel):
                    b.add_path(rel)
        if b.room() > 0:
            raise lab_rootfs.RootfsError("the %s rootfs has only %d usable entries, %d wanted" % (
                SOURCE_SUITE, len(b.names), entries))
        return dict(b.stats)


def image_path(entries: int = DEFAULT_ENTRIES) -> str:
    key = "%s-%s-%d-%s" % (SOURCE_SUITE, lab_rootfs.recipe_hash(SOURCE_SUITE), entries, RECIPE_VERSION)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(lab_rootfs.lab_cache(), "images", "userland-%de-%s.rootfs.tar" % (entries, digest))


def build(entries: int = DEFAULT_ENTRIES, log=None) -> Tuple[str, str]:
    """Return (path, "rootfs") of the cached image, building it (and the bookworm rootfs) if missing."""
    out = image_path(entries)
    if os.path.exists(out):
        return out, "rootfs"
    root = lab_rootfs.ensure_rootfs(SOURCE_SUITE, log=log)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:
        tar_path = os.path.join(tmp, "img.tar")
        stats = _build_tar(root, tar_path, entries)
        with open(os.path.join(tmp, "img.json"), "w") as handle:
            json.dump(stats, handle, sort_keys=True, indent=1)
        os.rename(os.path.join(tmp, "img.json"), out + ".json")
        os.rename(tar_path, out)  # atomic: concurrent builders write the same bytes
    if log:
        log("lab: built the userland image %s" % out)
    return out, "rootfs"


def describe(entries: int = DEFAULT_ENTRIES) -> Dict[str, object]:
    """The image's composition (counts of each member kind, setuid, caps, xattrs, owners, bytes)."""
    path, _kind = build(entries)
    with open(path + ".json") as handle:
        return json.load(handle)


def describe_line(info: Dict[str, object]) -> str:
    return ("%(entries)d entries (%(regular)d files, %(dirs)d dirs, %(symlinks)d symlinks, %(hardlinks)d hard links), "
            "%(setuid)d setuid + %(setgid)d setgid, %(caps)d with a file capability, %(xattrs)d user xattrs, "
            "%(mb).0f MB" % dict(info, mb=int(info["bytes"]) / 1e6))
