"""The verify role on lab hosts: one summary line per host, hosts failed by policy."""
import os
import subprocess

from test_verify import prepare  # same directory: pytest puts it on sys.path (rootdir-relative)

PLAY = """\
- hosts: all
  gather_facts: false
  roles:
    - role: idmapguard.storage.verify
      idmapguard_verify_canary: true
      idmapguard_verify_fail_on: [needs_podman_upgrade, unsupported_kernel]
"""


def test_role_summarises_and_fails_by_policy(lab_host, inventory, tmp_path):
    sid = lab_host("sid")
    old = lab_host("bookworm")
    for host in (sid, old):
        prepare(host)
    play = tmp_path / "verify.yml"
    play.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False")
    proc = subprocess.run(["ansible-playbook", "-i", inventory(sid, old), str(play)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout
    print(out)
    assert proc.returncode == 2, out + proc.stderr  # a host failed
    summary = [line for line in out.splitlines() if '"msg": "idmapguard ' in line]
    assert len(summary) == 2, out
    sid_line = next(line for line in summary if sid.name in line)
    old_line = next(line for line in summary if old.name in line)
    assert "shares;" in sid_line and "canary added 0 copies" in sid_line
    assert "needs_podman_upgrade;" in old_line and "canary added 1 copies" in old_line
    assert "mapped copies holding" in old_line and "inodes" in old_line
    # the policy failed bookworm, not sid
    recap = {line.split()[0]: line for line in out.splitlines() if " : ok=" in line}
    assert "failed=1" in recap[old.name] and "failed=0" in recap[sid.name]
    assert "is in idmapguard_verify_fail_on" in out
