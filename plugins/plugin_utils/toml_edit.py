# -*- coding: utf-8 -*-
# Copyright: (c) 2026, idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Style-preserving edits of a TOML document (storage.conf) with tomlkit, on the controller.

Keys are dotted paths of bare keys (``storage.options.overlay.mount_program``). Everything
outside the edited keys stays byte for byte: comments, blank lines, key order, quoting.

"Types are kept": when a key already exists, the new value is converted to the type the
file already uses for it, when that is lossless (a YAML ``true`` written into a key the
vendor file spells ``"false"`` stays a string; ``"true"`` written into a boolean key stays
a boolean). A conversion that would lose information is an error, not a guess.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ansible_collections.idmapguard.storage.plugins.module_utils.podman_host import (
    StorageConfError,
    settings_from_conf_text,
)
from ansible_collections.idmapguard.storage.plugins.module_utils.storage_conf.safety import SETTING_DOTTED
from ansible_collections.idmapguard.storage.plugins.plugin_utils.plain_data import plain

try:
    import tomlkit
    from tomlkit.exceptions import ParseError, TOMLKitError
    from tomlkit.items import AoT, Item, Table, InlineTable
except ImportError as exc:  # reported by the action plugin, which cannot work without it
    tomlkit = None
    TOMLKIT_IMPORT_ERROR = exc
else:
    TOMLKIT_IMPORT_ERROR = None


_MISSING = object()


class TomlEditError(ValueError):
    """The document cannot be parsed or the requested edit cannot be applied.

    `line` and `column` are set (1-based) when the document itself is malformed.
    """

    def __init__(self, msg: str, line: Optional[int] = None, column: Optional[int] = None) -> None:
        super().__init__(msg)
        self.line = line
        self.column = column


@dataclass
class EditResult:
    """The edited text and which keys it actually changed (empty when identical)."""

    text: str
    changed_keys: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changed_keys)


_MISSING = object()


def parse(text: str, name: str = "document") -> Any:
    """Parse `text`; a malformed document raises TomlEditError naming line and column."""
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise TomlEditError(
            "%s is not valid TOML: line %d, column %d: %s" % (name, exc.line, exc.col, _parse_reason(exc)),
            line=exc.line,
            column=exc.col,
        )
    except TOMLKitError as exc:
        # tomlkit reports some structural errors (a key defined twice) without a position.
        raise TomlEditError("%s is not valid TOML: %s" % (name, exc))


def _parse_reason(exc: Exception) -> str:
    # ParseError's str() ends with " at line L col C"; keep only the reason.
    text = str(exc)
    cut = text.rfind(" at line ")
    return text[:cut] if cut > 0 else text


def split_key(dotted: str) -> List[str]:
    """``"storage.options.overlay.mountopt"`` -> its parts; every part must be non-empty."""
    parts = dotted.split(".")
    if not dotted or any(not p.strip() for p in parts):
        raise TomlEditError("invalid key %r: expected dotted bare keys such as storage.driver" % dotted)
    return [p.strip() for p in parts]


def get_value(doc: Any, dotted: str, default: Any = None) -> Any:
    """The plain Python value at `dotted` in a parsed document, or `default` when absent."""
    node = doc
    for part in split_key(dotted):
        if not _is_table(node) or part not in node:
            return default
        node = node[part]
    return _unwrapped(node)


def _unwrapped(value: Any) -> Any:
    """A tomlkit item as the plain Python value it holds."""
    return value.unwrap() if isinstance(value, Item) or hasattr(value, "unwrap") else value


def _is_table(node: Any) -> bool:
    return isinstance(node, (Table, InlineTable, tomlkit.TOMLDocument)) or (
        isinstance(node, dict) and not isinstance(node, AoT)
    )


def _same(a: Any, b: Any) -> bool:
    """Equal in value and in TOML type (True == 1 in Python, not in TOML)."""
    if type(a) is not type(b):  # pylint: disable=unidiomatic-typecheck
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def coerce_like(existing: Any, value: Any, dotted: str) -> Any:
    """`value` converted to the TOML type of `existing`, when that loses nothing."""
    if existing is _MISSING or value is None:
        return value
    if isinstance(existing, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise TomlEditError("%s is a boolean in the file; %r is not a boolean" % (dotted, value))
    if isinstance(existing, str):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, str):
            return value
        raise TomlEditError("%s is a string in the file; a %s cannot be written there"
                            % (dotted, type(value).__name__))
    if isinstance(existing, int):
        if isinstance(value, bool):
            raise TomlEditError("%s is an integer in the file; %r is a boolean" % (dotted, value))
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        raise TomlEditError("%s is an integer in the file; %r is not an integer" % (dotted, value))
    if isinstance(existing, list):
        if isinstance(value, (list, tuple)):
            return list(value)
        raise TomlEditError("%s is an array in the file; %r is not a list" % (dotted, value))
    return value


def _walk_to_parent(doc: Any, parts: List[str], create: bool, dotted: str) -> Any:
    node = doc
    for depth, part in enumerate(parts[:-1]):
        if part not in node:
            if not create:
                return None
            node.add(part, tomlkit.table(is_super_table=False))
        child = node[part]
        if not _is_table(child):
            raise TomlEditError(
                "cannot set %s: %s is a %s, not a table"
                % (dotted, ".".join(parts[:depth + 1]), type(_unwrapped(child)).__name__)
            )
        node = child
    return node


def _set(doc: Any, dotted: str, value: Any, changed: List[str]) -> None:
    if isinstance(value, Mapping):
        # A mapping merges key by key: only the keys it names are touched.
        for sub_key, sub_value in value.items():
            _set(doc, "%s.%s" % (dotted, sub_key), sub_value, changed)
        return
    if value is None:
        raise TomlEditError("%s: TOML has no null; list the key under absent to remove it" % dotted)
    parts = split_key(dotted)
    parent = _walk_to_parent(doc, parts, create=True, dotted=dotted)
    leaf = parts[-1]
    existing = _unwrapped(parent[leaf]) if leaf in parent else _MISSING
    if isinstance(existing, dict):
        raise TomlEditError("cannot set %s to a value: it is a table in the file" % dotted)
    new = coerce_like(existing, value, dotted)
    if existing is not _MISSING and _same(existing, new):
        return
    if existing is _MISSING:
        parent.add(leaf, new)
    else:
        # Assigning through the container keeps the line's indent and trailing comment.
        parent[leaf] = new
    changed.append(dotted)


def _remove(doc: Any, dotted: str, changed: List[str]) -> None:
    parts = split_key(dotted)
    parent = _walk_to_parent(doc, parts, create=False, dotted=dotted)
    if parent is None or parts[-1] not in parent:
        return
    del parent[parts[-1]]
    changed.append(dotted)


def apply_edits(text: str, settings: Optional[Mapping[str, Any]] = None,
                absent: Optional[Iterable[str]] = None, name: str = "document") -> EditResult:
    """Apply `absent` removals, then `settings`, to `text`; return the new text.

    Removals come first so that replacing a key by a table of the same name works in one
    call. When nothing changes the returned text is `text` itself.
    """
    doc = parse(text, name)
    changed: List[str] = []
    for dotted in absent or ():
        _remove(doc, str(dotted), changed)
    for dotted, value in plain(dict(settings or {})).items():
        _set(doc, dotted, value, changed)
    if not changed:
        return EditResult(text=text)
    new_text = tomlkit.dumps(doc)
    # The result must parse again: a broken edit is worse than no edit.
    parse(new_text, "%s (edited)" % name)
    return EditResult(text=new_text, changed_keys=changed)


def store_view(text: str, name: str = "document") -> Dict[str, Any]:
    """The store-relevant settings of a document, as the host-side producer
    (module_utils/podman_host.py, settings_from_conf_text) reads them; its mini TOML reader
    is what the host uses when Podman cannot answer, so controller and host agree."""
    parse(text, name)  # tomlkit's error, with line and column, for a malformed document
    try:
        return settings_from_conf_text(text, name).store_view()
    except StorageConfError as exc:
        raise TomlEditError("%s: the host's storage.conf reader cannot read this: %s" % (name, exc))


def dropin_store_settings(text: str, name: str = "document") -> Dict[str, Any]:
    """The store settings a drop-in sets, by name (SETTING_DOTTED), with None for an empty string:
    what it changes in the settings Podman reads before it (a key it does not set stays as it was)."""
    doc = parse(text, name)
    found = {}  # type: Dict[str, Any]
    for dotted, setting in SETTING_DOTTED.items():
        value = get_value(doc, dotted, _MISSING)
        if value is not _MISSING:
            found[setting] = None if value == "" else value
    return found
