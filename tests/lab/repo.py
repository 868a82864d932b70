"""Lab package repositories: flat apt repositories of Podman packages, made from the Debian mirror.

A repository is made once per recipe and cached under $LAB_CACHE/repos/<name>-<recipe hash>/.
Its packages are resolved against the root filesystem of the suite whose hosts will use it
(`base`): in a throw-away overlay of that rootfs, apt is pointed at the base suite and the
other suites named, and downloads each `package/suite` together with exactly what the base
lacks for it (apt's `pkg/suite` selection pulls a dependency from that suite only when the
base's version does not satisfy it). Like an internal mirror, a repository that offers a newer
Podman also keeps the base's own, so a host can go back; and each carries python3-apt, which
Ansible's apt module installs on first use, as it would from a host's real mirror. The .debs get a Packages index and a Release file, so a
lab host sees an ordinary (unsigned, `trusted=yes`) apt repository at a `file:` URI.

Only the lab knows how a repository is made; the collection sees a host whose apt sources
list one repository that carries some Podman.
"""
import fcntl
import glob
import gzip
import hashlib
import os
import shutil
import subprocess
import time
from typing import Dict, List

try:
    from . import rootfs as lab_rootfs
except ImportError:  # run as a plain module from tests/lab
    import rootfs as lab_rootfs  # type: ignore

# name -> where the packages come from (`suite`) and which rootfs they must install on (`base`)
REPOS: Dict[str, Dict[str, object]] = {
    # for a trixie host (Podman 5.4): sid's Podman 5.8, which shares non-contiguous maps
    "sid-podman": {"base": "trixie", "packages": ["podman/sid", "podman/trixie", "python3-apt/trixie"]},
    # for a trixie host: only its own Podman 5.4, no version that shares
    "trixie-podman": {"base": "trixie", "packages": ["podman/trixie", "python3-apt/trixie"]},
    # Debian experimental's Podman 6.1.1 and what it needs beyond sid: the podman6 suite's rootfs
    # is sid plus these (tests/lab/rootfs.py DERIVED); sid's own Podman stays, to go back
    "experimental-podman": {"base": "sid",
                            "packages": ["podman/experimental", "podman/sid", "python3-apt/sid"]},
    # for a bookworm host (Podman 4.3): trixie's 5.4, which still copies (a "backport" that is not)
    "trixie-podman-bookworm": {"base": "bookworm",
                               "packages": ["podman/trixie", "podman/bookworm", "python3-apt/bookworm"]},
}

# Where a host finds its repository, and its one apt source (the mirror is not reachable from
# a lab host's network namespace, so the repository replaces the rootfs's sources).
HOST_REPO_DIR = "/srv/idmapguard-lab-repo"
HOST_SOURCES = f"deb [trusted=yes] file:{HOST_REPO_DIR} ./\n"

# Runs as root in a fresh mount namespace: overlay over the base rootfs, apt inside it.
DOWNLOAD_SCRIPT = r"""
set -eu
LOWER=$1 WORK=$2 OUT=$3 MIRROR=$4 BASE=$5 PKGS=$6
R=$WORK/root
mkdir -p "$WORK/upper" "$WORK/work" "$R"
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$WORK/upper,workdir=$WORK/work" "$R"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
printf 'deb %s %s main\n' "$MIRROR" "$BASE" > "$R/etc/apt/sources.list"
for sel in $PKGS; do
  s=${sel#*/}
  [ "$s" = "$BASE" ] || grep -q " $s main" "$R/etc/apt/sources.list" || printf 'deb %s %s main\n' "$MIRROR" "$s" >> "$R/etc/apt/sources.list"
done
CH="chroot $R /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"
$CH apt-get update -q
for sel in $PKGS; do
  $CH apt-get install -y -q --download-only --reinstall --no-install-recommends "$sel"
done
mkdir -p "$OUT"
cp "$R"/var/cache/apt/archives/*.deb "$OUT"/
"""


class RepoError(RuntimeError):
    """A lab repository could not be made."""


def recipe(name: str) -> Dict[str, object]:
    if name not in REPOS:
        raise RepoError(f"unknown lab repository {name!r}, expected one of {', '.join(REPOS)}")
    spec = REPOS[name]
    return {**spec, "mirror": lab_rootfs.machine_mirror(), "script": DOWNLOAD_SCRIPT,
            "base_rootfs": os.path.basename(lab_rootfs.rootfs_path(str(spec["base"])))}


def repo_path(name: str) -> str:
    r = recipe(name)
    digest = hashlib.sha256("\n".join(f"{k}={r[k]}" for k in sorted(r)).encode()).hexdigest()[:12]
    return os.path.join(lab_rootfs.lab_cache(), "repos", f"{name}-{digest}")


def is_built(name: str) -> bool:
    return os.path.isfile(os.path.join(repo_path(name), "Release"))


def ensure_repo(name: str, log=None) -> str:
    """Return the cached repository NAME, making it first when missing."""
    final = repo_path(name)
    if is_built(name):
        return final
    r = recipe(name)
    lower = lab_rootfs.ensure_rootfs(str(r["base"]), log=log)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(final + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be making the same recipe
        if is_built(name):
            return final
        start = time.monotonic()
        tmp, work = f"{final}.tmp-{os.getpid()}", f"{final}.work-{os.getpid()}"
        for d in (tmp, work):
            shutil.rmtree(d, ignore_errors=True)
        logfile = final + ".log"
        with open(logfile, "w") as out:
            proc = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", DOWNLOAD_SCRIPT,
                 "lab-repo", lower, work, tmp, str(r["mirror"]), str(r["base"]),
                 " ".join(r["packages"])],  # type: ignore[arg-type]
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False)
        shutil.rmtree(work, ignore_errors=True)  # the mount namespace (and overlay) is gone
        if proc.returncode != 0:
            with open(logfile, encoding="utf-8", errors="replace") as f:
                tail = "".join(f.readlines()[-15:])
            shutil.rmtree(tmp, ignore_errors=True)
            raise RepoError(f"making the lab repository {name} failed (rc={proc.returncode}), "
                            f"log {logfile}:\n{tail}")
        write_index(tmp, label=f"idmapguard-lab {name}")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        if log:
            log(f"lab: made repository {name} in {time.monotonic() - start:.0f}s: {final}")
    return final


def write_index(directory: str, label: str) -> None:
    """Packages, Packages.gz and Release of a flat repository (what apt-ftparchive would write)."""
    stanzas: List[str] = []
    for deb in sorted(glob.glob(os.path.join(directory, "*.deb"))):
        control = subprocess.run(["dpkg-deb", "-f", deb], check=True, stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout.rstrip("\n")
        with open(deb, "rb") as f:
            data = f.read()
        stanzas.append(control + f"\nFilename: ./{os.path.basename(deb)}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(stanzas).encode()
    with open(os.path.join(directory, "Packages"), "wb") as f:
        f.write(packages)
    with open(os.path.join(directory, "Packages.gz"), "wb") as f:
        f.write(gzip.compress(packages, mtime=0))
    lines = [f"Origin: {label}", f"Label: {label}", "Suite: lab", "Codename: lab",
             "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()), "SHA256:"]
    for fn in ("Packages", "Packages.gz"):
        with open(os.path.join(directory, fn), "rb") as f:
            data = f.read()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {fn}")
    with open(os.path.join(directory, "Release"), "w") as f:
        f.write("\n".join(lines) + "\n")


def versions(name: str) -> Dict[str, List[str]]:
    """Package -> versions in the repository NAME (for tests and the demo)."""
    out: Dict[str, List[str]] = {}
    with open(os.path.join(ensure_repo(name), "Packages")) as f:
        package = ""
        for line in f:
            if line.startswith("Package: "):
                package = line.split(None, 1)[1].strip()
            elif line.startswith("Version: ") and package:
                out.setdefault(package, []).append(line.split(None, 1)[1].strip())
    return out
