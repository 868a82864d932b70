"""A cached Debian build root with an old glibc, to build and run the helper against it.

The helper must build with glibc 2.28 (RHEL 8) to 2.41 (trixie). The oldest suite this
machine's Debian mirror still serves is bullseye (glibc 2.31, which has no strerrorname_np and
so takes the fallback in native/src/errors.c). The build root is debootstrap'd once per recipe
into $LAB_CACHE/buildroot/<suite>-<hash>/ (temporary directory renamed into place under a lock,
like the lab's root filesystems) and entered in a private mount namespace; nothing runs Podman
in it, so a plain chroot is fine (the lab's rule "pivot_root, never chroot" is for Podman hosts).

CLI: python tests/native/glibc_buildroot.py [--suite SUITE] [--build DEST]
builds (or finds) the root and prints its path and glibc version; with --build, also builds the
helper and the errno test binaries there from this checkout's native/ and copies them to DEST,
with DEST/cffi pointing at this machine's cffi build, so `NATIVE_BUILD=DEST pytest tests/native`
runs the helper's tests on the old-glibc build.
"""
import argparse
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


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARIES = ("idmapped-mount", "errno-names", "errno-names-table")


def build_helper(root: str, dest: str) -> None:
    """Build native/ inside `root` (a scratch build directory in the root) and copy the binaries to dest."""
    inside = "/tmp/idmapguard-native-build"
    shutil.rmtree(root + inside, ignore_errors=True)
    proc = run_in(root, ["make", "-C", "/src/native", "BUILD=" + inside, "all", "test-bins"], bind=REPO)
    if proc.returncode != 0:
        raise BuildrootError("building native/ in %s failed (rc=%d):\n%s%s"
                             % (root, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    os.makedirs(dest, exist_ok=True)
    for name in BINARIES:
        shutil.copy2(os.path.join(root + inside, name), os.path.join(dest, name))
    with open(os.path.join(dest, "glibc-version"), "w") as f:
        f.write(glibc_version(root) + "\n")
    cffi = os.path.join(REPO, "native", "build", "cffi")
    link = os.path.join(dest, "cffi")
    if os.path.isdir(cffi) and not os.path.lexists(link):
        os.symlink(cffi, link)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--suite", default=OLDEST_SUITE)
    parser.add_argument("--build", metavar="DEST")
    args = parser.parse_args()
    path = ensure_buildroot(args.suite)
    print(path, glibc_version(path))
    if args.build:
        build_helper(path, args.build)
        print("built native/ against glibc %s into %s" % (glibc_version(path), args.build))
