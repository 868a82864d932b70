"""Disposable lab hosts: a Debian root with its own Podman, sshd and container store.

A host is a process tree in its own mount, PID, network, UTS and IPC namespaces:
- its root is an overlay (upper under /var/tmp/idmapguard-lab/NAME) over a cached rootfs,
  made the real root of its mount namespace with pivot_root. Never plain chroot: the kernel
  refuses CLONE_NEWUSER to a chrooted process, and Podman 5 then silently stops shifting.
- /var/lib/containers/storage is its own small filesystem (ext4 loop with few inodes by
  default; xfs, btrfs, tmpfs, ramfs, or "none" = on the root overlay);
- PID 1 is host_init.py (sshd + reaper), or with init="systemd" the suite's own systemd,
  booted by systemd-nspawn (see NSPAWN_SCRIPT); a veth pair joins it to this machine
  (10.213.<index>.1 here, .2 in the host), so Ansible reaches it over real SSH.
Every mount lives only in the host's own mount namespace, so killing PID 1 releases all of
them (and the loop device) even when the lab process itself crashed. State of running hosts:
/run/idmapguard-lab/NAME.json. Only the standard library is used.
"""
import atexit
import fcntl
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Union

try:
    from . import image as lab_image
    from . import repo as lab_repo
    from . import rootfs as lab_rootfs
    from . import userland_image as lab_userland
except ImportError:  # run as a plain module from tests/lab
    import image as lab_image  # type: ignore
    import repo as lab_repo  # type: ignore
    import rootfs as lab_rootfs  # type: ignore
    import userland_image as lab_userland  # type: ignore

STATE_DIR = "/run/idmapguard-lab"
VAR_DIR = "/var/tmp/idmapguard-lab"
STORE = "/var/lib/containers/storage"
STORE_FS = ("ext4", "xfs", "btrfs", "tmpfs", "ramfs", "none")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
HERE = os.path.dirname(os.path.abspath(__file__))

# This machine's Podman quirks live here, never in the collection: no CAP_SYS_RESOURCE
# (default ulimits fail), crun 1.8 fails on hybrid cgroups (runc), no systemd (cgroupfs,
# file events/logs), no network needed by any test.
CONTAINERS_CONF = """\
# idmapguard lab host: quirks of the lab machine, not advice for real hosts
[containers]
default_ulimits = []
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"""

# Under cgroup2 on this hybrid machine the unified hierarchy has no pids controller (it is bound
# to v1), so runc fails writing pids.max: hosts of such a suite (Podman 6) set no pids limit.
CONTAINERS_CONF_CGROUP2 = CONTAINERS_CONF.replace('netns = "none"\n', 'netns = "none"\npids_limit = 0\n')

STORAGE_CONF_MOUNT_PROGRAM = """\
# idmapguard lab host: overlay through a mount_program (still copies per ID map)
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"

[storage.options.overlay]
mount_program = "{mount_program}"
"""

# Runs as PID 1 of the new namespaces with this machine's /bin/sh, then execs the host's init.
SETUP_SCRIPT = r"""
set -eu
R=$1 LOWER=$2 UPPER=$3 WORK=$4 NAME=$5 STOREFS=$6 STORESRC=$7 STOREOPTS=$8 CGROUP=$9
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$R"
hostname "$NAME"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
case $CGROUP in
  # the unified hierarchy alone, as on a cgroup v2 machine (Podman 6 refuses cgroup v1)
  cgroup2) mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup" ;;
  *) mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup" ;;
esac
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
S=$R/var/lib/containers/storage
mkdir -p "$S"
case $STOREFS in
  none) ;;
  tmpfs) mount -t tmpfs -o "$STOREOPTS" tmpfs "$S" ;;
  ramfs) mount -t ramfs ramfs "$S" ;;
  *) mount -t "$STOREFS" -o loop "$STORESRC" "$S" ;;
esac
chmod 700 "$S"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec /usr/bin/python3 /usr/local/sbin/idmapguard-lab-init
"""


# init="systemd": PID 1 of the new namespaces is this shell (the "supervisor"); it mounts the
# same overlay root and store as SETUP_SCRIPT and boots the root's systemd with systemd-nspawn,
# in the supervisor's network namespace (no --private-network: the lab's veth is there).
# nspawn exits 133 when the host reboots (`systemctl reboot`): the supervisor unmounts root and
# store and boots again on the same files, like a machine restarting on its disks. Any other
# exit (poweroff, a crash) ends the host. Each host gets its own cgroup (idmapguard-lab/NAME
# below the lab's own) in the hierarchies systemd manages (name=systemd, unified; see
# _host_cgroups), removed at teardown, so no two hosts' systemd share one.
# SYSTEMD_SECCOMP=0 and --capability=all: root in the host is as able as root on a real
# machine (Podman makes user namespaces and mounts); /dev/fuse for fuse-overlayfs.
NSPAWN_SCRIPT = r"""
set -eu
R=$1 LOWER=$2 UPPER=$3 WORK=$4 NAME=$5 STOREFS=$6 STORESRC=$7 STOREOPTS=$8 STOREMNT=$9 CGROUPS=${10}
mount -t proc proc /proc
hostname "$NAME"
for cg in $CGROUPS; do
  mkdir -p "$cg"
  echo $$ > "$cg/cgroup.procs"
done
mkdir -p "$STOREMNT"
while :; do
  mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$R"
  case $STOREFS in
    none) mount --bind "$R/var/lib/containers/storage" "$STOREMNT" ;;
    tmpfs) mount -t tmpfs -o "$STOREOPTS" tmpfs "$STOREMNT" ;;
    ramfs) mount -t ramfs ramfs "$STOREMNT" ;;
    *) mount -t "$STOREFS" -o loop "$STORESRC" "$STOREMNT" ;;
  esac
  chmod 700 "$STOREMNT"
  rc=0
  SYSTEMD_SECCOMP=0 systemd-nspawn --quiet --boot --register=no --keep-unit --machine="$NAME" \
    --directory="$R" --capability=all --bind=/dev/fuse --resolv-conf=off --timezone=off \
    --link-journal=no --console=read-only --bind="$STOREMNT:/var/lib/containers/storage" || rc=$?
  umount "$STOREMNT"
  umount "$R"
  echo "lab: systemd-nspawn exited rc=$rc"
  [ "$rc" = 133 ] || exit "$rc"
done
"""


# nspawn mounts the cgroup v1 hierarchies read-only; Podman's cgroupfs manager needs them
# writable (as the rbind of the other hosts has them), at every boot.
LAB_CGROUPS_UNIT = """\
# idmapguard lab host: a quirk of the lab machine, not advice for real hosts
[Unit]
Description=idmapguard lab: writable cgroup v1 hierarchies for Podman's cgroupfs manager
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for m in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$$m"; done'

[Install]
WantedBy=sysinit.target
"""


class LabError(RuntimeError):
    """A lab host could not be brought up, entered or torn down."""


def _run(argv: Sequence[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("universal_newlines", True)
    proc = subprocess.run(list(argv), check=False, **kw)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed (rc={proc.returncode}): {proc.stderr or ''}{proc.stdout or ''}")
    return proc


def _start_time(pid: int) -> Optional[str]:
    """Field 22 of /proc/PID/stat: tells a live process from a recycled PID."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> List[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _size_bytes(size: Union[str, int]) -> int:
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"(\d+)([KMGkmg]?)i?[Bb]?", size.strip())
    if not m:
        raise LabError(f"bad size {size!r} (use e.g. 300M)")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def ssh_key() -> str:
    """The lab's private key (ed25519, made once under $LAB_CACHE/ssh); hosts accept only it."""
    d = os.path.join(lab_rootfs.lab_cache(), "ssh")
    key = os.path.join(d, "id_ed25519")
    if os.path.exists(key + ".pub"):
        return key
    os.makedirs(d, mode=0o700, exist_ok=True)
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(key + ".pub"):
            tmp = os.path.join(d, f"tmp-{os.getpid()}")
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "idmapguard-lab", "-f", tmp])
            os.rename(tmp, key)
            os.rename(tmp + ".pub", key + ".pub")
    return key


class LabHost:
    """A running lab host (see module doc). Get one from Lab.up() or Lab.get()."""

    def __init__(self, lab: "Lab", state: Dict[str, object]):
        self.lab = lab
        self.state = state

    name = property(lambda self: str(self.state["name"]))
    suite = property(lambda self: str(self.state["suite"]))
    ip = property(lambda self: str(self.state["ip"]))
    init_pid = property(lambda self: int(self.state["init_pid"]))  # type: ignore[arg-type]
    store_fs = property(lambda self: str(self.state["store_fs"]))
    init = property(lambda self: str(self.state.get("init") or "lab"))

    def __repr__(self) -> str:
        return f"LabHost({self.name!r}, suite={self.suite!r}, ip={self.ip!r})"

    def alive(self) -> bool:
        pid = self.state.get("init_pid")
        return bool(pid) and _start_time(int(pid)) == self.state.get("init_start")  # type: ignore[arg-type]

    def entry_pid(self) -> int:
        """The host's PID 1 as this machine sees it: host_init, or the booted systemd (which
        changes at every reboot; the supervisor's init_pid does not)."""
        if not self.alive():
            raise LabError(f"lab host {self.name} is not running")
        if self.init == "lab":
            return self.init_pid
        pid = _booted_init(self.init_pid)
        if not pid:
            raise LabError(f"lab host {self.name} is not booted (rebooting?)")
        return pid

    def booted(self) -> Optional[int]:
        """PID of the booted systemd (init="systemd" hosts), or None while (re)booting."""
        return _booted_init(self.init_pid) if self.alive() else None

    def wait_booted(self, timeout: float = 120, other_than: Optional[int] = None) -> int:
        """Wait until a systemd host is booted (a systemd other than OTHER_THAN, after a
        reboot), its boot finished and sshd answers; returns the systemd's PID."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.booted()
            if pid and pid != other_than:
                state = self.exec(["systemctl", "is-system-running", "--wait"], timeout=timeout).stdout.strip()
                if state in ("running", "degraded"):
                    break
            if not self.alive() or time.monotonic() > deadline:
                raise LabError(f"lab host {self.name} did not boot (init {pid}, state "
                               f"{'running' if self.alive() else 'ended'})")
            time.sleep(0.2)
        Lab._wait_ssh(self.ip, deadline, None, str(self.state["var_dir"]))
        return pid

    def path(self, inside: str = "/") -> str:
        """This machine's path to INSIDE (a path in the host), valid while the host runs."""
        return f"/proc/{self.entry_pid()}/root/{inside.lstrip('/')}"

    def nsenter(self) -> List[str]:
        """Command prefix that enters the host: its mount (pivot_root'ed root), network, PID,
        UTS and IPC namespaces, with a clean environment."""
        return ["nsenter", "-t", str(self.entry_pid()), "-m", "-n", "-p", "-u", "-i", "--root", "--wd",
                "/usr/bin/env", "-i", f"PATH={HOST_PATH}", "HOME=/root", "LANG=C.UTF-8",
                "PODMAN_IGNORE_CGROUPSV1_WARNING=1"]

    def exec(self, cmd: Union[str, Sequence[str]], check: bool = False, input: Optional[str] = None,
             timeout: Optional[float] = 900, capture: bool = True) -> subprocess.CompletedProcess:
        """Run CMD (argv list, or a string for /bin/sh -c) inside the host."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        out = subprocess.PIPE if capture else None
        proc = subprocess.run(self.nsenter() + argv, input=input, stdout=out, stderr=out,
                              universal_newlines=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"[{self.name}] {' '.join(argv)} failed (rc={proc.returncode}):\n"
                           f"{proc.stderr}{proc.stdout}")
        return proc

    def podman(self, *args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        return self.exec(["podman", *args], check=check, **kw)

    def podman_version(self) -> str:
        return self.podman("version", "--format", "{{.Client.Version}}", check=True).stdout.strip()

    def inodes_used(self, inside: str = STORE) -> int:
        """Inodes in use on the filesystem holding INSIDE (df -i IUsed)."""
        st = os.statvfs(self.path(inside))
        return st.f_files - st.f_ffree

    def write_file(self, inside: str, content: Union[str, bytes], mode: int = 0o644) -> None:
        data = content.encode() if isinstance(content, str) else content
        target = self.path(inside)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, mode)

    def image(self, files: int = 300, layers: int = 1, tag: Optional[str] = None) -> str:
        """Build (cached) and load a tiny busybox image with FILES small files; return its tag."""
        return lab_image.load_into(self, files=files, layers=layers, tag=tag)

    def userland_image(self, entries: int = lab_userland.DEFAULT_ENTRIES, tag: Optional[str] = None) -> str:
        """Build (cached) and import the seed-size real-userland image (userland_image.py); return its tag."""
        path, kind = lab_userland.build(entries, log=self.lab.log)
        return lab_image.import_into(self, path, kind, tag or f"localhost/userland:{entries}")

    def ssh_argv(self) -> List[str]:
        return ["ssh", "-i", ssh_key(), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{self.ip}"]

    def down(self) -> None:
        self.lab.down(self.name)


class Lab:
    """Creates, finds and ends lab hosts. Hosts made by this object are ended at exit."""

    def __init__(self, log=None, ephemeral: bool = True):
        """EPHEMERAL: hosts end when this process ends (tests); False for the CLI."""
        self.log = log or (lambda msg: None)
        self.ephemeral = ephemeral
        self._procs: Dict[str, subprocess.Popen] = {}
        self._mine: List[str] = []
        atexit.register(self._down_mine)

    # ---- state files ----------------------------------------------------------------
    @staticmethod
    def _state_path(name: str) -> str:
        return os.path.join(STATE_DIR, name + ".json")

    @staticmethod
    def _write_state(state: Dict[str, object]) -> None:
        path = Lab._state_path(str(state["name"]))
        with open(path + ".tmp", "w") as f:
            json.dump(state, f, indent=1)
        os.rename(path + ".tmp", path)

    def states(self) -> List[Dict[str, object]]:
        out = []
        if os.path.isdir(STATE_DIR):
            for fn in sorted(os.listdir(STATE_DIR)):
                if fn.endswith(".json"):
                    try:
                        with open(os.path.join(STATE_DIR, fn)) as f:
                            out.append(json.load(f))
                    except (OSError, ValueError):
                        continue
        return out

    def get(self, name: str) -> LabHost:
        try:
            with open(self._state_path(name)) as f:
                return LabHost(self, json.load(f))
        except FileNotFoundError:
            raise LabError(f"no lab host named {name}") from None

    def hosts(self) -> List[LabHost]:
        return [LabHost(self, s) for s in self.states()]

    # ---- up -------------------------------------------------------------------------
    def _reserve(self, name: str, suite: str) -> Dict[str, object]:
        """Claim NAME and a free network index under a lock (other test runs may be doing the same)."""
        os.makedirs(STATE_DIR, exist_ok=True)
        with open(os.path.join(STATE_DIR, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(self._state_path(name)):
                old = self.get(name)
                if old.alive():
                    raise LabError(f"lab host {name} already exists (labctl down {name})")
                self._teardown(old.state)
            idx = self._next_index()
            state: Dict[str, object] = {
                "name": name, "suite": suite, "index": idx, "ip": f"10.213.{idx}.2",
                "gateway": f"10.213.{idx}.1", "veth": f"igl{idx}", "var_dir": os.path.join(VAR_DIR, name),
                "init_pid": 0, "init_start": None, "unshare_pid": 0,
                # hosts of a test run end with it; reap_orphans() ends those whose run was killed
                "owner_pid": os.getpid() if self.ephemeral else 0,
                "owner_start": _start_time(os.getpid()) if self.ephemeral else None,
            }
            self._write_state(state)
            return state

    def _next_index(self) -> int:
        """A free network index, round-robin: an address is reused as late as possible, so an
        ssh ControlPersist master left from an ended host never meets a new host at its IP.
        Called under the state lock."""
        counter = os.path.join(STATE_DIR, ".next-index")
        try:
            with open(counter) as f:
                start = int(f.read().strip() or 1)
        except (OSError, ValueError):
            start = 1
        used = {s.get("index") for s in self.states()}
        for step in range(250):
            idx = (start - 1 + step) % 250 + 1
            if idx not in used:
                with open(counter, "w") as f:
                    f.write(f"{idx % 250 + 1}\n")
                return idx
        raise LabError("no free lab network index (250 hosts running?)")

    def up(self, name: Optional[str] = None, suite: str = "sid", store_fs: str = "ext4",
           inodes: int = 4096, size: Union[str, int] = "300M", storage_conf: Optional[str] = None,
           mount_program: Optional[str] = None, timeout: float = 60,
           apt_repo: Optional[str] = None, init: str = "lab") -> LabHost:
        """Start a host. NAME defaults to SUITE-<pid>-<random>. STORAGE_CONF: text of an
        /etc/containers/storage.conf to install (default: the distribution's); MOUNT_PROGRAM
        (e.g. /usr/bin/fuse-overlayfs): write a storage.conf that sets it. APT_REPO: a lab
        repository (tests/lab/repo.py, e.g. "sid-podman") that becomes the host's only apt
        source, with its package lists already fetched (default: the rootfs's mirror sources,
        which the host cannot reach, and no lists). INIT: "lab" (host_init.py as PID 1) or
        "systemd" (the suite's systemd as PID 1, booted by systemd-nspawn from the rootfs's
        systemd variant; boots take longer, so TIMEOUT is at least 180 s then)."""
        if suite not in lab_rootfs.SUITES:
            raise LabError(f"unknown suite {suite!r}")
        if store_fs not in STORE_FS:
            raise LabError(f"store_fs must be one of {', '.join(STORE_FS)}")
        name = name or f"{suite}-{os.getpid()}-{random.randrange(16**4):04x}"
        if not NAME_RE.match(name):
            raise LabError(f"bad lab host name {name!r} (lowercase letters, digits, '-')")
        if init not in lab_rootfs.INITS:
            raise LabError(f"init must be one of {', '.join(lab_rootfs.INITS)}")
        if init == "systemd":
            if not shutil.which("systemd-nspawn"):
                raise LabError("init=systemd needs systemd-nspawn (Debian package systemd-container)")
            timeout = max(timeout, 180)
        lower = lab_rootfs.ensure_rootfs(suite, log=self.log, init=init)
        repo_dir = lab_repo.ensure_repo(apt_repo, log=self.log) if apt_repo else None
        if apt_repo and lab_repo.REPOS[apt_repo]["base"] != suite:
            raise LabError(f"lab repository {apt_repo} is made for {lab_repo.REPOS[apt_repo]['base']} hosts, not {suite}")
        key = ssh_key()
        state = self._reserve(name, suite)
        state["init"] = init
        if self.ephemeral:
            self._mine.append(name)
        try:
            self._start(state, lower, key, store_fs, inodes, size, storage_conf, mount_program, timeout,
                        repo_dir)
            if repo_dir:
                LabHost(self, state).exec(["apt-get", "update", "-q"], check=True)
        except BaseException:
            self._teardown(state)
            raise
        host = LabHost(self, state)
        self.log(f"lab: {name} up ({suite}, {init} init, podman {lab_rootfs.podman_version(suite, init)}, "
                 f"ip {host.ip})")
        return host

    def _start(self, state, lower, key, store_fs, inodes, size, storage_conf, mount_program, timeout,
               repo_dir=None):
        var = str(state["var_dir"])
        if os.path.exists(var):
            _remove_tree(var)
        upper, work, root = (os.path.join(var, d) for d in ("upper", "work", "root"))
        for d in (upper, work, root):
            os.makedirs(d)
        self._populate_upper(upper, str(state["name"]), key, storage_conf, mount_program, repo_dir,
                             str(state.get("init") or "lab"), lab_rootfs.cgroup(str(state["suite"])))
        store_src, store_opts = "", ""
        if store_fs in ("ext4", "xfs", "btrfs"):
            store_src = os.path.join(var, "store.img")
            with open(store_src, "wb") as f:
                f.truncate(_size_bytes(size))
            mkfs = {"ext4": ["mkfs.ext4", "-q", "-F", "-N", str(inodes)],
                    "xfs": ["mkfs.xfs", "-q", "-f"], "btrfs": ["mkfs.btrfs", "-q", "-f"]}[store_fs]
            _run(mkfs + [store_src])
        elif store_fs == "tmpfs":
            store_opts = f"size={_size_bytes(size)},nr_inodes={inodes},mode=700"
        state["store_fs"] = store_fs
        systemd = state.get("init") == "systemd"
        log = open(os.path.join(var, "setup.log"), "w")
        extra: List[str] = []
        if systemd:
            state["cgroups"] = _host_cgroups(str(state["name"]))
            extra = [os.path.join(var, "store"), " ".join(state["cgroups"])]  # type: ignore[arg-type]
        script = NSPAWN_SCRIPT if systemd else SETUP_SCRIPT
        proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "--propagation", "private",
             "/bin/sh", "-c", script, "lab-setup", root, lower, upper, work, str(state["name"]),
             store_fs, store_src, store_opts] + (extra if systemd else [lab_rootfs.cgroup(str(state["suite"]))]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._procs[str(state["name"])] = proc
        state["unshare_pid"] = proc.pid
        deadline = time.monotonic() + timeout
        init = 0
        while not init:
            kids = _children(proc.pid)
            init = kids[0] if kids else 0
            self._check_alive(proc, var, deadline)
            time.sleep(0.02)
        state["init_pid"], state["init_start"] = init, _start_time(init)
        self._write_state(state)
        if systemd:
            self._network(state)  # the supervisor's network namespace, which the systemd shares
            LabHost(self, state).wait_booted(max(1.0, deadline - time.monotonic()))
            return
        while not os.path.exists(f"/proc/{init}/root/run/idmapguard-lab-ready"):
            self._check_alive(proc, var, deadline)
            time.sleep(0.05)
        self._network(state)
        self._wait_ssh(str(state["ip"]), deadline, proc, var)

    @staticmethod
    def _populate_upper(upper: str, name: str, key: str, storage_conf, mount_program, repo_dir=None,
                        init: str = "lab", cgroup: str = "host") -> None:
        """Files the host gets on top of the shared rootfs (overlay upper, written before mounting)."""
        def put(rel: str, text: str, mode: int = 0o644) -> None:
            p = os.path.join(upper, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, mode)
        os.makedirs(os.path.join(upper, "root/.ssh"), mode=0o700)
        os.chmod(os.path.join(upper, "root"), 0o700)
        with open(key + ".pub") as f:
            put("root/.ssh/authorized_keys", f.read(), 0o600)
        put("etc/hostname", name + "\n")
        put("etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
        put("etc/containers/containers.conf", CONTAINERS_CONF_CGROUP2 if cgroup == "cgroup2" else CONTAINERS_CONF)
        if mount_program:
            storage_conf = STORAGE_CONF_MOUNT_PROGRAM.format(mount_program=mount_program)
        if storage_conf:
            put("etc/containers/storage.conf", storage_conf)
        with open(os.path.join(HERE, "host_init.py")) as f:
            put("usr/local/sbin/idmapguard-lab-init", f.read(), 0o755)
        if init == "systemd":
            # the host's systemd: the podman cgroup v1 warning silenced for services too;
            # writable cgroup hierarchies; no getty on the console, no kernel modules to load
            units = os.path.join(upper, "etc/systemd/system")
            put("etc/systemd/system.conf.d/idmapguard-lab.conf",
                "[Manager]\nDefaultEnvironment=PODMAN_IGNORE_CGROUPSV1_WARNING=1\n")
            put("etc/systemd/system/idmapguard-lab-cgroups.service", LAB_CGROUPS_UNIT)
            os.makedirs(os.path.join(units, "sysinit.target.wants"))
            os.symlink("../idmapguard-lab-cgroups.service",
                       os.path.join(units, "sysinit.target.wants/idmapguard-lab-cgroups.service"))
            for unit in ("console-getty.service", "systemd-modules-load.service"):
                os.symlink("/dev/null", os.path.join(units, unit))
        if repo_dir:
            shutil.copytree(repo_dir, os.path.join(upper, lab_repo.HOST_REPO_DIR.lstrip("/")),
                            copy_function=_link_or_copy)
            put("etc/apt/sources.list", lab_repo.HOST_SOURCES)

    @staticmethod
    def _check_alive(proc: Optional[subprocess.Popen], var: str, deadline: float) -> None:
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            try:
                with open(os.path.join(var, "setup.log")) as f:
                    detail = f.read()[-2000:]
            except OSError:
                detail = ""
            why = f"exited rc={proc.returncode}" if proc is not None and proc.returncode is not None else "timed out"
            raise LabError(f"lab host setup {why}:\n{detail}")

    @staticmethod
    def _network(state: Dict[str, object]) -> None:
        veth, pid, idx = str(state["veth"]), str(state["init_pid"]), state["index"]
        _run(["ip", "link", "del", veth], check=False)  # a leftover of a crashed run
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pid])
        _run(["ip", "addr", "add", f"10.213.{idx}.1/30", "dev", veth])
        _run(["ip", "link", "set", veth, "up"])
        inside = ["nsenter", "-t", pid, "-n"]
        _run(inside + ["ip", "link", "set", "lo", "up"])
        _run(inside + ["ip", "addr", "add", f"10.213.{idx}.2/30", "dev", "eth0"])
        _run(inside + ["ip", "link", "set", "eth0", "up"])
        _run(inside + ["ip", "route", "add", "default", "via", f"10.213.{idx}.1"])

    @staticmethod
    def _wait_ssh(ip: str, deadline: float, proc: Optional[subprocess.Popen], var: str) -> None:
        while True:
            try:
                with socket.create_connection((ip, 22), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH"):
                        return
            except OSError:
                pass
            Lab._check_alive(proc, var, deadline)
            time.sleep(0.1)

    # ---- down -----------------------------------------------------------------------
    def down(self, name: str) -> None:
        try:
            host = self.get(name)
        except LabError:
            return
        self._teardown(host.state)

    def down_all(self) -> List[str]:
        names = [str(s["name"]) for s in self.states()]
        for n in names:
            self.down(n)
        return names

    def reap_orphans(self) -> List[str]:
        """End hosts whose test run died without tearing them down (e.g. SIGKILL)."""
        reaped = []
        for s in self.states():
            owner = int(s.get("owner_pid") or 0)  # type: ignore[arg-type]
            if owner and _start_time(owner) != s.get("owner_start"):
                self.down(str(s["name"]))
                reaped.append(str(s["name"]))
        return reaped

    def _down_mine(self) -> None:
        for name in list(self._mine):
            try:
                self.down(name)
            except Exception as e:  # noqa: BLE001 - keep ending the others
                print(f"lab: teardown of {name} failed: {e}")

    def _teardown(self, state: Dict[str, object]) -> None:
        """Kill PID 1 (the kernel ends the rest of the PID namespace; the mount namespace and
        with it every mount and the loop device go when its last process is gone), then remove
        the veth, the files and the state."""
        name = str(state["name"])
        pid = int(state.get("init_pid") or 0)  # type: ignore[arg-type]
        containers: List[str] = []
        if pid and _start_time(pid) == state.get("init_start"):
            entry = _booted_init(pid) if state.get("init") == "systemd" else pid
            containers = _container_ids(entry) if entry else []
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc = self._procs.pop(name, None)
        if proc is not None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _wait_gone([p for p in (pid, int(state.get("unshare_pid") or 0)) if p], 30)  # type: ignore[arg-type]
        _remove_container_cgroups(containers)
        _remove_host_cgroups(list(state.get("cgroups") or []))  # type: ignore[arg-type]
        _run(["ip", "link", "del", str(state["veth"])], check=False)
        var = str(state.get("var_dir") or "")
        if var:
            store = os.path.join(var, "store.img")
            _wait_loop_released(store, 30)
            _remove_tree(var)
        try:
            os.unlink(self._state_path(name))
        except FileNotFoundError:
            pass
        if name in self._mine:
            self._mine.remove(name)

    # ---- inventory ------------------------------------------------------------------
    def inventory(self, names: Optional[Sequence[str]] = None) -> str:
        """An Ansible INI inventory of the running hosts (all, or NAMES), one group per suite."""
        hosts = [h for h in self.hosts() if h.alive() and (not names or h.name in names)]
        missing = set(names or ()) - {h.name for h in hosts}
        if missing:
            raise LabError(f"no running lab host(s): {', '.join(sorted(missing))}")
        lines = []
        for suite in lab_rootfs.SUITES:
            members = [h for h in hosts if h.suite == suite]
            lines.append(f"[{suite}]")
            lines += [f"{h.name} ansible_host={h.ip}" for h in members]
            lines.append("")
        lines += [
            "[all:vars]",
            "ansible_user=root",
            f"ansible_ssh_private_key_file={ssh_key()}",
            "ansible_python_interpreter=/usr/bin/python3",
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o IdentitiesOnly=yes -o LogLevel=ERROR'",
            "",
        ]
        return "\n".join(lines)


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a cached repository file into a host's upper layer (same filesystem), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _wait_gone(pids: List[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/{p}") and _start_time(p) is not None and not _zombie(p) for p in pids):
        if time.monotonic() > deadline:
            raise LabError(f"lab processes {pids} did not end")
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _container_ids(init_pid: int) -> List[str]:
    """IDs of the host's Podman containers (read before the host is killed)."""
    path = f"/proc/{init_pid}/root{STORE}/overlay-containers/containers.json"
    try:
        with open(path) as f:
            return [str(c["id"]) for c in json.load(f) or [] if re.fullmatch(r"[0-9a-f]{64}", str(c.get("id")))]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def _remove_container_cgroups(ids: List[str]) -> None:
    """The hosts share this machine's cgroup tree (podman --cgroup-manager=cgroupfs makes
    libpod_parent/libpod-<id>); a container killed with its host leaves its empty cgroup."""
    if not ids:
        return
    dirs = [d for i in ids for d in glob.glob(f"/sys/fs/cgroup/*/libpod_parent/libpod-{i}") +
            glob.glob(f"/sys/fs/cgroup/libpod_parent/libpod-{i}")]
    deadline = time.monotonic() + 5
    while dirs and time.monotonic() < deadline:
        left = []
        for d in dirs:
            try:
                os.rmdir(d)  # only an empty cgroup can be removed: nothing running is touched
            except FileNotFoundError:
                pass
            except OSError:
                left.append(d)
        dirs = left
        if dirs:
            time.sleep(0.1)


def _host_cgroups(name: str) -> List[str]:
    """A systemd host's own cgroups: idmapguard-lab/NAME below this process's cgroup in the
    named systemd hierarchy and the unified one (the two systemd manages on a hybrid machine;
    the v1 controller hierarchies are left as they are)."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            controllers, path = line.rstrip("\n").split(":", 2)[1:]
            mount = {"name=systemd": "/sys/fs/cgroup/systemd", "": "/sys/fs/cgroup/unified"}.get(controllers)
            if mount and os.path.isdir(mount):
                out.append(os.path.normpath(f"{mount}/{path}/idmapguard-lab/{name}"))
            elif controllers == "" and os.path.exists("/sys/fs/cgroup/cgroup.procs"):  # pure cgroup v2
                out.append(os.path.normpath(f"/sys/fs/cgroup/{path}/idmapguard-lab/{name}"))
    return out


def _remove_host_cgroups(tops: List[str]) -> None:
    """The cgroups a systemd host's supervisor made (and its systemd below them), deepest
    first; only empty ones can go, so nothing running is touched."""
    deadline = time.monotonic() + 5
    for top in tops:
        while os.path.isdir(top):
            dirs = sorted((walked[0] for walked in os.walk(top)), key=lambda d: -d.count("/"))
            for d in dirs:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if os.path.isdir(top):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)


def _booted_init(supervisor: int) -> int:
    """PID (here) of the systemd booted under SUPERVISOR: the process below it that is PID 1
    of a PID namespace nested in the supervisor's. 0 while (re)booting."""
    todo = list(_children(supervisor))
    while todo:
        pid = todo.pop(0)
        try:
            with open(f"/proc/{pid}/status") as f:
                nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        except (OSError, IndexError):
            continue
        if len(nspid) >= 3 and nspid[-1] == "1":
            return pid
        todo.extend(_children(pid))
    return 0


def _wait_loop_released(backing: str, timeout: float) -> None:
    """The host's loop device autoclears once its mount namespace is gone (possibly a moment
    later: the kernel finishes the last unmount asynchronously); detach it if it lingers."""
    if not os.path.exists(backing):
        return
    deadline = time.monotonic() + timeout
    while True:
        devs = [line.split(":")[0] for line in _run(["losetup", "-j", backing], check=False).stdout.splitlines()]
        if not devs:
            return
        if time.monotonic() > deadline:
            for d in devs:
                _run(["losetup", "-d", d], check=False)
            return
        time.sleep(0.1)


def _remove_tree(path: str) -> None:
    with open("/proc/self/mounts") as f:
        mounted = [line.split()[1] for line in f]
    if any(m == path or m.startswith(path + "/") for m in mounted):
        raise LabError(f"refusing to remove {path}: something is mounted below it")
    shutil.rmtree(path, ignore_errors=True)
