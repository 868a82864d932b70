# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of idmapguard.storage.storage_conf: read on the host, edit here, write there.

tomlkit runs on the controller only, so managed hosts need nothing beyond Python's standard
library. The module of the same name does the host side (refusal checks, validation, write).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import base64
import hashlib

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    DEFAULT_GRAPHROOT,
    DEFAULT_RUNROOT,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf import user_argument_spec
from ansible_collections.idmapguard.storage.plugins.plugin_utils.toml_edit import (
    TOMLKIT_IMPORT_ERROR,
    TomlEditError,
    apply_edits,
    dropin_store_settings,
    store_view,
)

MODULE = "idmapguard.storage.storage_conf"
BUILTIN_DEFAULTS = """\
# containers/storage configuration, written by idmapguard.storage.storage_conf: no storage.conf
# existed, so this starts from the built-in defaults of rootful containers/storage.
[storage]
runroot = "%s"
graphroot = "%s"
""" % (DEFAULT_RUNROOT, DEFAULT_GRAPHROOT)
DROPIN_HEADER = """\
# containers/storage drop-in written by idmapguard.storage.storage_conf (the configure role).
# Podman reads it after the main storage.conf; a key set here wins over the main file and over
# the drop-ins whose names sort before this one. Removing this file undoes the change.
"""


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def _slurp(self, path, task_vars):
        """(text, sha1) of a host file, or (None, "") when it does not exist."""
        res = self._execute_module(module_name="ansible.legacy.slurp", module_args={"src": path},
                                   task_vars=task_vars)
        if res.get("failed"):
            msg = res.get("msg", "")
            if "not found" in msg or "No such file" in msg:
                return None, ""
            raise AnsibleActionFail("cannot read %s: %s" % (path, msg))
        data = base64.b64decode(res["content"])
        return to_text(data, errors="surrogate_or_strict"), hashlib.sha1(data).hexdigest()  # nosec

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        # the module's own spec (module_utils/storage_conf/__init__.py), minus its internal _edit
        spec = user_argument_spec()
        if TOMLKIT_IMPORT_ERROR is not None:
            raise AnsibleActionFail("storage_conf needs the Python package tomlkit on the controller "
                                    "(pip install tomlkit): %s" % TOMLKIT_IMPORT_ERROR)
        dummy, args = self.validate_argument_spec(argument_spec=spec)
        path = args["path"]
        settings, absent = args["settings"], args["absent"]

        source = path
        text, sha1 = self._slurp(path, task_vars)
        if args["dropin"]:
            # A drop-in starts from itself, or empty; a key cannot be removed from the files read
            # before it, only set again: an absent key is written as "" (c/storage: not set).
            if text is None:
                text, sha1 = DROPIN_HEADER, ""  # "": the module checks the file is still absent
            settings = dict({key: "" for key in absent}, **settings)
            absent = []
        elif text is None:
            # /etc replaces the vendor file entirely: start from the vendor file so no default is lost.
            source = args["vendor_path"]
            text, sha1 = self._slurp(source, task_vars)
            if text is None:
                # Neither file: Podman runs on containers/storage's built-in defaults. A file
                # without runroot/graphroot is refused by Podman at the default path, so spell
                # those defaults out.
                source, text, sha1 = "(built-in defaults)", BUILTIN_DEFAULTS, None
        existed = not (args["dropin"] and sha1 == "")
        try:
            edit = apply_edits(text, settings, absent, name=source)
            if args["dropin"]:
                # what Podman uses before is asked on the host; the drop-in overrides these
                store_before, store_after = {}, {}
                dropin_sets = dropin_store_settings(edit.text, path)
            else:
                store_before = store_view(text, source)
                store_after = store_view(edit.text, path)
                dropin_sets = None
        except TomlEditError as exc:
            result.update(failed=True, changed=False, msg=str(exc), path=path,
                          line=exc.line, column=exc.column)
            return result

        result.update(changed=False, path=path, source=source, changed_keys=edit.changed_keys)
        if not edit.changed:
            # Identical result: nothing to write, not even a copy of the vendor file.
            return result

        module_args = {k: args[k] for k in spec}
        module_args["_edit"] = {
            "content": edit.text,
            "source": source,
            "source_sha1": sha1,
            "changed_keys": edit.changed_keys,
            "store_before": store_before,
            "store_after": store_after,
            "dropin_sets": dropin_sets,
        }
        module_result = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        result.update(module_result)
        if not module_result.get("failed") and module_result.get("changed"):
            if not existed:
                before, before_header = "", "/dev/null (%s is new)" % path
            elif source == path:
                before, before_header = text, path
            else:
                before, before_header = text, "%s (absent; vendor file %s applies)" % (path, source)
            result["diff"] = {"before": before, "after": edit.text, "before_header": before_header,
                              "after_header": path}
        return result
