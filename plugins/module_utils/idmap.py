# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Podman/containers-storage ID maps: parse, validate, format.

A map is a list of extents ``(container, host, size)``, written by Podman as
``container:host:size`` joined with commas (``0:1065537:65536,531571:531571:1``).

The rules are the kernel's rules for ``/proc/PID/uid_map`` (the map ends up there when
Podman or the ``idmapped-mount`` helper builds the user namespace for an idmapped mount),
so a map accepted here is a map the kernel accepts:

* every part is a decimal number; no sign, no blanks;
* size is at least 1;
* neither ``container + size`` nor ``host + size`` may exceed 2**32 - 1 (id 4294967295 is
  the invalid id ``(uid_t)-1`` and the kernel refuses ranges that reach it);
* container ranges do not overlap each other, nor do host ranges;
* at most 340 extents (``UID_GID_MAP_MAX_EXTENTS``);
* the ``uid_map`` text (one ``"container host size\\n"`` line per extent) is shorter than
  4096 bytes: the kernel rejects a write of a page or more.

The C parser in ``native/src/idmap.c`` implements the same rules; both are tested against
``tests/vectors/idmap_specs.json``. Host-side code: standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

from typing import Any, Iterable, List, Mapping, Sequence, Tuple

Extent = Tuple[int, int, int]

MAX_EXTENTS = 340
# The kernel accepts a uid_map write only when it is smaller than one page.
MAX_MAP_TEXT = 4095
# Highest valid id + 1: (uid_t)-1 is never a valid id.
ID_LIMIT = 0xFFFFFFFF

# Non-contiguous, three extents: the shape of the map in the original report.
DEFAULT_UIDMAP = "0:1065537:65536,531571:531571:1,19997967:19997967:1"
DEFAULT_GIDMAP = "0:1065537:65536,531571:531571:1,19997967:19997967:1"


class IDMapError(ValueError):
    """A map that the kernel would refuse. ``code`` is a stable machine-readable reason,
    ``extent`` the text of the offending extent (or the whole spec when none applies)."""

    def __init__(self, message: str, code: str, extent: str) -> None:
        super().__init__(message)
        self.code = code
        self.extent = extent


def _parse_part(text: str, name: str, extent_text: str) -> int:
    if text == "":
        raise IDMapError("extent '%s': %s is empty" % (extent_text, name), "syntax", extent_text)
    if text.startswith("-"):
        raise IDMapError("extent '%s': %s is negative" % (extent_text, name), "negative", extent_text)
    # str.isdigit() accepts non-ASCII digits; the kernel and Podman take only 0-9.
    if not all("0" <= ch <= "9" for ch in text):
        raise IDMapError("extent '%s': %s '%s' is not a decimal number" % (extent_text, name, text),
                         "syntax", extent_text)
    value = int(text)
    if value > ID_LIMIT:
        raise IDMapError("extent '%s': %s %d does not fit in 32 bits" % (extent_text, name, value),
                         "overflow", extent_text)
    return value


def _check_extents(extents: Sequence[Extent], texts: Sequence[str]) -> None:
    """Validate parsed extents; ``texts`` names each one in messages."""
    if not extents:
        raise IDMapError("empty ID map", "empty", "")
    if len(extents) > MAX_EXTENTS:
        raise IDMapError("extent '%s': more than %d extents" % (texts[MAX_EXTENTS], MAX_EXTENTS),
                         "too_many", texts[MAX_EXTENTS])
    text_len = 0
    for i, (container, host, size) in enumerate(extents):
        name = texts[i]
        if size == 0:
            raise IDMapError("extent '%s': size is 0" % name, "zero_size", name)
        if container + size > ID_LIMIT:
            raise IDMapError("extent '%s': container range %d+%d overflows 32 bits" % (name, container, size),
                             "overflow", name)
        if host + size > ID_LIMIT:
            raise IDMapError("extent '%s': host range %d+%d overflows 32 bits" % (name, host, size),
                             "overflow", name)
        for j in range(i):
            other_c, other_h, other_s = extents[j]
            if container < other_c + other_s and other_c < container + size:
                raise IDMapError("extent '%s': container range overlaps extent '%s'" % (name, texts[j]),
                                 "overlap_container", name)
            if host < other_h + other_s and other_h < host + size:
                raise IDMapError("extent '%s': host range overlaps extent '%s'" % (name, texts[j]),
                                 "overlap_host", name)
        text_len += len("%d %d %d\n" % (container, host, size))
        if text_len > MAX_MAP_TEXT:
            raise IDMapError("extent '%s': uid_map text would be longer than %d bytes" % (name, MAX_MAP_TEXT),
                             "too_long", name)


def parse_idmap(spec: str) -> List[Extent]:
    """Parse and fully validate ``container:host:size[,...]``; raise IDMapError."""
    if not isinstance(spec, str):
        raise IDMapError("ID map must be a string, not %s" % type(spec).__name__, "syntax", repr(spec))
    if spec == "":
        raise IDMapError("empty ID map", "empty", "")
    texts = spec.split(",")
    extents: List[Extent] = []
    for text in texts:
        parts = text.split(":")
        if len(parts) != 3:
            raise IDMapError("extent '%s': expected container:host:size" % text, "syntax", text)
        extents.append((_parse_part(parts[0], "container id", text),
                        _parse_part(parts[1], "host id", text),
                        _parse_part(parts[2], "size", text)))
        # Stop early on absurd input; the real check (with the right message) follows.
        if len(extents) > MAX_EXTENTS:
            break
    _check_extents(extents, texts)
    return extents


def format_idmap(extents: Iterable[Sequence[int]]) -> str:
    """Inverse of parse_idmap: ``[(0, 1065537, 65536)]`` -> ``"0:1065537:65536"``."""
    return ",".join("%d:%d:%d" % (int(c), int(h), int(s)) for c, h, s in extents)


def is_contiguous(extents: Sequence[Sequence[int]]) -> bool:
    """True for a single-extent map: the only shape containers/storage < 1.59 can share
    (it counts extents, it does not merge adjacent ones)."""
    return len(extents) == 1


def from_storage_json(entries: Iterable[Mapping[str, Any]]) -> List[Extent]:
    """Convert containers/storage JSON (``[{"container_id": 0, "host_id": 1065537, "size": 65536}]``,
    as in ``uidmap``/``gidmap`` of layers.json) to validated extents."""
    extents: List[Extent] = []
    texts: List[str] = []
    for entry in entries:
        try:
            raw = (entry["container_id"], entry["host_id"], entry["size"])
        except (KeyError, TypeError):
            raise IDMapError("storage ID map entry %r lacks container_id/host_id/size" % (entry,),
                             "syntax", repr(entry))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            raise IDMapError("storage ID map entry %r has a non-integer field" % (entry,), "syntax", repr(entry))
        text = "%d:%d:%d" % raw
        for value in raw:
            if value < 0:
                raise IDMapError("extent '%s': negative id" % text, "negative", text)
            if value > ID_LIMIT:
                raise IDMapError("extent '%s': %d does not fit in 32 bits" % (text, value), "overflow", text)
        extents.append((raw[0], raw[1], raw[2]))
        texts.append(text)
    _check_extents(extents, texts)
    return extents


def uid_map_text(extents: Iterable[Sequence[int]]) -> str:
    """The text written to /proc/PID/uid_map (or gid_map) for these extents."""
    return "".join("%d %d %d\n" % (int(c), int(h), int(s)) for c, h, s in extents)
