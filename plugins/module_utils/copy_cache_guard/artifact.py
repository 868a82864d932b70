# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which build of the guard is running: the zip application the ``remediate`` role installs
(built on the controller by ``idmapguard.storage.guard_artifact``; its entry is zipapp_main.py).

:func:`running_artifact` is what the guard writes into its state (``artifact``: path, sha256,
version), so facts and reports say which build runs, not only which one is on disk.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import json
import zipimport
from typing import Any, Dict, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.file_io import sha256_file

# Written into the archive by the builder (plugins/plugin_utils/guard_artifact.py, MANIFEST).
MANIFEST = "idmapguard-artifact.json"


def running_artifact(loader: Any = None) -> Optional[Dict[str, Any]]:
    """path, sha256 and version of the archive this code was imported from; None when it runs
    from a directory (a checkout, the module's own copy) rather than the installed artifact."""
    loader = __loader__ if loader is None else loader  # type: ignore[name-defined]
    if not isinstance(loader, zipimport.zipimporter):
        return None
    path = loader.archive
    try:
        manifest = json.loads(loader.get_data(MANIFEST).decode("utf-8"))
        version = manifest.get("version") if isinstance(manifest, dict) else None
    except (OSError, ValueError):
        version = None
    try:
        sha256 = sha256_file(path)
    except OSError as exc:
        return {"path": path, "sha256": None, "version": version, "error": str(exc)}
    return {"path": path, "sha256": sha256, "version": version}
