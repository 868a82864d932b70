# -*- coding: utf-8 -*-
"""sharing_proof and proof_image: the pure parts (ids, script output, judgement, image tar).
The proof itself runs against real Podman on lab hosts (tests/integration/test_proof.py)."""

import os
import tarfile

from ansible_collections.idmapguard.storage.plugins.module_utils import proof_image, sharing_proof
from ansible_collections.idmapguard.storage.plugins.module_utils.idmap import DEFAULT_UIDMAP, parse_idmap

EXT = parse_idmap(DEFAULT_UIDMAP)


def test_ids_for_the_default_map():
    assert sharing_proof.choose_ids(EXT) == {"mapped": 531571, "unmapped": 65536, "cap_rootid": 1}
    # contiguous map: a mapped id in the one extent, the first id past it unmapped
    ids = sharing_proof.choose_ids(parse_idmap("0:100000:65536"))
    assert ids == {"mapped": 1, "unmapped": 65536, "cap_rootid": 1}


def test_parse_output():
    out = ("idmapguard-proof-started\nowner /proof/owned-root 0:0\nstep cap_exec ok\n"
           "step cap_copy_up fail touch: Value too large for defined data type\n")
    parsed = sharing_proof.parse_output(out)
    assert parsed["started"] and parsed["owners"] == {"/proof/owned-root": "0:0"}
    assert parsed["steps"] == {"cap_exec": "ok", "cap_copy_up": "touch: Value too large for defined data type"}


def _good():
    first = {"rc": 0, "error": "", "parsed": sharing_proof.parse_output(
        "idmapguard-proof-started\nowner /proof/owned-root 0:0\nowner /proof/owned-mapped 531571:531571\n"
        "owner /proof/owned-unmapped 65534:65534\n" + "".join(
            "step %s ok\n" % s for s in ("cap_read", "cap_exec", "cap_copy_up", "write_root", "write_mapped",
                                         "chown_mapped")))}
    second = {"rc": 0, "error": "", "parsed": sharing_proof.parse_output(
        "idmapguard-proof-started\nowner /proof/new-root 0:0\nowner /proof/new-mapped 531571:531571\n"
        "owner /proof/owned-mapped 531571:531571\nstep cap_exec ok\nstep cap_copy_up ok\n")}
    outside = {"upper_owners": {"proof/new-root": "1065537:1065537", "proof/new-mapped": "531571:531571"},
               "commit_rc": 0, "commit_error": "",
               "committed_owners": {"proof/new-root": "0:0", "proof/new-mapped": "531571:531571"},
               "committed_cap": {"revision": 3, "rootid": 1}}
    return first, second, outside


def judge(first, second, outside):
    return sharing_proof.judge(sharing_proof.choose_ids(EXT), EXT, EXT, (65534, 65534), first, second, outside)


def test_judge_all_good():
    checks = judge(*_good())
    assert {n: c["ok"] for n, c in checks.items()} == {n: True for n in sharing_proof.CHECKS}
    assert all("workaround" not in c and c["reference"] for c in checks.values())


def test_judge_container_that_does_not_start():
    first, second, outside = _good()
    first = {"rc": 126, "error": "Error: mount_setattr: invalid argument", "parsed": sharing_proof.parse_output("")}
    checks = judge(first, None, {})
    assert checks["start"]["ok"] is False and "mount_setattr" in checks["start"]["message"]
    assert [checks[n]["ok"] for n in ("ownership", "file_caps", "commit")] == [None, None, None]


def test_judge_committed_host_rootid_is_1126():
    first, second, outside = _good()
    outside["committed_cap"] = {"revision": 3, "rootid": 1065538}
    second["parsed"]["steps"]["cap_exec"] = "/bin/sh: 1: /proof/cap/true: Value too large for defined data type"
    checks = judge(first, second, outside)
    assert checks["commit"]["ok"] is False and "#1126" in checks["commit"]["message"]
    assert "_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes" in checks["commit"]["workaround"]
    assert checks["file_caps"]["ok"] is True
    # each thing that went wrong is named by kind, for the known-issue table
    assert [p["kind"] for p in checks["commit"]["problems"]] == ["commit_capability", "commit_capability_eoverflow"]
    assert all(c["problems"] == [] for n, c in checks.items() if n != "commit")


def test_judge_problem_kinds_of_other_commit_failures():
    first, second, outside = _good()
    outside["committed_owners"]["proof/new-root"] = "1065537:1065537"
    second["parsed"]["steps"]["cap_copy_up"] = "touch: Permission denied"
    kinds = [p["kind"] for p in judge(first, second, outside)["commit"]["problems"]]
    assert kinds == ["commit_layer_owner", "commit_capability_use"]
    outside = dict(outside, commit_rc=125, commit_error="Error: unable to look up size of layer")
    assert [p["kind"] for p in judge(first, second, outside)["commit"]["problems"]] == ["commit_failed"]
    # a failed check without named problems gets one of its own name
    first = {"rc": 126, "error": "Error: mount_setattr: invalid argument", "parsed": sharing_proof.parse_output("")}
    assert [p["kind"] for p in judge(first, None, {})["start"]["problems"]] == ["start"]


def test_judge_wrong_owner_on_disk():
    first, second, outside = _good()
    outside["upper_owners"]["proof/new-root"] = "0:0"  # written unshifted: not the mapped host id
    checks = judge(first, second, outside)
    assert checks["ownership"]["ok"] is False and "proof/new-root is 0:0 on disk" in checks["ownership"]["message"]


def test_elf_closure_of_this_machines_shell():
    files = proof_image.closure(["/bin/sh"])
    assert files[0] == "/bin/sh"
    assert any(os.path.basename(f).startswith("libc.so") for f in files)
    interp, _needed = proof_image.elf_dependencies(os.path.realpath("/bin/sh"))
    assert interp in files


def test_capability_round_trip():
    value = proof_image.v3_capability(1)
    assert len(value) == 24 and proof_image.parse_capability(value) == {"revision": 3, "rootid": 1}


def test_proof_tar(tmp_path):
    tools = proof_image.find_toolbox(busybox_paths=())
    path = str(tmp_path / "p.tar")
    proof_image.write_proof_tar(path, tools, 531571, 65536, 1)
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["proof/owned-mapped"].uid == 531571 and members["proof/owned-unmapped"].gid == 65536
    cap = members["proof/cap/true"].pax_headers["SCHILY.xattr.security.capability"]
    assert proof_image.parse_capability(cap.encode("utf-8", "surrogateescape")) == {"revision": 3, "rootid": 1}
    assert all("bin/" + t in members for t in proof_image.TOOLS)
