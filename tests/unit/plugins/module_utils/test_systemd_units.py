# -*- coding: utf-8 -*-
"""systemd_units: which files make a unit (systemd's order) and the environment its service gets."""

import os

import pytest

from ansible_collections.idmapguard.storage.plugins.module_utils.systemd_units import (
    env_file_assignments,
    parse_unit_text,
    quadlet_units,
    service_environment,
    unit_sources,
)


def put(root, path, text):
    full = str(root) + path
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(text)


def test_parse_sections_comments_and_continuations():
    text = ("# comment\n[Unit]\nDescription=x\n\n[Service]\n; other comment\n"
            "Environment=A=1 \\\n  # a comment inside the continuation\n  B=2\nExecStart=/usr/bin/podman\n")
    assert parse_unit_text(text) == [(3, "Unit", "Description", "x"), (7, "Service", "Environment", "A=1 B=2"),
                                     (10, "Service", "ExecStart", "/usr/bin/podman")]


def test_env_file_lines():
    text = "# c\n; c\nA=1\nexport B='two words'\nC=\"q\" # trailing\nnot an assignment\n"
    assert env_file_assignments(text) == {"A": ("1", 3), "B": ("two words", 4), "C": ("q", 5)}


ENV = "CONTAINERS_STORAGE_CONF"

# id, files {path: text}, unit, expected sources, expected CONTAINERS_STORAGE_CONF entry (None: unset)
CASES = [
    ("unit-file-only",
     {"/usr/lib/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n"},
     "podman.service", ["/usr/lib/systemd/system/podman.service"],
     {"value": "/a.conf", "file": "/usr/lib/systemd/system/podman.service", "line": 2, "via": "Environment"}),
    ("etc-unit-replaces-usr-lib",
     {"/usr/lib/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n",
      "/etc/systemd/system/podman.service": "[Service]\nExecStart=/usr/bin/podman\n"},
     "podman.service", ["/etc/systemd/system/podman.service"], None),
    ("masked",
     {"/usr/lib/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n",
      "@/etc/systemd/system/podman.service": "/dev/null"},
     "podman.service", [], None),
    ("dropins-sorted-by-name-across-dirs-later-wins",
     {"/usr/lib/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n",
      "/usr/lib/systemd/system/podman.service.d/20-b.conf": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/b.conf\n",
      "/run/systemd/system/podman.service.d/10-c.conf": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/c.conf\n"},
     "podman.service", ["/usr/lib/systemd/system/podman.service", "/run/systemd/system/podman.service.d/10-c.conf",
                        "/usr/lib/systemd/system/podman.service.d/20-b.conf"],
     {"value": "/b.conf", "file": "/usr/lib/systemd/system/podman.service.d/20-b.conf", "line": 2,
      "via": "Environment"}),
    ("same-dropin-name-higher-dir-wins",
     {"/usr/lib/systemd/system/podman.service": "[Service]\n",
      "/usr/lib/systemd/system/podman.service.d/20-b.conf": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/b.conf\n",
      "/etc/systemd/system/podman.service.d/20-b.conf": "[Service]\n"},
     "podman.service", ["/usr/lib/systemd/system/podman.service", "/etc/systemd/system/podman.service.d/20-b.conf"],
     None),
    ("empty-environment-resets",
     {"/usr/lib/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n",
      "/etc/systemd/system/podman.service.d/50-reset.conf": "[Service]\nEnvironment=\nEnvironment=X=1\n"},
     "podman.service", ["/usr/lib/systemd/system/podman.service", "/etc/systemd/system/podman.service.d/50-reset.conf"],
     None),
    ("environment-file-overrides-environment",
     {"/etc/systemd/system/podman.service": "[Service]\nEnvironmentFile=-/etc/default/podman-storage\n"
                                            "Environment=\"CONTAINERS_STORAGE_CONF=/a.conf\" OTHER=1\n",
      "/etc/default/podman-storage": "# set by the admin\nCONTAINERS_STORAGE_CONF=/f.conf\n"},
     "podman.service", ["/etc/systemd/system/podman.service"],
     {"value": "/f.conf", "file": "/etc/systemd/system/podman.service", "line": 2, "via": "EnvironmentFile",
      "env_file": "/etc/default/podman-storage", "env_file_line": 2}),
    ("missing-optional-environment-file",
     {"/etc/systemd/system/podman.service": "[Service]\nEnvironmentFile=-/etc/default/none\n"},
     "podman.service", ["/etc/systemd/system/podman.service"], None),
    ("unset-environment-last",
     {"/etc/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n",
      "/etc/systemd/system/service.d/90-x.conf": "[Service]\nUnsetEnvironment=CONTAINERS_STORAGE_CONF\n"},
     "podman.service", ["/etc/systemd/system/podman.service", "/etc/systemd/system/service.d/90-x.conf"], None),
    ("unset-by-other-value-keeps-it",
     {"/etc/systemd/system/podman.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/a.conf\n"
                                            "UnsetEnvironment=CONTAINERS_STORAGE_CONF=/b.conf\n"},
     "podman.service", ["/etc/systemd/system/podman.service"],
     {"value": "/a.conf", "file": "/etc/systemd/system/podman.service", "line": 2, "via": "Environment"}),
    ("dash-prefix-and-type-dropins",
     {"/usr/lib/systemd/system/podman-restart.service": "[Service]\n",
      "/etc/systemd/system/podman-.service.d/10-all-podman.conf":
          "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/p.conf\n"},
     "podman-restart.service", ["/usr/lib/systemd/system/podman-restart.service",
                                "/etc/systemd/system/podman-.service.d/10-all-podman.conf"],
     {"value": "/p.conf", "file": "/etc/systemd/system/podman-.service.d/10-all-podman.conf", "line": 2,
      "via": "Environment"}),
    ("template-instance-reads-template",
     {"/usr/lib/systemd/system/podman-kube@.service": "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/k.conf\n"},
     "podman-kube@web.service", ["/usr/lib/systemd/system/podman-kube@.service"],
     {"value": "/k.conf", "file": "/usr/lib/systemd/system/podman-kube@.service", "line": 2, "via": "Environment"}),
    ("quadlet-service-section-only",
     {"/etc/containers/systemd/web.container": "[Container]\nImage=x\nEnvironment=CONTAINERS_STORAGE_CONF=/no.conf\n"
                                               "[Service]\nEnvironment=CONTAINERS_STORAGE_CONF=/q.conf\n",
      "/etc/containers/systemd/web.container.d/10-x.conf": "[Container]\nImage=y\n"},
     "web.service", ["/etc/containers/systemd/web.container", "/etc/containers/systemd/web.container.d/10-x.conf"],
     {"value": "/q.conf", "file": "/etc/containers/systemd/web.container", "line": 5, "via": "Environment"}),
    ("not-installed", {}, "podman.service", [], None),
]


@pytest.mark.parametrize("files,unit,sources,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unit_sources_and_environment(tmp_path, files, unit, sources, expected):
    for path, text in files.items():
        if path.startswith("@"):
            os.makedirs(os.path.dirname(str(tmp_path) + path[1:]), exist_ok=True)
            os.symlink(text, str(tmp_path) + path[1:])
        else:
            put(tmp_path, path, text)
    assert unit_sources(unit, str(tmp_path)) == sources
    assert service_environment(sources, str(tmp_path)).get(ENV) == expected


def test_quadlet_service_names(tmp_path):
    for name in ("web.container", "db.pod", "data.volume", "app.kube", "README.md"):
        put(tmp_path, "/etc/containers/systemd/" + name, "[Service]\n")
    put(tmp_path, "/run/containers/systemd/web.container", "[Service]\n")
    assert quadlet_units(str(tmp_path)) == {
        "web.service": "/run/containers/systemd/web.container", "db-pod.service": "/etc/containers/systemd/db.pod",
        "data-volume.service": "/etc/containers/systemd/data.volume", "app.service": "/etc/containers/systemd/app.kube"}
