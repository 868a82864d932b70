"""The storage_conf module and the configure role on lab hosts, judged by what Podman reports.

- sid (Podman 5.8) and podman6 (6.1) with a fuse-overlayfs store: the verify facts (helper role +
  idmap_support) say fixable_by_config; the role refuses while the store's marker or a container
  made through fuse-overlayfs would break, then turns the store into native overlay with a drop-in
  of its own (these Podman versions read drop-ins; the main file stays as it was), after which a
  new non-contiguous map adds no mapped copy; a second run changes nothing. The mount program is
  set in /etc's main file and an earlier drop-in (sid), or in a main file in /usr/share only
  (podman6). Removing the drop-in (the rollback's `undo`) gives Podman its old setting back; a
  drop-in read after ours that sets mount_program makes the role refuse, naming it.
- bookworm (Podman 4.3): the verdict is needs_podman_upgrade; the role touches nothing.
- trixie: the module on the vendor file (no /etc file), Podman's view of an edit, a file Podman
  rejects and a malformed file (both leave the file as it was).
"""
import hashlib
import json
import os
import subprocess
import textwrap
from typing import Dict, List, Optional, Tuple

import pytest

STORE = "/var/lib/containers/storage"
CONF = "/etc/containers/storage.conf"
VENDOR = "/usr/share/containers/storage.conf"
OUR_DROPIN = "/etc/containers/storage.rootful.conf.d/zz-idmapguard.conf"
EARLY_DROPIN = "/etc/containers/storage.conf.d/50-fuse.conf"
LATE_DROPIN = "/etc/containers/storage.conf.d/zzz-site.conf"
FUSE_DROPIN = '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
MARKER = STORE + "/overlay/.has-mount-program"
FILES = 300
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def noncontiguous(base: int) -> List[str]:
    return ["--uidmap", f"0:{base}:65536", "--uidmap", "531571:531571:1",
            "--gidmap", f"0:{base}:65536", "--gidmap", "531571:531571:1"]


def mapped_layers(host) -> int:
    with open(host.path(STORE + "/overlay-images/images.json")) as f:
        return sum(len(img.get("mapped-layers") or []) for img in json.load(f))


def file_sha(host, inside: str) -> Optional[str]:
    try:
        with open(host.path(inside), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def read(host, inside: str) -> Optional[str]:
    try:
        with open(host.path(inside)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def podman_store(host) -> Dict[str, object]:
    """The `store` part of `podman info --format json` (graphDriverName, graphOptions, runRoot...)."""
    return json.loads(host.podman("info", "--format", "json", check=True).stdout)["store"]


def podman_mount_program(host) -> Optional[str]:
    option = (podman_store(host).get("graphOptions") or {}).get("overlay.mount_program")
    return option.get("Executable") if option else None


def playbook(tmp_path, inventory: str, tasks: str, *args: str) -> Tuple[int, str, Dict[str, object]]:
    """Run TASKS (YAML) on all hosts; return rc, output and the `result` each task saved."""
    out = tmp_path / "result.json"
    if out.exists():
        out.unlink()
    book = tmp_path / "play.yml"
    book.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
        """) + textwrap.indent(textwrap.dedent(tasks), "    ") + textwrap.indent(textwrap.dedent(f"""\
        - name: Save the result for the test
          ansible.builtin.copy:
            content: "{{{{ result | default({{}}) | to_json }}}}"
            dest: {out}
            mode: "0600"
          delegate_to: localhost
          check_mode: false
          diff: false
          changed_when: false
          when: result is defined
        """), "    "))
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="False")
    proc = subprocess.run(["ansible-playbook", "-i", inventory, str(book), *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=600, check=False)
    print(proc.stdout)
    result = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, proc.stdout, result


def recap_changed(output: str) -> int:
    line = [ln for ln in output.splitlines() if " changed=" in ln][-1]
    return int(line.split(" changed=")[1].split()[0])


VERIFY_AND_CONFIGURE = """\
- name: Deploy the probe helper
  ansible.builtin.include_role:
    name: idmapguard.storage.helper
- name: Gather the verify facts
  idmapguard.storage.idmap_support:
- name: Configure from the facts
  ansible.builtin.include_role:
    name: idmapguard.storage.configure
  vars:
    idmapguard_configure_allow_store_change: {allow}
- name: Keep what the role did
  ansible.builtin.set_fact:
    result: "{{{{ idmapguard_configure | combine({{'verdict_facts': ansible_facts.idmapguard.verdict}}) }}}}"
"""


ROLLBACK = """\
- name: Put storage.conf back as the configure role's undo says (what steps/rollback.yml does)
  ansible.builtin.file:
    path: "{undo[path]}"
    state: absent
  when: not {undo[existed]}
"""


@pytest.mark.parametrize("suite", ["sid", "podman6"])
def test_fuse_overlayfs_store_becomes_one_that_shares_layers(lab_host, inventory, tmp_path, suite):
    host = lab_host(suite, inodes=4096 + 4 * FILES, mount_program="/usr/bin/fuse-overlayfs")
    if suite == "sid":
        # the mount program in the main file and again in an earlier drop-in: ours overrides both
        host.write_file(EARLY_DROPIN, FUSE_DROPIN)
    else:
        # a main file in /usr/share only: Podman reads it; it stays, and our drop-in comes after it
        host.write_file(VENDOR, read(host, CONF))
        os.unlink(host.path(CONF))
    inv = inventory(host)
    image = host.image(files=FILES)
    assert podman_mount_program(host) == "/usr/bin/fuse-overlayfs"

    # Baseline in this run: through fuse-overlayfs a non-contiguous map costs a full copy.
    before = host.inodes_used()
    host.podman("create", "--name", "c1", *noncontiguous(1_000_000), image, "true", check=True)
    copy_cost = host.inodes_used() - before
    assert mapped_layers(host) == 1
    assert copy_cost >= FILES * 0.9, copy_cost
    assert read(host, MARKER) == "true"
    confs = {path: file_sha(host, path) for path in (CONF, VENDOR, EARLY_DROPIN)}

    def untouched() -> bool:
        return {path: file_sha(host, path) for path in confs} == confs

    # Default: refused, because the marker keeps fuse-overlayfs in use and guards the store.
    rc, out, dummy = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="false"))
    assert rc != 0
    assert "refusing to remove mount_program" in out and ".has-mount-program" in out
    assert untouched() and read(host, MARKER) == "true" and read(host, OUR_DROPIN) is None

    # Allowed, but c1 was created through fuse-overlayfs with a non-contiguous map: refused.
    rc, out, dummy = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"))
    assert rc != 0
    assert "container(s) c1" in out
    assert untouched() and read(host, MARKER) == "true" and read(host, OUR_DROPIN) is None

    host.podman("rm", "c1", check=True)

    # Check mode: the diff of a new file, and nothing written.
    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"), "--check", "--diff")
    assert rc == 0, out
    assert f"--- before: /dev/null ({OUR_DROPIN} is new)" in out and '+mount_program = ""' in out
    assert result["verdict_facts"] == "fixable_by_config"
    assert result["placement"] == "dropin" and result["path"] == OUR_DROPIN
    assert untouched() and read(host, MARKER) == "true" and read(host, OUR_DROPIN) is None

    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"), "--diff")
    assert rc == 0, out
    assert result["action"] == "configured"
    assert result["mount_program_marker"]["cleared"] is True
    assert result["changed_keys"] == ["storage.options.overlay.mount_program", "storage.options.mount_program"]
    assert result["undo"] == {"path": OUR_DROPIN, "existed": False, "content": None, "mode": None,
                              "owner": None, "group": None}
    # the main file (and the earlier drop-in) as they were; ours sorts last
    assert untouched()
    assert 'mount_program = ""' in read(host, OUR_DROPIN)
    st = os.stat(host.path(OUR_DROPIN))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o644, 0, 0)

    # Podman itself: native overlay, no mount program; c/storage re-derived its marker.
    store = podman_store(host)
    assert store["graphDriverName"] == "overlay"
    assert podman_mount_program(host) is None, store.get("graphOptions")
    assert read(host, MARKER) == "false"

    # A new non-contiguous map now adds no mapped copy, and the container runs.
    before = host.inodes_used()
    host.podman("create", "--name", "c2", *noncontiguous(2_000_000), image, "true", check=True)
    new_map_cost = host.inodes_used() - before
    assert mapped_layers(host) == 1, "the new map must not add a mapped copy"
    assert new_map_cost <= FILES // 10, (new_map_cost, copy_cost)
    host.podman("start", "-a", "c2", check=True)
    print(f"{suite}: a new non-contiguous map cost {copy_cost} inodes through fuse-overlayfs, "
          f"{new_map_cost} after configure")

    # Second run: the verify facts now say shares, and nothing changes.
    rc, out, second = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"))
    assert rc == 0, out
    assert second["verdict_facts"] == "shares"
    assert second["action"] == "unchanged"
    assert recap_changed(out) == 0

    # The rollback removes our drop-in: Podman reads the old setting again.
    host.podman("rm", "c2", check=True)
    rc, out, dummy = playbook(tmp_path, inv, ROLLBACK.format(undo=result["undo"]))
    assert rc == 0, out
    assert read(host, OUR_DROPIN) is None and untouched()
    assert podman_mount_program(host) == "/usr/bin/fuse-overlayfs"

    # A drop-in Podman reads after ours sets mount_program: refused, naming it; nothing written.
    host.write_file(LATE_DROPIN, FUSE_DROPIN)
    rc, out, dummy = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"))
    assert rc != 0
    assert f"refusing to write {OUR_DROPIN}: {LATE_DROPIN} line 2 sets mount_program" in out, out
    assert read(host, OUR_DROPIN) is None and untouched()
    assert read(host, LATE_DROPIN) == FUSE_DROPIN
    assert podman_mount_program(host) == "/usr/bin/fuse-overlayfs"


def test_bookworm_needs_an_upgrade_and_is_left_untouched(lab_host, inventory, tmp_path):
    host = lab_host("bookworm", mount_program="/usr/bin/fuse-overlayfs")
    conf_sha = file_sha(host, CONF)
    rc, out, result = playbook(tmp_path, inventory(host), VERIFY_AND_CONFIGURE.format(allow="true"))
    assert rc == 0, out
    assert result["verdict_facts"] == "needs_podman_upgrade"
    assert result["action"] == "skipped"
    assert "needs_podman_upgrade" in result["reason"]
    assert result["changed_keys"] == []
    assert file_sha(host, CONF) == conf_sha
    # Podman 4.3 reads no drop-ins: an edit here would go into the main file, in place
    assert result["placement"] == "main" and result["path"] == CONF
    edit_task = out.split("configure : Edit storage.conf]")[1].strip().split("\n")[1]
    assert edit_task.startswith("skipping:"), edit_task


MODULE = """\
- name: Edit storage.conf
  idmapguard.storage.storage_conf:
    settings: {settings}
    absent: {absent}
  register: result
  ignore_errors: true
"""


def test_trixie_module_edits_vendor_file_and_refuses_bad_files(lab_host, inventory, tmp_path):
    host = lab_host("trixie")
    inv = inventory(host)
    # The lab rootfs has podman without the containers-storage package: install its vendor file
    # (the real one, kept as a unit-test fixture) so the module starts from it.
    with open(os.path.join(REPO, "tests/fixtures/storage-conf/debian-trixie.conf")) as f:
        vendor = f.read()
    host.write_file("/usr/share/containers/storage.conf", vendor)
    assert read(host, CONF) is None

    # Already what the vendor file says: no /etc file is created.
    rc, out, result = playbook(tmp_path, inv, MODULE.format(settings='{"storage.options.overlay.mountopt": "nodev"}',
                                                            absent="[]"))
    assert rc == 0 and result["changed"] is False, out
    assert read(host, CONF) is None

    # A real edit starts from the vendor file; Podman reports the new runroot.
    settings = '{"storage.runroot": "/run/containers/storage-idmapguard"}'
    rc, out, result = playbook(tmp_path, inv, MODULE.format(settings=settings, absent="[]"), "--diff")
    assert rc == 0 and result["changed"] is True, out
    assert '+runroot = "/run/containers/storage-idmapguard"' in out
    assert result["podman"]["runroot"] == "/run/containers/storage-idmapguard"
    assert podman_store(host)["runRoot"] == "/run/containers/storage-idmapguard"
    written = read(host, CONF)
    assert written.replace('runroot = "/run/containers/storage-idmapguard"', 'runroot = "/run/containers/storage"') \
        == vendor
    st = os.stat(host.path(CONF))
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o644, 0, 0)

    rc, out, result = playbook(tmp_path, inv, MODULE.format(settings=settings, absent="[]"))
    assert rc == 0 and result["changed"] is False, out

    # Podman rejects the candidate: nothing changes.
    rc, out, result = playbook(tmp_path, inv, MODULE.format(settings='{"storage.driver": "no-such-driver"}',
                                                            absent="[]"))
    assert result.get("failed") is True, out
    assert "Podman rejects the edited file" in result["msg"]
    assert read(host, CONF) == written
    leftovers = [n for n in os.listdir(host.path("/etc/containers")) if n.endswith(".tmp")]
    assert leftovers == [], "the rejected candidate must be removed"

    # A malformed file: line and column, nothing changes.
    broken = written.replace('[storage.options]', '[storage.options', 1)
    host.write_file(CONF, broken)
    rc, out, result = playbook(tmp_path, inv, MODULE.format(settings='{"storage.driver": "overlay"}', absent="[]"))
    assert result.get("failed") is True, out
    line = broken.splitlines().index('[storage.options') + 1
    assert "is not valid TOML: line %d, column" % line in result["msg"], result["msg"]
    assert result["line"] == line
    assert read(host, CONF) == broken


def test_sid_disable_idmap_env_in_a_unit_gets_a_dropin(lab_host, inventory, tmp_path):
    host = lab_host("sid")
    host.write_file("/usr/lib/systemd/system/podman.service.d/50-site.conf",
                    "[Service]\nEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    host.write_file("/etc/environment", "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n")
    inv = inventory(host)
    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="false"))
    assert rc == 0, out
    assert result["verdict_facts"] == "fixable_by_config"
    dropin = "/etc/systemd/system/podman.service.d/90-idmapguard-allow-idmap.conf"
    assert result["dropins"] == [dropin]
    assert "UnsetEnvironment=_CONTAINERS_OVERLAY_DISABLE_IDMAP\n" in read(host, dropin)
    assert result["not_fixed"] == ["/etc/environment"]
    assert read(host, "/etc/environment") == "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes\n"
    # Podman 5.8 reads drop-ins and already uses native overlay: no storage.conf file is written
    # (the driver it detects is the one the fix wants, and there is no mount program to override).
    assert result["placement"] == "dropin" and result["conf_changed"] is False
    assert read(host, OUR_DROPIN) is None
    assert podman_store(host)["graphDriverName"] == "overlay"

    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="false"))
    assert rc == 0, out
    assert result["action"] == "unchanged"
    assert result["dropins"] == []
    assert recap_changed(out) == 0

    # podman.service names its own storage.conf in CONTAINERS_STORAGE_CONF, with a mount program:
    # Podman started by it reads that file alone, so the role edits it in place.
    unit_conf = "/etc/containers/unit-storage.conf"
    host.write_file(unit_conf, '[storage]\ndriver = "overlay"\ngraphroot = "/var/lib/containers/g-unit"\n'
                               'runroot = "/run/containers/g-unit"\n\n[storage.options.overlay]\n'
                               'mount_program = "/usr/bin/fuse-overlayfs"\n')
    host.write_file("/etc/systemd/system/podman.service.d/50-storage.conf",
                    f"[Service]\nEnvironment=CONTAINERS_STORAGE_CONF={unit_conf}\n")
    unit_info = ["env", f"CONTAINERS_STORAGE_CONF={unit_conf}", "podman", "info", "--format", "json"]
    options = json.loads(host.exec(unit_info, check=True).stdout)["store"].get("graphOptions") or {}
    assert "overlay.mount_program" in options
    # (that podman info wrote the unit store's mount-program marker: the role needs the opt-in)
    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="false"))
    assert rc != 0 and "/var/lib/containers/g-unit/overlay/.has-mount-program" in out
    assert "fuse-overlayfs" in read(host, unit_conf)
    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"), "--diff")
    assert rc == 0, out
    assert result["verdict_facts"] == "fixable_by_config"
    assert result["unit_files"] == [unit_conf] and result["unit_undo"][0]["existed"] is True
    assert "mount_program" not in read(host, unit_conf) and 'graphroot = "/var/lib/containers/g-unit"' in read(host, unit_conf)
    assert '-mount_program = "/usr/bin/fuse-overlayfs"' in out
    options = json.loads(host.exec(unit_info, check=True).stdout)["store"].get("graphOptions") or {}
    assert "overlay.mount_program" not in options, options
    assert read(host, OUR_DROPIN) is None  # the module's own Podman needed nothing
    rc, out, result = playbook(tmp_path, inv, VERIFY_AND_CONFIGURE.format(allow="true"))
    assert rc == 0, out
    assert result["unit_files"] == [] and recap_changed(out) == 0
