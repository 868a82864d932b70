# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to Podman on the host, and reading storage.conf when Podman cannot answer.

The one producer of the storage settings in effect (driver, graphroot, runroot, imagestore,
transient store, mount program, and where each came from): `storage_settings` (falls back to
storage.conf when Podman fails) and `settings_from_podman` (Podman must answer: validation);
and so of the store's location (`StorageSettings.location()`, `find_store`).
Every consumer (idmap_support, mapped_layers, storage_conf, the canary, the controller's view
of an edited storage.conf) takes its values from here.

`run` is a command_json.Runner, `run(argv) -> (rc, stdout, stderr)`; AnsibleModule.run_command
fits through `command_json.module_runner`, and tests pass a fake, so nothing here needs Ansible.

When Podman cannot answer (missing, broken, hung on a damaged store) the storage settings
fall back to storage.conf, read with a small stdlib TOML reader. (At 0 free inodes
`podman info` still answers with Podman 4.3 and 5.8 on the lab; `podman create` does not.)
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.command_json import Runner, run_json

from ansible_collections.idmapguard.storage.plugins.module_utils.store.location import StoreLocation
from ansible_collections.idmapguard.storage.plugins.module_utils.mini_toml import (
    TomlError,
    get_path,
    loads,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.systemd_units import (
    quadlet_units,
    service_environment,
    unit_sources,
)


# containers/storage looks for its configuration in this order (rootful).
DEFAULT_STORAGE_CONF = "/etc/containers/storage.conf"
VENDOR_STORAGE_CONF = "/usr/share/containers/storage.conf"
DEFAULT_GRAPHROOT = "/var/lib/containers/storage"
DEFAULT_RUNROOT = "/run/containers/storage"


class PodmanError(RuntimeError):
    """Podman could not be run or its output could not be understood."""


class StorageConfError(ValueError):
    """storage.conf could not be read or parsed."""


@dataclass
class StorageSettings:
    """The storage settings in effect, from `podman info` or, failing that, storage.conf."""

    driver: str
    graphroot: str
    runroot: str
    imagestore: Optional[str] = None
    transient_store: bool = False
    mount_program: Optional[str] = None
    mountopt: Optional[str] = None
    additional_image_stores: List[str] = field(default_factory=list)
    source: str = "podman"  # "podman" | "storage.conf"
    # Extras beyond the contract's minimum, used by idmap_support's facts.
    graph_options: List[str] = field(default_factory=list)
    config_file: Optional[str] = None
    supports_shifting: Optional[bool] = None
    backing_filesystem: Optional[str] = None
    # podman info's graphStatus as printed (the driver's own view: "Supports shifting",
    # "Supports d_type", "Native Overlay Diff", ...); empty when read from storage.conf.
    graph_status: Dict[str, str] = field(default_factory=dict)
    # Where each of driver, graphroot, runroot, imagestore, transient_store, mount_program came
    # from: "podman info", "storage.conf <path>" or "default" (containers/storage's built-in).
    origins: Dict[str, str] = field(default_factory=dict)
    podman_version: Optional[str] = None  # from `podman info`, when it answered
    podman_error: Optional[str] = None  # why `podman info` did not answer, when source is storage.conf

    def location(self) -> StoreLocation:
        """Where the store is, as one value (store/location.py): what the store library, the
        mapped_layers module, the remediate role and the guard are given whole."""
        return StoreLocation(graphroot=self.graphroot, runroot=self.runroot, imagestore=self.imagestore,
                             transient_store=self.transient_store,
                             additional_image_stores=tuple(self.additional_image_stores),
                             driver=self.driver or "overlay")

    def store_view(self) -> Dict[str, Any]:
        """The settings that locate and shape the store, as the storage_conf safety checks compare them."""
        return {"driver": self.driver, "graphroot": self.graphroot, "runroot": self.runroot,
                "imagestore": self.imagestore, "transient_store": self.transient_store,
                "mount_program": self.mount_program}


# The settings `origins` accounts for.
ORIGIN_KEYS = ("driver", "graphroot", "runroot", "imagestore", "transient_store", "mount_program")
FROM_PODMAN = "podman info"
FROM_DEFAULT = "default"


_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?(?:[-~+][0-9A-Za-z.~+-]*)?)")


def podman_version(run: Runner, podman: str = "podman") -> Optional[str]:
    """Podman's version ("4.3.1"), or None when Podman is missing or does not answer.

    `podman --version` needs no storage, so it answers even when the graphroot is full.
    """
    try:
        rc, out, _err = run([podman, "--version"])
    except OSError:
        return None
    if rc != 0:
        return None
    m = _VERSION_RE.search(out or "")
    return m.group(1) if m else None


def podman_info(run: Runner, podman: str = "podman") -> Dict[str, Any]:
    """`podman info --format json` as a dict; PodmanError when it fails or prints no JSON."""
    return run_json(run, [podman, "info", "--format", "json"], PodmanError)


def _as_bool(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _option_value(value: Any) -> Any:
    """Podman prints mount_program as {"Executable": ..., "Package": ..., "Version": ...}."""
    if isinstance(value, dict) and "Executable" in value:
        return value.get("Executable")
    return value


def settings_from_info(info: Dict[str, Any]) -> StorageSettings:
    """StorageSettings from the `store` section of `podman info --format json`."""
    store = info.get("store") or {}
    options = store.get("graphOptions") or {}
    graph_options = []  # type: List[str]
    mount_program = None
    mountopt = None
    additional = []  # type: List[str]
    imagestore = None
    for key in sorted(options):
        value = _option_value(options[key])
        short = key.split(".", 1)[1] if "." in key else key
        if isinstance(value, list):
            graph_options.extend("%s=%s" % (key, v) for v in value)
        else:
            graph_options.append("%s=%s" % (key, value))
        if short == "mount_program":
            mount_program = value or None
        elif short == "mountopt":
            mountopt = value or None
        elif short in ("imagestore", "additionalImageStores", "additionalimagestores"):
            # c/storage's "<driver>.imagestore" option names additional (read-only) image
            # stores; the split-store "imagestore" is a top-level [storage] key.
            additional.extend(value if isinstance(value, list) else [value])
    status = store.get("graphStatus") or {}
    graphroot = store.get("graphRoot") or DEFAULT_GRAPHROOT
    if store.get("imageStorePath"):
        imagestore = store.get("imageStorePath")
    origins = {key: FROM_PODMAN for key in ORIGIN_KEYS}
    if not store.get("graphRoot"):
        origins["graphroot"] = FROM_DEFAULT
    if not store.get("runRoot"):
        origins["runroot"] = FROM_DEFAULT
    if imagestore is None:
        origins["imagestore"] = FROM_DEFAULT  # podman info does not print a split imagestore
    return StorageSettings(
        driver=store.get("graphDriverName") or "",
        graphroot=graphroot,
        runroot=store.get("runRoot") or DEFAULT_RUNROOT,
        imagestore=imagestore,
        transient_store=bool(store.get("transientStore", False)),
        mount_program=mount_program,
        mountopt=mountopt,
        additional_image_stores=[a for a in additional if a],
        source="podman",
        graph_options=graph_options,
        config_file=store.get("configFile"),
        supports_shifting=_as_bool(status.get("Supports shifting")),
        backing_filesystem=status.get("Backing Filesystem"),
        graph_status={str(k): str(v) for k, v in status.items()} if isinstance(status, dict) else {},
        origins=origins,
        podman_version=(info.get("version") or {}).get("Version"),
    )


def find_storage_conf(conf_path: Optional[str] = None, environ: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The storage.conf containers/storage would read (rootful), or None if there is none."""
    env = os.environ if environ is None else environ
    for candidate in (conf_path, env.get("CONTAINERS_STORAGE_CONF"), DEFAULT_STORAGE_CONF, VENDOR_STORAGE_CONF):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _str_list(value: Any) -> List[str]:
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    if isinstance(value, str) and value:
        return [value]
    return []


def settings_from_conf_text(text: str, config_file: Optional[str] = None) -> StorageSettings:
    """StorageSettings from storage.conf text, with containers/storage's defaults."""
    try:
        doc = loads(text)
    except TomlError as exc:
        raise StorageConfError("%s: %s" % (config_file or "storage.conf", exc))
    storage = get_path(doc, ("storage",), {}) or {}
    driver = str(storage.get("driver") or "")
    options = get_path(doc, ("storage", "options"), {}) or {}
    per_driver = options.get(driver or "overlay") if isinstance(options.get(driver or "overlay"), dict) else {}
    # The per-driver table wins over the older, driver-less [storage.options] keys.
    mount_program = per_driver.get("mount_program") or options.get("mount_program") or None
    mountopt = per_driver.get("mountopt") or options.get("mountopt") or None
    additional = _str_list(options.get("additionalimagestores"))
    prefix = driver or "overlay"
    graph_options = []  # type: List[str]
    for table, is_driver_table in ((options, False), (per_driver, True)):
        for key in sorted(table):
            value = table[key]
            if isinstance(value, dict) or key == "additionalimagestores":
                continue
            if not is_driver_table and key not in ("mount_program", "mountopt", "size", "skip_mount_home",
                                                   "ignore_chown_errors", "force_mask", "use_composefs"):
                continue
            graph_options.append("%s.%s=%s" % (prefix, key, value))
    graph_options.extend("%s.imagestore=%s" % (prefix, a) for a in additional)
    here = "storage.conf %s" % (config_file or "(none)")
    present = {"driver": bool(driver), "graphroot": bool(storage.get("graphroot")),
               "runroot": bool(storage.get("runroot")), "imagestore": bool(storage.get("imagestore")),
               "transient_store": "transient_store" in storage, "mount_program": bool(mount_program)}
    return StorageSettings(
        driver=driver,
        graphroot=str(storage.get("graphroot") or DEFAULT_GRAPHROOT),
        runroot=str(storage.get("runroot") or DEFAULT_RUNROOT),
        imagestore=str(storage.get("imagestore")) if storage.get("imagestore") else None,
        transient_store=bool(storage.get("transient_store", False)),
        mount_program=str(mount_program) if mount_program else None,
        mountopt=str(mountopt) if mountopt else None,
        additional_image_stores=additional,
        source="storage.conf",
        graph_options=sorted(set(graph_options)),
        config_file=config_file,
        origins={key: here if present[key] else FROM_DEFAULT for key in ORIGIN_KEYS},
    )


def read_storage_conf(conf_path: Optional[str] = None) -> StorageSettings:
    """Settings from the storage.conf on this host (defaults when there is no file)."""
    path = find_storage_conf(conf_path)
    if path is None:
        return settings_from_conf_text("", None)
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (OSError, IOError) as exc:
        raise StorageConfError("cannot read %s: %s" % (path, exc))
    return settings_from_conf_text(text, path)


def settings_from_podman(run: Runner, podman: str = "podman", conf_path: Optional[str] = None) -> StorageSettings:
    """Settings as Podman reports them; PodmanError when it does not answer.

    When storage.conf declares a split `imagestore`, which `podman info` does not print, it is
    taken from the storage.conf Podman read (its `configFile`, else `conf_path`), so callers see
    the whole store.
    """
    settings = settings_from_info(podman_info(run, podman))
    if settings.imagestore is None:
        try:
            conf = read_storage_conf(settings.config_file or conf_path)
        except StorageConfError:
            conf = None
        if conf is not None and conf.imagestore:
            settings.imagestore = conf.imagestore
            settings.origins["imagestore"] = conf.origins["imagestore"]
    return settings


def storage_settings(run: Runner, conf_path: Optional[str] = None, podman: str = "podman") -> StorageSettings:
    """Settings from `podman info`; from storage.conf when Podman fails (e.g. 0 free inodes),
    with `podman_error` saying why. StorageConfError when that fallback cannot read the file."""
    try:
        return settings_from_podman(run, podman, conf_path)
    except PodmanError as exc:
        settings = read_storage_conf(conf_path)
        settings.podman_error = str(exc)
        return settings


def find_store(run: Runner, conf_path: Optional[str] = None, podman: str = "podman") -> StoreLocation:
    """The location of the store in effect (storage_settings' answer), for a caller that was not
    given one. StorageConfError when neither Podman nor storage.conf can tell."""
    return storage_settings(run, conf_path, podman).location()


# Drop-in directories of storage.conf, lowest precedence first (containers-config(5)): rootful
# Podman reads `*.conf` from all of them after the one main file, sorted by file name across the
# directories; of two files with the same name only the one in the later directory is read.
DROPIN_DIRS = (
    "/usr/share/containers/storage.conf.d",
    "/usr/share/containers/storage.rootful.conf.d",
    "/etc/containers/storage.conf.d",
    "/etc/containers/storage.rootful.conf.d",
)
# Measured on the lab: Podman 5.8.6 and 6.1.1 read the drop-ins, 5.4.2 and 4.3.1 do not
# (5.5 to 5.7 are not in the lab: taken as reading them, so a drop-in there is not overlooked).
FIRST_DROPIN_PODMAN = (5, 5)
# Keys whose file, line and value the facts report, per setting we read or change: (table path,
# key) candidates, the first one a file sets counts for that file (c/storage: the per-driver
# table wins over the older driver-less [storage.options] spelling).
SETTING_KEYS = {
    "driver": ((("storage",), "driver"),),
    "graphroot": ((("storage",), "graphroot"),),
    "runroot": ((("storage",), "runroot"),),
    "imagestore": ((("storage",), "imagestore"),),
    "transient_store": ((("storage",), "transient_store"),),
    "mount_program": ((("storage", "options", "overlay"), "mount_program"), (("storage", "options"), "mount_program")),
}
# Units through which Podman itself runs as a service (podman's own units, Debian and upstream);
# quadlet units and the operator's (module option `units`) are looked at too.
PODMAN_UNITS = ("podman.service", "podman-restart.service", "podman-auto-update.service",
                "podman-clean-transient.service", "podman-kube@.service")
STORAGE_CONF_VAR = "CONTAINERS_STORAGE_CONF"
# Settings that decide whether Podman started with a file copies layers (verdict rule unit_storage_conf).
COPYING_SETTINGS = ("driver", "mount_program")


def _version_tuple(text: Optional[str]) -> Optional[tuple]:
    match = re.match(r"\s*v?(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g) for g in match.groups() if g is not None) if match else None


def reads_dropins(podman_version: Optional[str]) -> Optional[bool]:
    """Whether this Podman reads storage.conf drop-ins; None when the version is unknown."""
    version = _version_tuple(podman_version)
    return None if version is None else version >= FIRST_DROPIN_PODMAN


def storage_conf_files(podman_version: Optional[str], environ: Optional[Dict[str, str]] = None,
                       root: str = "", set_by: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """The storage.conf files rootful Podman reads, in order (a later one overrides an earlier one):
    [{path, kind}] with kind `env` (CONTAINERS_STORAGE_CONF: then that file alone, measured on 5.8.6
    and 6.1.1; `set_by` says who set the variable: SET_BY, default the process environment), `main`
    (/etc, else /usr/share) or `drop-in`. ROOT prefixes every path (tests)."""
    env = os.environ if environ is None else environ
    named = env.get(STORAGE_CONF_VAR)
    if named:
        entry = {"path": named, "kind": "env", "set_by": dict(set_by or {"source": "process environment"})}
        return [entry] if os.path.isfile(root + named) else []
    files = []  # type: List[Dict[str, Any]]
    for main in (DEFAULT_STORAGE_CONF, VENDOR_STORAGE_CONF):
        if os.path.isfile(root + main):
            files.append({"path": main, "kind": "main"})
            break
    if reads_dropins(podman_version) is False:
        return files
    by_name = {}  # type: Dict[str, str]
    for directory in DROPIN_DIRS:
        try:
            names = os.listdir(root + directory)
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf") and os.path.isfile(os.path.join(root + directory, name)):
                by_name[name] = os.path.join(directory, name)  # a later directory replaces the file
    files.extend({"path": by_name[name], "kind": "drop-in"} for name in sorted(by_name))
    return files


def _key_lines(text: str) -> Dict[tuple, int]:
    """{(table path, key): line number} of the keys set in TOML text (line-based, as written)."""
    table = ()  # type: tuple
    found = {}  # type: Dict[tuple, int]
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[([^\[\]]+)\]\s*(#.*)?$", stripped)
        if header:
            table = tuple(part.strip().strip('"') for part in header.group(1).split("."))
            continue
        assignment = re.match(r'^"?([A-Za-z0-9_.-]+)"?\s*=', stripped)
        if assignment:
            found[(table, assignment.group(1))] = number
    return found


def _toml_value(text: str, table: tuple, name: str) -> Any:
    try:
        section = get_path(loads(text), table, {})
    except TomlError:
        return None
    return section.get(name) if isinstance(section, dict) else None


def setting_origins(files: List[Dict[str, Any]], root: str = "") -> Dict[str, Dict[str, Any]]:
    """For each setting of SETTING_KEYS: the last file that sets it, with kind, line and value
    ({file: None, value: None} when no file does: containers/storage's default); for a file named
    by CONTAINERS_STORAGE_CONF also `set_by` (the process environment, or the unit and its line)."""
    origins = {key: {"file": None, "kind": "default", "line": None, "value": None}
               for key in SETTING_KEYS}  # type: Dict[str, Dict[str, Any]]
    for entry in files:
        try:
            with open(root + entry["path"], "r") as handle:
                text = handle.read()
        except (OSError, IOError, UnicodeDecodeError):
            continue
        lines = _key_lines(text)
        for key, candidates in SETTING_KEYS.items():
            for table, name in candidates:
                if (table, name) in lines:
                    origin = {"file": entry["path"], "kind": entry["kind"], "line": lines[(table, name)],
                              "value": _toml_value(text, table, name)}
                    if entry.get("set_by"):
                        origin["set_by"] = dict(entry["set_by"])
                    origins[key] = origin
                    break
    return origins


def _copying_settings(origins: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The settings that make Podman copy layers, as these files set them ({} when none does)."""
    found = {}  # type: Dict[str, Any]
    driver = origins["driver"]["value"]
    if driver and driver != "overlay":
        found["driver"] = driver
    if origins["mount_program"]["value"]:
        found["mount_program"] = origins["mount_program"]["value"]
    return found


def unit_storage_conf(podman_version: Optional[str], shell_files: List[Dict[str, Any]], units: List[str] = (),
                      root: str = "") -> List[Dict[str, Any]]:
    """Per unit through which Podman runs (PODMAN_UNITS, the quadlets, then UNITS; those with files
    only): the storage.conf files Podman started by it reads, and how they differ from SHELL_FILES
    (what Podman run from this process reads).

    [{unit, sources: [unit file, drop-ins], storage_conf: null | {path, file, line, via[, env_file,
    env_file_line]} (its CONTAINERS_STORAGE_CONF and the line that sets it), storage_conf_files,
    setting_files, same_files: bool, differs: [settings whose value differs], copying: {driver?,
    mount_program?}}]"""
    quadlets = quadlet_units(root)
    names = []  # type: List[str]
    for name in list(PODMAN_UNITS) + sorted(quadlets) + list(units):
        if name not in names:
            names.append(name)
    shell_origins = setting_origins(shell_files, root)
    found = []  # type: List[Dict[str, Any]]
    for name in names:
        sources = unit_sources(name, root, quadlets)
        if not sources:
            continue
        named = service_environment(sources, root).get(STORAGE_CONF_VAR)
        set_by = None  # type: Optional[Dict[str, Any]]
        if named:
            set_by = dict(named, source="unit", unit=name)
            path = set_by.pop("value")
            set_by["path"] = path
        files = storage_conf_files(podman_version, {STORAGE_CONF_VAR: set_by["path"]} if set_by else {}, root,
                                   set_by=set_by)
        origins = setting_origins(files, root)
        found.append({
            "unit": name,
            "sources": sources,
            "storage_conf": set_by,
            "storage_conf_files": files,
            "setting_files": origins,
            "same_files": [f["path"] for f in files] == [f["path"] for f in shell_files],
            "differs": [key for key in SETTING_KEYS if origins[key]["value"] != shell_origins[key]["value"]],
            "copying": _copying_settings(origins),
        })
    return found
