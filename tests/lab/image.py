"""Offline tiny images: Debian's busybox-static plus N small files, built without a registry.

One layer: a rootfs tar for `podman import`. Several layers: a docker-archive (manifest.json,
config, one tar per layer) for `podman load`; the N files are spread over the layers.
Every image carries files owned by 531571 and 65534, so a second, single-ID map extent
(531571:531571:1) and the overflow ID both matter. Tars are built with numeric owners set in
the tar headers (nothing is chowned on disk) and cached under $LAB_CACHE/images/.
"""
import fcntl
import glob
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from typing import List, Optional, Tuple

try:
    from . import rootfs as lab_rootfs
except ImportError:
    import rootfs as lab_rootfs  # type: ignore

RECIPE_VERSION = "1"
APPLETS = ("sh", "true", "id", "ls", "cat", "stat", "sleep", "find", "wc", "mount", "head", "touch", "echo")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
          "far:x:531571:531571:far:/nonexistent:/bin/sh\n")
GROUP = "root:x:0:\nnogroup:x:65534:\nfar:x:531571:\n"
FIXED_MTIME = 1700000000  # same recipe, same bytes, same image ID


def busybox_binary() -> bytes:
    """bin/busybox from the busybox-static .deb of this machine's apt (downloaded once)."""
    d = os.path.join(lab_rootfs.lab_cache(), "debs")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        debs = sorted(glob.glob(os.path.join(d, "busybox-static_*.deb")))
        if not debs:
            subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", "busybox-static"], cwd=d, check=True,
                           stdout=subprocess.DEVNULL)
            debs = sorted(glob.glob(os.path.join(d, "busybox-static_*.deb")))
        with tempfile.TemporaryDirectory() as x:
            subprocess.run(["dpkg", "-x", debs[-1], x], check=True)
            with open(os.path.join(x, "bin/busybox"), "rb") as f:
                return f.read()


def _add(tar: tarfile.TarFile, name: str, data: Optional[bytes] = None, mode: int = 0o644,
         uid: int = 0, gid: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, uid, gid, FIXED_MTIME, link
    ti.size = len(data) if data is not None else 0
    tar.addfile(ti, io.BytesIO(data) if data is not None else None)


def _layer_tar(path: str, files: List[int], base: bool, busybox: bytes, note: str) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        if base:
            for d, mode in (("bin", 0o755), ("etc", 0o755), ("etc/fill", 0o755), ("tmp", 0o1777),
                            ("root", 0o700), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("run", 0o755)):
                _add(tar, d, mode=mode, kind=tarfile.DIRTYPE)
            _add(tar, "bin/busybox", busybox, 0o755)
            for a in APPLETS:
                _add(tar, f"bin/{a}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
            _add(tar, "etc/passwd", PASSWD.encode())
            _add(tar, "etc/group", GROUP.encode())
            _add(tar, "etc/hostname", b"lab\n")
            _add(tar, "etc/motd", f"idmapguard lab image: {note}\n".encode())
            _add(tar, "etc/owned-531571", b"far\n", uid=531571, gid=531571)
            _add(tar, "etc/owned-65534", b"nobody\n", uid=65534, gid=65534)
        for i in files:
            _add(tar, f"etc/fill/f{i:05d}", f"{i}\n".encode())


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(files: int = 300, layers: int = 1) -> Tuple[str, str]:
    """Return (path, kind) of the cached image: kind "rootfs" (import) or "docker-archive" (load)."""
    if files < 0 or layers < 1:
        raise ValueError("files >= 0 and layers >= 1")
    d = os.path.join(lab_rootfs.lab_cache(), "images")
    os.makedirs(d, exist_ok=True)
    kind = "rootfs" if layers == 1 else "docker-archive"
    out = os.path.join(d, f"bb-{files}f-{layers}l-v{RECIPE_VERSION}.{kind}.tar")
    if os.path.exists(out):
        return out, kind
    busybox = busybox_binary()
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        share = [list(range(1, files + 1))[i::layers] for i in range(layers)]
        note = f"{files} files in {layers} layer(s)"
        if layers == 1:
            _layer_tar(os.path.join(tmp, "img.tar"), share[0], True, busybox, note)
        else:
            diff_ids, names = [], []
            for i in range(layers):
                lp = os.path.join(tmp, f"layer{i}.tar")
                _layer_tar(lp, share[i], i == 0, busybox, note)
                digest = _sha256(lp)
                os.makedirs(os.path.join(tmp, digest))
                os.rename(lp, os.path.join(tmp, digest, "layer.tar"))
                diff_ids.append("sha256:" + digest)
                names.append(f"{digest}/layer.tar")
            config = json.dumps({
                "architecture": "amd64", "os": "linux",
                "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"idmapguard lab layer {i}"}
                            for i in range(layers)],
                "created": "2023-11-14T22:13:20Z",
            }, sort_keys=True).encode()
            cfg = hashlib.sha256(config).hexdigest() + ".json"
            manifest = json.dumps([{"Config": cfg, "RepoTags": [], "Layers": names}]).encode()
            with tarfile.open(os.path.join(tmp, "img.tar"), "w", format=tarfile.GNU_FORMAT) as tar:
                _add(tar, cfg, config)
                for n in names:
                    _add(tar, n.split("/")[0], kind=tarfile.DIRTYPE, mode=0o755)
                    tar.add(os.path.join(tmp, n), arcname=n)
                _add(tar, "manifest.json", manifest)
        os.rename(os.path.join(tmp, "img.tar"), out)  # atomic: concurrent builders write the same bytes
    return out, kind


def load_into(host, files: int = 300, layers: int = 1, tag: Optional[str] = None) -> str:
    """Put the image into HOST's podman under TAG (default localhost/bb:<files>); return TAG."""
    tag = tag or f"localhost/bb:{files}" + (f"-{layers}l" if layers > 1 else "")
    path, kind = build(files, layers)
    return import_into(host, path, kind, tag)


def import_into(host, path: str, kind: str, tag: str) -> str:
    """Put the cached image file PATH (kind "rootfs" or "docker-archive") into HOST's podman as TAG."""
    inside = f"/tmp/idmapguard-lab-image-{int(time.time() * 1000)}.tar"
    with open(path, "rb") as src:
        host.write_file(inside, src.read())
    try:
        if kind == "rootfs":
            host.podman("import", "-q", "--change", "CMD=/bin/sh", inside, tag, check=True)
        else:
            out = host.podman("load", "-q", "-i", inside, check=True).stdout
            image_id = out.strip().split()[-1].split(":")[-1]
            host.podman("tag", image_id, tag, check=True)
    finally:
        host.exec(["rm", "-f", inside])
    return tag
