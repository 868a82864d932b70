# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a host's idmapped-mount helper comes from, and whether the installed one is current.

Runs on the controller (the helper role's filters): the role's YAML only sequences the build
and the install; these functions make the two decisions it needs.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Dict, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import sha256_file

# Sources, in the order they win: an operator binary for every host, a binary per architecture,
# the prebuilt binary of the execution environment, then a build (controller or host).
OPERATOR, PER_ARCH, PREBUILT, CONTROLLER, HOST = "operator", "per_arch", "prebuilt", "controller", "host"
BUILDS = (CONTROLLER, HOST)


class HelperPlanError(ValueError):
    """The role was given inputs it cannot act on."""


def controller_arch() -> str:
    return os.uname().machine


def choose_source(arch: str, binary: str, binaries: Mapping[str, str], prebuilt: str,
                  build: str, controller_build_path: str) -> Dict[str, str]:
    """The source of this host's binary and its controller path ('' for a host build)."""
    if not arch:
        raise HelperPlanError("helper_source: the host's architecture is not known")
    if build not in BUILDS:
        raise HelperPlanError("helper_source: idmapguard_helper_build must be one of %s, got %r"
                              % ("/".join(BUILDS), build))
    if binary:
        source, src = OPERATOR, binary
    elif arch in (binaries or {}):
        source, src = PER_ARCH, binaries[arch]
    elif prebuilt and build == CONTROLLER and os.path.isfile(prebuilt):
        source, src = PREBUILT, prebuilt
    elif build == CONTROLLER:
        source, src = CONTROLLER, controller_build_path
    else:
        source, src = HOST, ""
    return {"arch": arch, "source": source, "src": src}


def problem(plan: Mapping[str, str], build_arch: Optional[str] = None) -> str:
    """Why this host cannot get a binary from the controller ('' if it can)."""
    source, src, arch = plan["source"], plan["src"], plan["arch"]
    build_arch = build_arch or controller_arch()
    if source in (PREBUILT, CONTROLLER) and arch != build_arch:
        return ("idmapguard helper: the host is %s but the controller builds for %s. Provide a "
                "binary with idmapguard_helper_binaries: {%s: /path/to/idmapped-mount} or build on "
                "the host with idmapguard_helper_build: host. Nothing was installed."
                % (arch, build_arch, arch))
    if source != HOST and not os.path.isfile(src):
        return "idmapguard helper: no binary at %s on the controller" % src
    return ""


def is_current(observed: Mapping[str, Any], dest: str, sha256: str) -> bool:
    """Exactly what install.yml would otherwise enforce, seen already by idmap_support: the file
    at dest is the same content, root:root 0755 in a root:root 0755 directory, and runs."""
    if not sha256 or not observed:
        return False
    return (observed.get("path") == dest and bool(observed.get("present"))
            and bool(observed.get("runs")) and observed.get("sha256") == sha256
            and observed.get("uid") == 0 and observed.get("gid") == 0
            and observed.get("mode") == "0755"
            and observed.get("dir_uid") == 0 and observed.get("dir_gid") == 0
            and observed.get("dir_mode") == "0755")


def helper_record(observed: Optional[Mapping[str, Any]], plan: Mapping[str, str], dest: str,
                  build_arch: Optional[str] = None) -> Dict[str, Any]:
    """The role's `idmapguard_helper` fact before any install: current or not, and why not."""
    observed = observed or {}
    why_not = problem(plan, build_arch)
    sha256 = sha256_file(plan["src"]) if (plan["source"] != HOST and not why_not) else ""
    current = not why_not and is_current(observed, dest, sha256)
    return {
        "path": dest, "run_path": dest, "staged": False, "checksum": sha256,
        "version": observed.get("version") if current else None,
        "source": plan["source"], "src": plan["src"], "arch": plan["arch"],
        "changed": False, "current": current, "problem": why_not,
    }


def controller_build_current(native_dir: str, build_dir: str) -> bool:
    """Whether the controller build (`make -C NATIVE_DIR BUILD=BUILD_DIR`, the role's) would leave
    its binary as it is: `make -q` asks without building or writing anything."""
    try:
        return subprocess.run(["make", "-q", "-s", "-C", native_dir, "BUILD=" + build_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0
    except OSError:
        return False


def known_current(observed: Mapping[str, Any], arch: str, settings: Mapping[str, Any],
                  build_arch: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The role's `idmapguard_helper` record where, without running the role, the helper that
    idmap_support OBSERVED is certainly the one the role would leave (`current`); None where the
    role has to run: a binary still to build or to compare, or one that differs.
    SETTINGS: the role's variables without their prefix (binary, binaries, prebuilt, build,
    controller_build_dir, native_dir, dest), as the role would read them."""
    if not arch or settings.get("build") not in BUILDS:
        return None
    plan = choose_source(arch, str(settings.get("binary") or ""), settings.get("binaries") or {},
                         str(settings.get("prebuilt") or ""), str(settings["build"]),
                         str(settings.get("controller_build_dir") or "") + "/idmapped-mount")
    if plan["source"] == HOST:
        return None  # built on the host every run
    if plan["source"] == CONTROLLER and not controller_build_current(str(settings.get("native_dir") or ""),
                                                                     str(settings.get("controller_build_dir") or "")):
        return None  # the role's build would change the binary (or cannot say)
    found = helper_record(observed, plan, str(settings.get("dest") or ""), build_arch)
    return found if found["current"] else None
