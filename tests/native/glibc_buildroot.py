"""A cached Debian build root with an old glibc, to build and run the helper against it.

The helper must build with glibc 2.28 (RHEL 8) to 2.41 (trixie). The oldest suite this
machine's Debian mirror still serves is bullseye (glibc 2.31, which has no strerrorname_np and
so takes the fallback in native/src/errors.c). The build root is debootstrap'd once per recipe
into $LAB_CACHE/buildroot/<suite>-<hash>/ (temporary directory renamed into place under a lock,
like the lab's root filesystems) and entered in a private mount namespace; nothing runs Podman
in it, so a plain chroot is fine (the lab's rule "pivot_root, never chroot" is for Podman hosts).

CLI: python tests/native/glibc_buildroot.py [SUITE]   builds (or finds) it and prints its path.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from tests.lab.rootfs import lab_cache, machine_mirror  # noqa: E402

OLDEST_SUITE = "bullseye"
PACKAGES = ["gcc", "libc6-dev", "make"]
BUILD_SCRIPT = r"""
set -eu
D=$1 SUITE=$2 MIRROR=$3 PKGS=$4
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$D" "$MIRROR"
chroot "$D" /usr/bin/ldd --version | head -1 > "$D/etc/idmapguard-glibc-version"
chroot "$D" /usr/bin/apt-get clean
"""


class BuildrootError(RuntimeError):
    """The build root could not be made."""


def buildroot_path(suite: str, mirror: Optional[str] = None) -> str:
    text = "\n".join([suite, mirror or machine_mirror(), " ".join(PACKAGES), BUILD_SCRIPT])
    return os.path.join(lab_cache(), "buildroot", "%s-%s" % (suite, hashlib.sha256(text.encode()).hexdigest()[:12]))


def _built(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "etc", "idmapguard-glibc-version"))


def ensure_buildroot(suite: str = OLDEST_SUITE) -> str:
    final = buildroot_path(suite)
    if _built(final):
        return final
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _built(final):
            return final
        tmp = "%s.tmp-%d" % (final, os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        with open(final + ".log", "w") as out:
            proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", BUILD_SCRIPT,
                                   "buildroot", tmp, suite, machine_mirror(), ",".join(PACKAGES)],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            with open(final + ".log", errors="replace") as f:
                raise BuildrootError("debootstrap %s failed (rc=%d), log %s:\n%s"
                                     % (suite, proc.returncode, final + ".log", "".join(f.readlines()[-15:])))
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    return final


def glibc_version(root: str) -> str:
    with open(os.path.join(root, "etc", "idmapguard-glibc-version")) as f:
        return f.read().strip().split()[-1]


def run_in(root: str, argv: List[str], bind: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run argv inside the build root, with the host directory `bind` mounted at /src."""
    script = ('set -e; mkdir -p "$1/src" "$1/proc"; mount --bind "$2" "$1/src"; mount -t proc proc "$1/proc"; '
              'R=$1; shift 2; exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root '
              'LANG=C.UTF-8 "$@"')
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "run-in",
                           root, bind] + argv, capture_output=True, text=True, timeout=timeout, check=False)


if __name__ == "__main__":
    path = ensure_buildroot(sys.argv[1] if len(sys.argv) > 1 else OLDEST_SUITE)
    print(path, glibc_version(path))
