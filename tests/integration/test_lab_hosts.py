"""Self-tests of the lab: hosts are real, separate, reachable over SSH, and leave nothing behind."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.lab.lab import STORE


def ansible_bin(name: str) -> str:
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else (shutil.which(name) or name)


def test_host_is_pivot_rooted_with_own_store(lab_host):
    """Entered via pivot_root (not chroot): user namespaces work and Podman 5.8 shifts."""
    host = lab_host("sid", inodes=2048, size="64M")
    assert host.exec(["hostname"], check=True).stdout.strip() == host.name
    assert "idmapguard-lab-init" in host.exec(["cat", "/proc/1/cmdline"], check=True).stdout
    # the kernel refuses CLONE_NEWUSER to a chrooted process: this proves we are not one
    assert host.exec(["unshare", "--user", "--map-root-user", "true"]).returncode == 0
    status = json.loads(host.podman("info", "--format", "{{json .Store.GraphStatus}}", check=True).stdout)
    assert status["Supports shifting"] == "true", status
    assert host.exec(["stat", "-f", "-c", "%T", STORE], check=True).stdout.strip() == "ext2/ext3"
    st = os.statvfs(host.path(STORE))
    assert 1024 < st.f_files <= 2048, st.f_files  # mkfs.ext4 -N rounds per block group
    assert host.inodes_used() == st.f_files - st.f_ffree
    root = host.exec(["stat", "-f", "-c", "%T", "/"], check=True).stdout.strip()
    assert root == "overlayfs"


@pytest.mark.parametrize("store_fs,fs_type", [
    ("xfs", "xfs"), ("btrfs", "btrfs"), ("tmpfs", "tmpfs"), ("ramfs", "ramfs"), ("none", "overlayfs")])
def test_store_filesystems(lab_host, store_fs, fs_type):
    host = lab_host("sid", store_fs=store_fs, size="320M")
    assert host.exec(["stat", "-f", "-c", "%T", STORE], check=True).stdout.strip() == fs_type


def test_two_hosts_of_a_suite_and_ansible_over_ssh(lab_host, inventory):
    """Two sid hosts and a bookworm host at once, each answering Ansible over real SSH."""
    hosts = [lab_host("sid"), lab_host("sid"), lab_host("bookworm")]
    assert len({h.ip for h in hosts}) == 3
    inv = inventory(*hosts)
    out = subprocess.run([ansible_bin("ansible"), "-i", inv, "all", "-m", "ansible.builtin.command",
                          "-a", "hostname"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout
    for h in hosts:
        # the name each host reports back is its own: the connection reached that host
        assert f"{h.name} | CHANGED | rc=0 >>\n{h.name}\n" in out.stdout, out.stdout
    ping = subprocess.run([ansible_bin("ansible"), "-i", inv, "bookworm", "-m", "ansible.builtin.ping"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300, check=False)
    assert ping.returncode == 0 and '"ping": "pong"' in ping.stdout, ping.stdout


def test_multilayer_image(lab_host):
    host = lab_host("trixie")
    tag = host.image(files=30, layers=3)
    layers = json.loads(host.podman("image", "inspect", tag, check=True).stdout)[0]["RootFS"]["Layers"]
    assert len(layers) == 3
    out = host.podman("run", "--rm", tag, "sh", "-c", "ls /etc/fill | wc -l; stat -c %u /etc/owned-531571",
                      check=True).stdout.split()
    assert out == ["30", "531571"]


def test_teardown_leaves_nothing(lab):
    """A running container, then down: no process, mount, loop device, veth or file remains."""
    host = lab.up(suite="sid")
    tag = host.image(files=10)
    host.podman("run", "-d", "--name", "sleeper", tag, "sleep", "600", check=True)
    conmon = host.exec(["pgrep", "-x", "conmon"], check=True).stdout.split()
    assert conmon
    state = dict(host.state)
    backing = os.path.join(str(state["var_dir"]), "store.img")
    assert subprocess.run(["losetup", "-j", backing], stdout=subprocess.PIPE, universal_newlines=True,
                          check=False).stdout
    host.down()
    assert not os.path.exists(f"/proc/{state['init_pid']}")
    with open("/proc/self/mounts") as f:
        assert str(state["var_dir"]) not in f.read()
    assert not subprocess.run(["losetup", "-j", backing], stdout=subprocess.PIPE,
                              universal_newlines=True, check=False).stdout
    assert subprocess.run(["ip", "link", "show", str(state["veth"])], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode != 0
    assert not os.path.exists(str(state["var_dir"]))
    assert str(state["name"]) not in [h.name for h in lab.hosts()]


def test_systemd_host_boots_reboots_and_leaves_nothing(lab):
    """init="systemd": the suite's systemd is PID 1 (systemd-nspawn --boot, not chroot), the
    store is the lab's own filesystem, a reboot boots again on the same store, and down
    removes the host's cgroups with everything else."""
    host = lab.up(suite="bookworm", init="systemd", inodes=2048, size="64M")
    state = dict(host.state)
    assert host.exec(["cat", "/proc/1/comm"], check=True).stdout.strip() == "systemd"
    assert host.exec(["systemctl", "is-system-running"]).stdout.strip() == "running"
    assert host.exec(["unshare", "--user", "--map-root-user", "true"]).returncode == 0
    assert host.exec(["stat", "-f", "-c", "%T", STORE], check=True).stdout.strip() == "ext2/ext3"
    ssh = subprocess.run(host.ssh_argv() + ["systemctl", "is-active", "ssh"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=False)
    assert ssh.stdout.strip() == "active", ssh
    tag = host.image(files=10)
    cid = host.podman("create", "--uidmap", "0:100000:1000", "--uidmap", "1000:300000:64536",
                      "--gidmap", "0:100000:65536", tag, "true", check=True).stdout.strip()
    first = host.entry_pid()
    host.exec(["systemctl", "reboot"])
    second = host.wait_booted(other_than=first)
    assert second != first
    assert cid in host.podman("ps", "-a", "--no-trunc", "-q", check=True).stdout
    with open(os.path.join(str(state["var_dir"]), "setup.log"), errors="replace") as f:
        assert "systemd-nspawn exited rc=133" in f.read()
    cgroups = list(state["cgroups"])
    assert cgroups and all(os.path.isdir(d) for d in cgroups)
    host.down()
    assert not any(os.path.exists(d) for d in cgroups)
    assert not os.path.exists(str(state["var_dir"]))
