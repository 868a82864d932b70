"""Cached Debian root filesystems for lab hosts, one per suite.

A rootfs is built once per recipe (suite, mirror, packages, this file's build script) with
debootstrap from the mirror this machine's apt uses, then cached under
$LAB_CACHE/rootfs/<suite>-<recipe hash>/ and shared read-only (as an overlay lower layer) by
every lab host of that suite. Builds run in a temporary directory renamed into place when
done, under a lock, so concurrent test runs never see or build a half-made rootfs.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from typing import Dict, List, Optional

SUITES = ("bullseye", "bookworm", "trixie", "sid", "podman6")

# Suites made from another suite's rootfs plus packages from a lab repository (tests/lab/repo.py),
# installed offline from that cached repository: podman6 is sid with Debian experimental's
# Podman 6.1.1 and whatever it needs from experimental.
DERIVED: Dict[str, Dict[str, object]] = {
    "podman6": {"from": "sid", "repo": "experimental-podman", "install": ["podman"]},
}

# How a suite's hosts see cgroups (tests/lab/lab.py mounts it in the host's own mount
# namespace): "host" binds this machine's /sys/fs/cgroup (hybrid: v1 controllers plus the
# unified tree); "cgroup2" mounts the unified hierarchy on /sys/fs/cgroup, which Podman 6 needs
# (it fails "Cgroups v1 not supported" otherwise).
CGROUP: Dict[str, str] = {"podman6": "cgroup2"}


def cgroup(suite: str) -> str:
    return CGROUP.get(suite, "host")


# What every host needs: podman and its runtime pieces, fuse-overlayfs for the mount_program
# case, sshd + python3 so Ansible reaches it like a real host, gcc/make for native helpers.
PACKAGES: List[str] = [
    "podman", "runc", "fuse-overlayfs", "conmon", "catatonit", "uidmap", "netavark",
    "python3", "openssh-server", "iproute2", "procps", "gcc", "libc6-dev", "make",
]

# Podman 3.0.1 predates netavark (CNI then; no test needs a network: netns = "none").
SUITE_PACKAGES: Dict[str, List[str]] = {
    "bullseye": [p for p in PACKAGES if p != "netavark"],
}


# A host's init: "lab" (tests/lab/host_init.py as PID 1, the default) or "systemd" (the suite's
# own systemd as PID 1 under systemd-nspawn --boot; see lab.py). The systemd variant is a
# separate recipe, cached under its own name, so the default hosts' rootfs stays as it is.
INITS = ("lab", "systemd")
INIT_PACKAGES: Dict[str, List[str]] = {
    "systemd": ["systemd", "systemd-sysv", "dbus"],
}


def packages(suite: str, init: str = "lab") -> List[str]:
    return SUITE_PACKAGES.get(suite, PACKAGES) + INIT_PACKAGES.get(init, [])


# sshd: root with the lab key only, no PAM (no login session machinery in a lab host);
# podman 5 warns on every call under cgroup v1 (this machine is hybrid), so silence it.
SSHD_CONFIG = """\
# idmapguard lab host
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
SetEnv PODMAN_IGNORE_CGROUPSV1_WARNING=1
"""

# Runs as root inside a fresh mount namespace (mounts vanish with it, even on a crash):
# debootstrap, then apt inside the new root. Plain chroot is fine here: only podman needs
# the pivot_root'ed entry, and podman is not run during the build.
BUILD_SCRIPT = r"""
set -eu
D=$1 SUITE=$2 MIRROR=$3 PKGS=$4
debootstrap --variant=minbase "$SUITE" "$D" "$MIRROR"
echo "deb $MIRROR $SUITE main" > "$D/etc/apt/sources.list"
rm -f "$D/etc/apt/sources.list.d/debian.sources"
# a frozen mirror's sid/trixie Release may be past its Valid-Until date
echo 'Acquire::Check-Valid-Until "false";' > "$D/etc/apt/apt.conf.d/99lab-no-valid-until"
printf '#!/bin/sh\nexit 101\n' > "$D/usr/sbin/policy-rc.d"; chmod +x "$D/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$D/etc/resolv.conf" 2>/dev/null || true
mount -t proc proc "$D/proc"
mount --rbind /dev "$D/dev"
CH="chroot $D /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
$CH apt-get update -q
$CH apt-get install -y -q --no-install-recommends $PKGS
$CH ssh-keygen -A
$CH apt-get clean
rm -rf "$D"/var/lib/apt/lists/*
mkdir -p "$D/etc/ssh/sshd_config.d" "$D/root/.ssh" "$D/etc/containers"
chmod 700 "$D/root/.ssh"
$CH podman --version > "$D/etc/idmapguard-lab-podman-version"
"""


# Runs as root in a fresh mount namespace: a copy of the base rootfs, then apt inside it with
# the lab repository as its only source (no network needed), then the base's sources again.
DERIVE_SCRIPT = r"""
set -eu
BASE=$1 D=$2 REPO=$3 MIRROR=$4 DIST=$5 PKGS=$6
cp -a "$BASE" "$D"
mkdir -p "$D/srv/idmapguard-lab-repo"
mount --bind "$REPO" "$D/srv/idmapguard-lab-repo"
mount -t proc proc "$D/proc"
mount --rbind /dev "$D/dev"
echo "deb [trusted=yes] file:/srv/idmapguard-lab-repo ./" > "$D/etc/apt/sources.list"
CH="chroot $D /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
$CH apt-get update -q
$CH apt-get install -y -q --no-install-recommends $PKGS
$CH apt-get clean
rm -rf "$D"/var/lib/apt/lists/*
echo "deb $MIRROR $DIST main" > "$D/etc/apt/sources.list"
$CH podman --version > "$D/etc/idmapguard-lab-podman-version"
"""


class RootfsError(RuntimeError):
    """A rootfs could not be built."""


def lab_cache() -> str:
    return os.environ.get("LAB_CACHE") or "/var/cache/idmapguard-lab"


def machine_mirror() -> str:
    """The Debian mirror this machine's apt is configured with (deb822 or one-line sources)."""
    candidates = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    words = line.split()
                    if not words or words[0].startswith("#"):
                        continue
                    if words[0] == "URIs:" and len(words) > 1 and "security" not in words[1]:
                        return words[1]
                    if words[0] == "deb" and "security" not in line:
                        uris = [w for w in words[1:] if "://" in w]
                        if uris:
                            return uris[0]
        except OSError:
            continue
    return "http://deb.debian.org/debian"


def recipe(suite: str, mirror: Optional[str] = None, init: str = "lab") -> Dict[str, object]:
    if suite in DERIVED:
        spec = DERIVED[suite]
        r: Dict[str, object] = {"suite": suite, **spec, "mirror": mirror or machine_mirror(), "script": DERIVE_SCRIPT,
                                "base_rootfs": os.path.basename(rootfs_path(str(spec["from"]), init))}
    else:
        r = {
            "suite": suite,
            "mirror": mirror or machine_mirror(),
            "packages": packages(suite, init),
            "script": BUILD_SCRIPT,
            "sshd": SSHD_CONFIG,
        }
    if init != "lab":  # the default recipe (and so its hash and cache) is unchanged
        r["init"] = init
    return r


def recipe_hash(suite: str, mirror: Optional[str] = None, init: str = "lab") -> str:
    r = recipe(suite, mirror, init)
    text = "\n".join(f"{k}={r[k]}" for k in sorted(r))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rootfs_path(suite: str, init: str = "lab") -> str:
    variant = suite if init == "lab" else f"{suite}-{init}"
    return os.path.join(lab_cache(), "rootfs", f"{variant}-{recipe_hash(suite, init=init)}")


def is_built(suite: str, init: str = "lab") -> bool:
    return os.path.isfile(os.path.join(rootfs_path(suite, init), "etc", "idmapguard-lab-podman-version"))


def ensure_rootfs(suite: str, log=None, init: str = "lab") -> str:
    """Return the cached rootfs of SUITE for INIT, building it first when missing."""
    if suite not in SUITES:
        raise RootfsError(f"unknown suite {suite!r}, expected one of {', '.join(SUITES)}")
    if init not in INITS:
        raise RootfsError(f"unknown init {init!r}, expected one of {', '.join(INITS)}")
    final = rootfs_path(suite, init)
    if is_built(suite, init):
        return final
    base = os.path.dirname(final)
    os.makedirs(base, exist_ok=True)
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same recipe
        if is_built(suite, init):
            return final
        tmp = f"{final}.tmp-{os.getpid()}"
        _remove_tree(tmp)
        r = recipe(suite, init=init)
        start = time.monotonic()
        logfile = final + ".log"
        if suite in DERIVED:
            base = ensure_rootfs(str(r["from"]), log=log, init=init)
            try:  # repo.py builds on this module: import it when needed
                from . import repo as lab_repo
            except ImportError:  # run as a plain module from tests/lab
                import repo as lab_repo  # type: ignore
            repo_dir = lab_repo.ensure_repo(str(r["repo"]), log=log)
            argv = ["/bin/sh", "-c", DERIVE_SCRIPT, "lab-derive", base, tmp, repo_dir, str(r["mirror"]),
                    str(r["from"]), " ".join(r["install"])]  # type: ignore[arg-type]
        else:
            argv = ["/bin/sh", "-c", BUILD_SCRIPT, "lab-build", tmp, suite, str(r["mirror"]),
                    " ".join(packages(suite, init))]
        with open(logfile, "w") as out:
            proc = subprocess.run(
                ["unshare", "--mount", "--propagation", "private"] + argv,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            with open(logfile, encoding="utf-8", errors="replace") as f:
                tail = "".join(f.readlines()[-15:])
            _remove_tree(tmp)
            raise RootfsError(f"building the {suite} rootfs failed (rc={proc.returncode}), "
                              f"log {logfile}:\n{tail}")
        with open(os.path.join(tmp, "etc/ssh/sshd_config.d/idmapguard-lab.conf"), "w") as f:
            f.write(SSHD_CONFIG)
        _remove_tree(final)  # an older, unfinished copy of the same recipe
        os.rename(tmp, final)
        if log:
            log(f"lab: built {suite} ({init} init) rootfs in {time.monotonic() - start:.0f}s: {final}")
    return final


def podman_version(suite: str, init: str = "lab") -> str:
    with open(os.path.join(rootfs_path(suite, init), "etc/idmapguard-lab-podman-version")) as f:
        return f.read().split()[-1]


def _remove_tree(path: str) -> None:
    if not os.path.lexists(path):
        return
    with open("/proc/self/mounts") as f:
        if any(line.split()[1].startswith(path + "/") or line.split()[1] == path for line in f):
            raise RootfsError(f"refusing to remove {path}: something is mounted below it")
    shutil.rmtree(path, ignore_errors=True)
