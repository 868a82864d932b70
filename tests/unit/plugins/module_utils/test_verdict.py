# -*- coding: utf-8 -*-
"""The verdict rules as a table: facts in, verdict and every reason code out."""

import glob
import json
import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.verdict import (
    REASON_VERDICT,
    VERDICTS,
    HostFacts,
    evaluate,
    parse_version,
)

OK = {"ok": True, "errno": None, "message": "ok"}


def probe(fs="ext4", mount_api=None, idm=None, ovl=None, release="6.18.4"):
    """A probe result shaped like `idmapped-mount probe` prints it (issue 3); checks default to ok."""
    mount_api, idm, ovl = (c if c is not None else dict(OK) for c in (mount_api, idm, ovl))
    return {"version": "1", "kernel": release, "path": "/var/lib/containers/storage", "fs_type": fs,
            "uidmap": [[0, 1065537, 65536], [531571, 531571, 1]], "gidmap": [[0, 1065537, 65536]],
            "checks": {"mount_api": mount_api, "idmapped_mount": idm, "overlay_idmapped_lower": ovl}}


def fail(errno, message="failed"):
    return {"ok": False, "errno": errno, "message": message}


NOT_RUN = {"ok": False, "errno": None, "message": "not run: an earlier check failed"}
GOOD = dict(kernel_release="6.18.4", probe=probe(), fs_type="ext4", podman_version="5.8.0",
            max_user_namespaces=63000)


def host(**overrides):
    """HostFacts of a good host (GOOD) with some facts changed."""
    values = dict(GOOD)
    values.update(overrides)
    return HostFacts(**values)


FUSE = "/usr/bin/fuse-overlayfs"
UNIT_FUSE = {"unit": "podman.service", "copying": {"mount_program": FUSE},
             "storage_conf": {"path": "/srv/unit.conf", "file": "/etc/systemd/system/podman.service.d/10-conf.conf",
                              "line": 2, "via": "Environment"},
             "setting_files": {"mount_program": {"file": "/srv/unit.conf", "line": 5}}}
UNIT_VFS_FROM_ENV_FILE = {"unit": "web.service", "copying": {"driver": "vfs"},
                          "storage_conf": {"path": "/srv/web.conf", "file": "/etc/containers/systemd/web.container",
                                           "line": 4, "via": "EnvironmentFile", "env_file": "/etc/default/web",
                                           "env_file_line": 1},
                          "setting_files": {"driver": {"file": "/srv/web.conf", "line": 2}}}
# a unit whose Podman reads other files, which set nothing that copies (say, another graphroot)
UNIT_OTHER_STORE = {"unit": "podman-restart.service", "copying": {}, "storage_conf": {"path": "/srv/x.conf"},
                    "setting_files": {}}

CASES = [
    # id, overrides of GOOD, verdict, reason codes (exactly, in order)
    ("all-good-5.8", {}, "shares", []),
    ("podman-5.6.0-first-sharing", {"podman_version": "5.6.0"}, "shares", []),
    ("podman-5.6.0-rc", {"podman_version": "5.6.0-rc1"}, "shares", []),
    ("podman-5.5.2", {"podman_version": "5.5.2"}, "needs_podman_upgrade", ["podman_too_old"]),
    ("podman-5.4-trixie", {"podman_version": "5.4.2"}, "needs_podman_upgrade", ["podman_too_old"]),
    ("podman-4.3-bookworm", {"podman_version": "4.3.1"}, "needs_podman_upgrade", ["podman_too_old"]),
    ("podman-5.5-declared-backport", {"podman_version": "5.5.2", "podman_backport": True}, "shares", []),
    ("podman-5.5-declared-backport-canary-copied", {"podman_version": "5.5.2", "podman_backport": True,
                                                    "canary_new_mapped_layers": 1},
     "needs_podman_upgrade", ["podman_too_old"]),
    ("podman-missing", {"podman_version": None}, "needs_podman_upgrade", ["podman_missing"]),
    ("canary-shared-overrides-version", {"podman_version": "5.4.2", "canary_new_mapped_layers": 0}, "shares", []),
    # a Podman that shares is never told to upgrade: a copy no rule explains is said to be unexplained
    ("canary-copied-unexplained", {"canary_new_mapped_layers": 1}, "copies_unexplained", ["canary_copied"]),
    # units whose CONTAINERS_STORAGE_CONF names another storage.conf: the canary's Podman shares, the unit's does not
    ("unit-conf-mount-program-canary-shared", {"canary_new_mapped_layers": 0, "unit_storage_conf": [UNIT_FUSE]},
     "fixable_by_config", ["unit_storage_conf"]),
    ("unit-conf-vfs-and-fuse", {"unit_storage_conf": [UNIT_FUSE, UNIT_VFS_FROM_ENV_FILE]},
     "fixable_by_config", ["unit_storage_conf", "unit_storage_conf"]),
    ("unit-conf-other-store-only", {"unit_storage_conf": [UNIT_OTHER_STORE]}, "shares", []),
    ("unit-conf-and-old-podman", {"podman_version": "5.4.2", "unit_storage_conf": [UNIT_FUSE]},
     "needs_podman_upgrade", ["podman_too_old", "unit_storage_conf"]),
    ("podman-says-no-shifting-unexplained", {"supports_shifting": False}, "copies_unexplained",
     ["podman_no_shifting"]),
    ("podman-says-no-shifting-canary-shared", {"supports_shifting": False, "canary_new_mapped_layers": 0},
     "shares", []),
    ("podman-says-no-shifting-explained-by-userns", {"supports_shifting": False, "max_user_namespaces": 0},
     "fixable_by_config", ["no_userns"]),
    ("canary-copied-explained-by-fuse", {"canary_new_mapped_layers": 1, "mount_program": "/usr/bin/fuse-overlayfs"},
     "fixable_by_config", ["mount_program"]),
    ("mount-program", {"mount_program": "/usr/bin/fuse-overlayfs"}, "fixable_by_config", ["mount_program"]),
    # c/storage's .has-mount-program marker: fuse-overlayfs from PATH with no mount_program configured
    ("mount-program-marker", {"mount_program_marker": "true", "implicit_mount_program": "/usr/bin/fuse-overlayfs",
                              "mount_program_marker_path": "/var/lib/containers/storage/overlay/.has-mount-program"},
     "fixable_by_config", ["mount_program_marker"]),
    ("mount-program-marker-no-fuse", {"mount_program_marker": "true", "implicit_mount_program": None}, "shares", []),
    ("mount-program-marker-false", {"mount_program_marker": "false",
                                    "implicit_mount_program": "/usr/bin/fuse-overlayfs"}, "shares", []),
    ("mount-program-marker-and-configured", {"mount_program_marker": "true", "mount_program": "/usr/bin/fuse-overlayfs",
                                             "implicit_mount_program": "/usr/bin/fuse-overlayfs"},
     "fixable_by_config", ["mount_program"]),
    ("disable-env", {"disable_idmap_env": True, "disable_idmap_where": ["/etc/systemd/system/podman.service.d/x.conf"]},
     "fixable_by_config", ["disable_idmap_env"]),
    ("vfs-driver", {"driver": "vfs"}, "fixable_by_config", ["driver_vfs"]),
    ("btrfs-driver", {"driver": "btrfs"}, "fixable_by_config", ["driver_not_overlay"]),
    # containers/storage's cached probe answers in the runroot (the helper's probe judges them)
    ("cache-idmapped-stale", {"probe_cache": {"idmapped-lower-dir": False, "overlay": True},
                              "supports_shifting": False},
     "fixable_by_config", ["probe_cache_stale"]),
    ("cache-idmapped-stale-canary-copied", {"probe_cache": {"idmapped-lower-dir": False},
                                            "supports_shifting": False, "canary_new_mapped_layers": 1},
     "fixable_by_config", ["probe_cache_stale"]),
    ("cache-overlay-stale", {"probe_cache": {"overlay": False}}, "fixable_by_config", ["probe_cache_stale"]),
    ("cache-both-stale", {"probe_cache": {"overlay": False, "idmapped-lower-dir": False}},
     "fixable_by_config", ["probe_cache_stale", "probe_cache_stale"]),
    ("cache-positive", {"probe_cache": {"idmapped-lower-dir": True, "overlay": True, "metacopy()": False,
                                        "native-diff()": False, "volatile": False}}, "shares", []),
    ("cache-stale-and-fuse", {"probe_cache": {"idmapped-lower-dir": False}, "mount_program": "/usr/bin/fuse-overlayfs"},
     "fixable_by_config", ["mount_program", "probe_cache_stale"]),
    ("cache-stale-old-podman", {"probe_cache": {"idmapped-lower-dir": False}, "podman_version": "5.4.2"},
     "needs_podman_upgrade", ["podman_too_old", "probe_cache_stale"]),
    ("cache-confirmed-by-probe-fs", {"probe_cache": {"idmapped-lower-dir": False}, "fs_type": "ramfs",
                                     "probe": probe(fs="ramfs", idm=fail("EINVAL"), ovl=NOT_RUN)},
     "unsupported_filesystem", ["fs_no_idmap"]),
    ("cache-confirmed-by-probe-kernel", {"probe_cache": {"idmapped-lower-dir": False},
                                         "probe": probe(ovl=fail("EINVAL"))},
     "unsupported_kernel", ["kernel_no_overlay_idmap"]),
    ("cache-unproven-probe-enospc", {"probe_cache": {"idmapped-lower-dir": False},
                                     "probe": probe(idm=fail("ENOSPC"), ovl=NOT_RUN)},
     "fixable_by_config", ["probe_cache_unproven"]),
    ("cache-unproven-no-probe", {"probe_cache": {"idmapped-lower-dir": False}, "probe": None},
     "fixable_by_config", ["probe_cache_unproven"]),
    ("cache-ignored-with-vfs", {"probe_cache": {"idmapped-lower-dir": False}, "driver": "vfs"},
     "fixable_by_config", ["driver_vfs"]),
    # read-only additional image stores: copies per container where the host copies, nothing where it shares
    ("additional-store-sharing-host", {"additional_image_stores": ["/var/lib/shared"]}, "shares", []),
    ("additional-store-old-podman", {"additional_image_stores": ["/var/lib/shared"], "podman_version": "4.3.1"},
     "needs_podman_upgrade", ["podman_too_old", "additional_image_store"]),
    ("additional-store-stale-cache", {"additional_image_stores": ["/var/lib/shared"],
                                      "probe_cache": {"idmapped-lower-dir": False}},
     "fixable_by_config", ["probe_cache_stale", "additional_image_store"]),
    ("disable-env-declared", {"disable_idmap_env": True, "disable_idmap_kept": "declared by the operator: commits",
                              "disable_idmap_where": ["/etc/systemd/system/podman.service.d/x.conf"]},
     "fixable_by_config", ["disable_idmap_deliberate"]),
    ("disable-env-kept-by-proof", {"disable_idmap_env": True, "disable_idmap_kept": "proof check commit fails"},
     "fixable_by_config", ["disable_idmap_deliberate"]),
    ("kept-but-not-set", {"disable_idmap_kept": "declared by the operator"}, "shares", []),
    ("no-userns", {"max_user_namespaces": 0}, "fixable_by_config", ["no_userns"]),
    ("chroot", {"chrooted": True}, "fixable_by_config", ["chrooted"]),
    ("all-config-obstacles", {"mount_program": "/usr/bin/fuse-overlayfs", "disable_idmap_env": True,
                              "max_user_namespaces": 0, "chrooted": True},
     "fixable_by_config", ["mount_program", "disable_idmap_env", "no_userns", "chrooted"]),
    ("old-podman-and-config", {"podman_version": "5.4.2", "mount_program": "/usr/bin/fuse-overlayfs"},
     "needs_podman_upgrade", ["podman_too_old", "mount_program"]),
    # kernels around 5.12 / 5.19 as the probe finds them
    ("kernel-5.10-no-mount-api", {"kernel_release": "5.10.0-30-amd64",
                                  "probe": probe(mount_api=fail("ENOSYS"), idm=NOT_RUN, ovl=NOT_RUN)},
     "unsupported_kernel", ["kernel_no_mount_api"]),
    ("kernel-5.12-idmap-but-no-overlay", {"kernel_release": "5.12.0", "probe": probe(ovl=fail("EINVAL"))},
     "unsupported_kernel", ["kernel_no_overlay_idmap"]),
    ("kernel-5.18-no-overlay", {"kernel_release": "5.18.19", "probe": probe(ovl=fail("EINVAL"))},
     "unsupported_kernel", ["kernel_no_overlay_idmap"]),
    ("kernel-5.19-ok", {"kernel_release": "5.19.0", "probe": probe()}, "shares", []),
    ("kernel-idmap-enosys", {"probe": probe(idm=fail("ENOSYS"), ovl=NOT_RUN)},
     "unsupported_kernel", ["kernel_no_idmap"]),
    # RHEL-style kernels: the probe is authoritative over the release number
    ("rhel8-4.18-probe-fails", {"kernel_release": "4.18.0-553.el8_10.x86_64",
                                "probe": probe(mount_api=fail("ENOSYS"), idm=NOT_RUN, ovl=NOT_RUN)},
     "unsupported_kernel", ["kernel_no_mount_api"]),
    ("rhel9-5.14-probe-passes", {"kernel_release": "5.14.0-427.13.1.el9_4.x86_64", "probe": probe()}, "shares", []),
    ("rhel9-5.14-no-probe-guess", {"kernel_release": "5.14.0-427.13.1.el9_4.x86_64", "probe": None},
     "unsupported_kernel", ["kernel_no_overlay_idmap"]),
    ("no-probe-4.18-guess", {"kernel_release": "4.18.0-553.el8_10.x86_64", "probe": None},
     "unsupported_kernel", ["kernel_no_idmap"]),
    ("no-probe-6.1-ext4-guess", {"kernel_release": "6.1.0-40-amd64", "probe": None}, "shares", []),
    # at 0 free inodes the probe cannot make its scratch directory: inconclusive, not negative
    ("probe-enospc-6.18-guess", {"probe": probe(idm=fail("ENOSPC", "cannot create a scratch directory"), ovl=NOT_RUN)},
     "shares", []),
    ("probe-enospc-5.10-guess", {"kernel_release": "5.10.0-30-amd64",
                                 "probe": probe(idm=fail("ENOSPC"), ovl=NOT_RUN)},
     "unsupported_kernel", ["kernel_no_idmap"]),
    ("probe-enospc-ramfs-guess", {"fs_type": "ramfs", "probe": probe(fs="ramfs", idm=fail("ENOSPC"), ovl=NOT_RUN)},
     "unsupported_filesystem", ["fs_no_idmap"]),
    # filesystems
    ("ramfs", {"fs_type": "ramfs", "probe": probe(fs="ramfs", idm=fail("EINVAL"), ovl=NOT_RUN)},
     "unsupported_filesystem", ["fs_no_idmap"]),
    ("tmpfs-on-6.18-probe-ok", {"fs_type": "tmpfs", "probe": probe(fs="tmpfs")}, "shares", []),
    ("no-probe-tmpfs-on-6.1-guess", {"kernel_release": "6.1.0-40-amd64", "fs_type": "tmpfs", "probe": None},
     "unsupported_filesystem", ["fs_no_idmap"]),
    ("no-probe-nfs-guess", {"fs_type": "nfs", "probe": None}, "unsupported_filesystem", ["fs_no_idmap"]),
    ("fs-and-old-podman-and-config", {"fs_type": "ramfs", "podman_version": "4.3.1",
                                      "mount_program": "/usr/bin/fuse-overlayfs",
                                      "probe": probe(fs="ramfs", idm=fail("EINVAL"), ovl=NOT_RUN)},
     "unsupported_filesystem", ["fs_no_idmap", "podman_too_old", "mount_program"]),
    ("kernel-beats-everything", {"kernel_release": "5.10.0", "podman_version": "4.3.1", "chrooted": True,
                                 "probe": probe(mount_api=fail("ENOSYS"), idm=NOT_RUN, ovl=NOT_RUN)},
     "unsupported_kernel", ["kernel_no_mount_api", "podman_too_old", "chrooted"]),
]


@pytest.mark.parametrize("overrides,verdict,codes", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdict_table(overrides, verdict, codes):
    result = evaluate(host(**overrides))
    assert result.verdict == verdict
    assert result.reason_codes == codes
    assert len(result.reasons) == len(codes)  # one human sentence per obstacle
    assert result.shares_noncontiguous == (verdict == "shares")
    assert result.remedy and result.remedy.endswith(".")


def test_every_verdict_and_reason_code_is_exercised():
    assert {c[2] for c in CASES} == set(VERDICTS)
    assert {code for c in CASES for code in c[3]} == set(REASON_VERDICT)
    assert set(v for v in REASON_VERDICT.values() if v) | {"shares"} == set(VERDICTS)


def test_stale_cache_names_the_file_and_is_the_only_thing_to_clear():
    marker = "/run/containers/storage/overlay/idmapped-lower-dir-false"
    r = evaluate(host(probe_cache={"idmapped-lower-dir": False, "overlay": True},
                      probe_cache_files={"idmapped-lower-dir": marker, "overlay": marker[:-25] + "overlay-true"},
                      supports_shifting=False, canary_new_mapped_layers=1))
    assert r.stale_probe_cache == ["idmapped-lower-dir"]
    assert marker in r.reasons[0] and "stale" in r.reasons[0] and "Supports shifting: false" in r.reasons[0]
    assert marker in r.remedy and "canary" in r.remedy and "pgrade" not in r.remedy
    # confirmed or unproven negative answers are never cleared
    for facts in (dict(probe=probe(fs="ramfs", idm=fail("EINVAL"), ovl=NOT_RUN), fs_type="ramfs"),
                  dict(probe=probe(idm=fail("ENOSPC"), ovl=NOT_RUN))):
        r = evaluate(host(probe_cache={"idmapped-lower-dir": False}, probe_cache_files={"idmapped-lower-dir": marker},
                          **facts))
        assert r.stale_probe_cache == []
    r = evaluate(host(probe_cache={"idmapped-lower-dir": False}, probe_cache_files={"idmapped-lower-dir": marker},
                      probe=probe(fs="ramfs", idm=fail("EINVAL"), ovl=NOT_RUN), fs_type="ramfs"))
    assert "cached probe agrees: %s" % marker in r.reasons[0]
    r = evaluate(host(probe_cache={"idmapped-lower-dir": False}, probe=None))
    assert "remediate" in r.remedy and "idmapped-lower-dir-false" in r.remedy


def test_a_podman_that_shares_is_never_told_to_upgrade():
    r = evaluate(host(podman_version="5.8.6", canary_new_mapped_layers=1, canary_new_mapped_layer_inodes=352,
                      supports_shifting=True, probe_cache={"idmapped-lower-dir": True}))
    assert r.verdict == "copies_unexplained"
    assert "pgrade" not in r.reasons[0] and "does not share" not in r.reasons[0]
    assert "352 inodes" in r.reasons[0] and "5.8.6" in r.reasons[0] and "idmapped-lower-dir=true" in r.reasons[0]
    assert r.remedy.startswith("Do not upgrade")


def test_vfs_and_mixed_remedies():
    r = evaluate(host(driver="vfs"))
    assert "every container" in r.reasons[0] and "overlay" in r.remedy and "pulled again" in r.remedy
    r = evaluate(host(probe_cache={"idmapped-lower-dir": False}, mount_program="/usr/bin/fuse-overlayfs"))
    assert "idmapped-lower-dir-false" in r.remedy and "Fix the configuration" in r.remedy


def test_reasons_name_what_is_wrong():
    r = evaluate(host(mount_program="/usr/bin/fuse-overlayfs", disable_idmap_env=True,
                      disable_idmap_where=["/etc/systemd/system/podman.service.d/idmap.conf"]))
    assert "/usr/bin/fuse-overlayfs" in r.reasons[0]
    assert "/etc/systemd/system/podman.service.d/idmap.conf" in r.reasons[1]
    r = evaluate(host(probe=probe(fs="ramfs", idm=fail("EINVAL", "mount_setattr"), ovl=NOT_RUN),
                      fs_type="ramfs"))
    assert "ramfs" in r.reasons[0] and "EINVAL" in r.reasons[0]
    assert r.idmapped_mount is False and r.overlay_idmapped_lower is False
    r = evaluate(host(kernel_release="5.4.0", probe=probe(idm=fail("ENOSPC"), ovl=NOT_RUN)))
    assert "guessed" in r.reasons[0] and "ENOSPC" in r.reasons[0]
    r = evaluate(host(max_user_namespaces=0))
    assert "Supports shifting: false" in r.reasons[0]


@pytest.mark.parametrize("text,expected", [
    ("5.6.0", (5, 6, 0)), ("5.6", (5, 6)), ("v5.6.1", (5, 6, 1)), ("5.14.0-427.el9.x86_64", (5, 14, 0)),
    ("6.18.4-amd64", (6, 18, 4)), ("", None), (None, None), ("podman", None),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


# Probe outputs of real Debian kernels booted under qemu by the native area's kernel matrix
# (tests/fixtures/kernel-matrix/<release>.json: {"kernel": ..., "probes": {fs: probe JSON}}).
MATRIX_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "kernel-matrix")
MATRIX_EXPECTED = {
    # release prefix, fs -> verdict, reason codes
    ("5.10.", "ext4"): ("unsupported_kernel", ["kernel_no_mount_api"]),
    ("5.10.", "tmpfs"): ("unsupported_kernel", ["kernel_no_mount_api"]),
    ("6.1.", "ext4"): ("shares", []),
    ("6.1.", "tmpfs"): ("unsupported_filesystem", ["fs_no_idmap"]),  # tmpfs gained idmap in 6.3
    ("6.12.", "ext4"): ("shares", []),
    ("6.12.", "tmpfs"): ("shares", []),
}


def _matrix_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(MATRIX_DIR, "*.json"))):
        with open(path) as handle:
            data = json.load(handle)
        for fs, result in sorted((data.get("probes") or {}).items()):
            cases.append(pytest.param(data["kernel"], fs, result, id="%s-%s" % (data["kernel"], fs)))
    return cases


MATRIX = _matrix_cases()


@pytest.mark.skipif(not MATRIX, reason="kernel-matrix fixtures not generated yet")
@pytest.mark.parametrize("release,fs,result", MATRIX)
def test_kernel_matrix_fixtures(release, fs, result):
    expected = [v for (prefix, f), v in MATRIX_EXPECTED.items() if release.startswith(prefix) and f == fs]
    assert expected, "add the expected verdict of %s on %s to MATRIX_EXPECTED" % (release, fs)
    verdict = evaluate(host(kernel_release=release, probe=result, fs_type=fs))
    assert (verdict.verdict, verdict.reason_codes) == expected[0]


def test_deliberate_disable_says_why():
    r = evaluate(host(disable_idmap_env=True, disable_idmap_kept="proof check commit fails without it (#1126)",
                      disable_idmap_where=["/etc/systemd/system/podman.service.d/idmap.conf"]))
    assert r.reason_codes == ["disable_idmap_deliberate"]
    assert "on purpose (proof check commit fails without it (#1126))" in r.reasons[0]
    assert "configure keeps it" in r.reasons[0] and "remove it" not in r.reasons[0]


def test_unit_reason_names_the_unit_the_environment_line_and_the_setting():
    text = evaluate(host(unit_storage_conf=[UNIT_FUSE, UNIT_VFS_FROM_ENV_FILE])).reasons
    assert "podman.service" in text[0] and "CONTAINERS_STORAGE_CONF=/srv/unit.conf" in text[0]
    assert "/etc/systemd/system/podman.service.d/10-conf.conf line 2" in text[0]
    assert "mount_program %s (/srv/unit.conf line 5)" % FUSE in text[0]
    assert "EnvironmentFile /etc/containers/systemd/web.container line 4 from /etc/default/web line 1" in text[1]
    assert "driver vfs (/srv/web.conf line 2)" in text[1]
