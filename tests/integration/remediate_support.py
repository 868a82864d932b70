"""Helpers of the remediate integration tests: install the guard on a lab host, build a
randomized store with real Podman, and capture what Podman itself reports about it."""
import json
import os
import random
import re
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB_INSIDE = "/usr/local/lib/idmapguard"
STORE = "/var/lib/containers/storage"


GUARD_BIN = "/usr/local/sbin/idmapguard-guard"
PRUNE_BIN = "/usr/local/sbin/idmapguard-prune"


def build_archive(module_utils: str = os.path.join(REPO, "plugins", "module_utils"), version: str = "0.0.0-test"):
    """The guard's zip application, built as idmapguard.storage.guard_artifact builds it."""
    import sys
    from ansible_collections.idmapguard.storage.plugins.plugin_utils import guard_artifact
    return guard_artifact.build(module_utils, version, sys.stdlib_module_names)


def entry_point(command: str, archive: str) -> str:
    """The role's entry point script (roles/remediate/templates/entry_point.sh.j2), rendered."""
    import jinja2
    text = open(os.path.join(REPO, "roles", "remediate", "templates", "entry_point.sh.j2")).read()
    env = jinja2.Environment(keep_trailing_newline=True)
    env.filters["quote"] = __import__("shlex").quote
    built = {"version": "0.0.0-test", "sha256": "(tests)"}
    return env.from_string(text).render(ansible_managed="installed by the tests", _command=command,
                                        _archive=archive, idmapguard_remediate_guard_artifact=built,
                                        idmapguard_remediate_guard_python="/usr/bin/python3")


def install_archive(host, lib: str = LIB_INSIDE, module_utils: str = os.path.join(REPO, "plugins", "module_utils"),
                    bins=((PRUNE_BIN, "prune"), (GUARD_BIN, "guard"))) -> str:
    """The guard's one archive under LIB and its entry points, as the role installs them;
    returns the archive's path inside the host."""
    built = build_archive(module_utils)
    archive = os.path.join(lib, built.file_name)
    os.makedirs(host.path(lib), exist_ok=True)
    with open(host.path(archive), "wb") as handle:
        handle.write(built.data)
    for path, command in bins:
        script = host.path(path)
        with open(script, "w") as handle:
            handle.write(entry_point(command, archive))
        os.chmod(script, 0o755)
    return archive


def install_guard(host) -> None:
    """The guard's archive and entry points in the host, as the role installs them."""
    install_archive(host)


def guard(host, *args: str, env: Optional[Dict[str, str]] = None, check: bool = True):
    """Run idmapguard-prune inside the host; returns (proc, parsed JSON or None)."""
    prefix = ["env"] + ["%s=%s" % kv for kv in (env or {}).items()]
    proc = host.exec(prefix + ["/usr/local/sbin/idmapguard-prune"] + list(args))
    if check and proc.returncode != 0:
        raise AssertionError("idmapguard-prune %s failed rc=%d:\n%s%s" % (args, proc.returncode, proc.stderr, proc.stdout))
    try:
        return proc, json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return proc, None


def noncontig_map(index: int) -> str:
    """A distinct non-contiguous map per index (the shape of the original report)."""
    base = 1065537 + index * 70000
    return "0:%d:65536,531571:531571:1" % base


def contiguous_map(host) -> str:
    """A contiguous map for HOST that every lab Podman starts a container with.

    Podman 3.0 (c/storage 1.24) chowns a copy even for a contiguous map, through a parallel
    walk whose errors are lost at random (opencontainers/selinux 1.8 pwalk): with an image
    owner the map does not cover (the lab image's 531571) the run fails now and then with
    "Container ID 531571 cannot be mapped to a host ID", and when it does not, the copy is
    left empty. There the map covers every owner of the lab image; elsewhere it is the seed's
    first extent alone.
    """
    return "0:1065537:600000" if host.suite == "bullseye" else "0:1065537:65536"


def podman_json(host, *args: str):
    proc = host.podman(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "[]")


def images_view(host) -> List:
    return sorted((i["Id"], tuple(sorted(i.get("Names") or []))) for i in podman_json(host, "images", "-a"))


def containers_view(host) -> List:
    return sorted((c["Id"], tuple(c.get("Names") or []), c["Image"], c["State"])
                  for c in podman_json(host, "ps", "-a"))


def mapped_copy_count(host) -> int:
    with open(host.path(STORE + "/overlay-images/images.json")) as handle:
        return sum(len(i.get("mapped-layers") or []) for i in json.load(handle))


def try_start(host, name: str) -> bool:
    """Start then stop a container; True when it ran. Leaves it stopped."""
    ok = host.podman("start", "-a", name, timeout=120).returncode == 0
    host.podman("stop", "-t", "0", name)
    return ok


def build_random_store(host, rng: random.Random, images: int = 2, maps: int = 8, files: int = 120) -> Dict:
    """Images, copies from created-then-removed containers (the garbage), stopped containers
    on copies, a running container on a copy, and a volatile (--rm) container."""
    tags = [host.image(files=files + 7 * i, tag="localhost/rnd%d:%d" % (i, files)) for i in range(images)]
    maps_used = []
    kept = []
    for index in range(maps):
        tag = rng.choice(tags)
        idmap = noncontig_map(index)
        name = "c%d" % index
        proc = host.podman("create", "--name", name, "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        assert proc.returncode == 0, proc.stderr
        maps_used.append((tag, idmap))
        if rng.random() < 0.6:
            host.podman("rm", name, check=True)  # leaves its copy behind: prunable
        else:
            kept.append(name)
    # A container that keeps its copy mounted while the prune runs (contiguous maps start on
    # every lab Podman; the copy is what counts).
    contiguous = contiguous_map(host)
    run = host.podman("run", "-d", "--name", "running", "--uidmap", contiguous, "--gidmap", contiguous,
                      tags[0], "sleep", "1000")
    running = run.returncode == 0
    maps_used.append((tags[0], contiguous))
    host.podman("create", "--rm", "--name", "volatile", "--uidmap", noncontig_map(maps + 1),
                "--gidmap", noncontig_map(maps + 1), tags[-1], "true", check=True)
    maps_used.append((tags[-1], noncontig_map(maps + 1)))
    return {"tags": tags, "maps_used": maps_used, "kept": kept + ["volatile"], "running": running}


def system_check(host) -> Optional[set]:
    """Problems `podman system check` reports (5.x), as a set of lines; None on 4.x."""
    if host.podman_version().startswith("4."):
        return None
    proc = host.podman("system", "check")
    # "N errors occurred:" only counts the lines below; the lines themselves are compared.
    lines = {line.strip() for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and not re.match(r"^\d+ errors? occurred:$", line.strip())}
    if proc.returncode == 0:
        return set()
    return lines


# Podman 5.4 (and 5.8 with fuse-overlayfs) reports every chowned copy it made itself as damaged:
# its chown walk leaves a directory's mtime at the time of the copy. Measured on a fresh trixie lab
# host with no guard and no prune: three copies (`podman create` with three non-contiguous maps),
# all three "/etc/fill(mtime:0x6553f100->...), layer content modified" with the creation times.
_COPY_MTIME = re.compile(r"^\* layer ([0-9a-f]{64}): (?:[^(),]+\(mtime:0x[0-9a-f]+\S0x[0-9a-f]+\), )+"
                         r"layer content modified$")
_HEADER = re.compile(r"^(Damaged (image|layer) [0-9a-f]{64}:|Error: damage detected in local storage)$")


def damage_beyond_copy_mtimes(problems, mapped_copies) -> List[str]:
    """The lines of `podman system check` (system_check) other than the mtime-only lines of
    the layers in MAPPED_COPIES (Podman's own, above) and the bare headers above each line: what
    a prune or the guard could have caused (a copy with files gone, staged data "not accounted
    for", a layer missing, the mtime of a layer that is not a copy)."""
    left = []
    for line in sorted(problems or ()):
        match = _COPY_MTIME.match(line)
        if (match and match.group(1) in mapped_copies) or _HEADER.match(line):
            continue
        left.append(line)
    return left


def podman_state(host) -> Dict:
    return {"images": images_view(host), "containers": containers_view(host), "check": system_check(host)}


def assert_podman_agrees(host, before: Dict, info: Dict, starts_before: Dict[str, bool]) -> None:
    """After a prune: same images and containers, containers start as before, every map used
    before still creates a container, and `podman system check` finds nothing new: a store it found
    clean stays clean (5.8 on native overlay); 5.4, and 5.8 with fuse-overlayfs, already report
    their own chowned copies as "layer content modified" (the copy changes mtimes) before any
    prune, so there the test is that no new line appears."""
    after = podman_state(host)
    assert after["images"] == before["images"]
    assert after["containers"] == before["containers"]
    if before["check"] is not None:
        # Clean before (5.8 on native overlay) means clean after; otherwise nothing new.
        new = sorted(after["check"] - before["check"])
        assert not new, new[:20]
    for name, started in starts_before.items():
        assert try_start(host, name) == started, "container %s started=%s before the prune" % (name, started)
    for index, (tag, idmap) in enumerate(info["maps_used"]):
        proc = host.podman("create", "--name", "again%d" % index, "--uidmap", idmap, "--gidmap", idmap, tag, "true")
        assert proc.returncode == 0, proc.stderr
        host.podman("rm", "again%d" % index, check=True)


def free_inodes(host) -> int:
    st = os.statvfs(host.path(STORE))
    return st.f_ffree
