# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin idmapguard.storage.guard_artifact: build the guard's zip application on the
controller from the collection it runs from, and install it on the host with
``ansible.builtin.copy`` (temporary file then rename; check mode and diff as copy has them).

The building lives in plugin_utils/guard_artifact.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import yaml

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.idmapguard.storage.plugins.plugin_utils.guard_artifact import ArtifactError, build

# plugins/action/ -> the collection's root, as the controller loaded it (installed or a checkout).
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_version(root: str) -> str:
    """MANIFEST.json of an installed collection, else galaxy.yml of a checkout."""
    manifest = os.path.join(root, "MANIFEST.json")
    if os.path.isfile(manifest):
        with open(manifest) as handle:
            return str(json.load(handle)["collection_info"]["version"])
    with open(os.path.join(root, "galaxy.yml")) as handle:
        return str(yaml.safe_load(handle)["version"])


class ActionModule(ActionBase):

    TRANSFERS_FILES = True
    _VALID_ARGS = frozenset(("dest",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _spec, args = self.validate_argument_spec(argument_spec={
            "dest": {"type": "path", "required": True},
        })
        try:
            artifact = build(os.path.join(COLLECTION_ROOT, "plugins", "module_utils"),
                             collection_version(COLLECTION_ROOT), sys.stdlib_module_names)
        except (ArtifactError, OSError, KeyError, ValueError) as exc:
            raise AnsibleActionFail("cannot build the guard's archive: %s" % exc)
        path = os.path.join(args["dest"], artifact.file_name)
        local_dir = tempfile.mkdtemp(dir=C.DEFAULT_LOCAL_TMP)
        try:
            local = os.path.join(local_dir, artifact.file_name)
            with open(local, "wb") as handle:
                handle.write(artifact.data)
            copy_task = self._task.copy()
            copy_task.args.clear()
            copy_task.args.update({"src": local, "dest": path, "mode": "0644", "owner": "root", "group": "root"})
            copy = self._shared_loader_obj.action_loader.get(
                "ansible.legacy.copy", task=copy_task, connection=self._connection,
                play_context=self._play_context, loader=self._loader, templar=self._templar,
                shared_loader_obj=self._shared_loader_obj)
            copied = copy.run(task_vars=task_vars)
        finally:
            shutil.rmtree(local_dir, ignore_errors=True)
        if copied.get("failed"):
            result.update(copied)
            return result
        result.update(changed=bool(copied.get("changed")), path=path, sha256=artifact.sha256,
                      version=artifact.version, size=len(artifact.data), modules=artifact.modules)
        if "diff" in copied:
            result["diff"] = copied["diff"]
        return result
