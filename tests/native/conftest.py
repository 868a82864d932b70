"""Fixtures for the helper tests: the built binary, the cffi parser, real filesystems.

These tests need root (real mounts) and `make -C native all cffi` first; `make test-native`
does both. Every mount made here is undone by its fixture."""
import contextlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("NATIVE_BUILD", REPO / "native" / "build"))
HELPER = BUILD / "idmapped-mount"
VECTORS = REPO / "tests" / "vectors" / "idmap_specs.json"
SEED_MAP = "0:1065537:65536,531571:531571:1,19997967:19997967:1"


def run(argv: List[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, check=False, timeout=120, **kw)


@pytest.fixture(scope="session")
def helper() -> Path:
    assert HELPER.is_file(), "build the helper first: make -C native"
    return HELPER


@pytest.fixture(scope="session")
def cparser():
    """The C parser (src/idmap.c) as the cffi module _idmap_cffi."""
    sys.path.insert(0, str(BUILD / "cffi"))
    try:
        return importlib.import_module("_idmap_cffi")
    finally:
        sys.path.pop(0)


@pytest.fixture(scope="session")
def vectors() -> dict:
    with open(VECTORS, encoding="ascii") as f:
        return json.load(f)


@pytest.fixture(scope="session", autouse=True)
def need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("tests/native needs root: it makes real mounts")


@contextlib.contextmanager
def mounted(target: Path, argv: List[str]) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(argv + [str(target)], check=True, capture_output=True)
    try:
        yield target
    finally:
        # A plain umount first: a lazy one could leave the ext4 image mounted while the next
        # test mounts it again through another loop device.
        if subprocess.run(["umount", str(target)], check=False, capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture(scope="session")
def ext4_image(tmp_path_factory) -> Path:
    img = tmp_path_factory.mktemp("ext4img") / "scratch.ext4"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
    return img


@pytest.fixture
def ext4_dir(ext4_image, tmp_path) -> Iterator[Path]:
    with mounted(tmp_path / "ext4", ["mount", "-o", "loop", str(ext4_image)]) as mnt:
        # A fresh directory per test, so tests cannot see each other's leftovers.
        d = mnt / tmp_path.name
        d.mkdir()
        yield d
        subprocess.run(["rm", "-rf", "--one-file-system", str(d)], check=False)


@pytest.fixture
def tmpfs_dir(tmp_path) -> Iterator[Path]:
    with mounted(tmp_path / "tmpfs", ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs"]) as mnt:
        yield mnt


@pytest.fixture
def ramfs_dir(tmp_path) -> Iterator[Path]:
    """ramfs has no FS_ALLOW_IDMAP: the kernel refuses idmapped mounts on it."""
    with mounted(tmp_path / "ramfs", ["mount", "-t", "ramfs", "ramfs"]) as mnt:
        yield mnt


@pytest.fixture(params=["xfs", "btrfs"])
def other_disk_dir(request, tmp_path) -> Iterator[Path]:
    """xfs and btrfs (minimum sizes ~300 MB and ~110 MB: sparse files, cheap)."""
    img = tmp_path / ("scratch." + request.param)
    with open(img, "wb") as f:
        f.truncate(320 << 20)
    subprocess.run(["mkfs." + request.param, "-q", "-f", str(img)], check=True, capture_output=True)
    with mounted(tmp_path / request.param, ["mount", "-o", "loop", str(img)]) as mnt:
        yield mnt


@pytest.fixture(params=["ext4", "tmpfs"])
def idmap_capable_dir(request) -> Path:
    return request.getfixturevalue(request.param + "_dir")


def overflow_id(kind: str) -> int:
    with open("/proc/sys/fs/overflow%s" % kind, encoding="ascii") as f:
        return int(f.read())


def probe_mounts() -> List[str]:
    """Lines of our mountinfo that belong to a probe scratch dir."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return [ln for ln in f if "idmapped-mount-probe" in ln]
