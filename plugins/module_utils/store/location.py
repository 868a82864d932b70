# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a store is: the one value every part passes whole.

Every storage.conf setting that moves a file of the store is here (graphroot, runroot, a split
imagestore, transient_store, read-only additional image stores); a reader given only some of
them looks in the wrong place (with ``transient_store`` the containers' JSON and lock live in
the runroot; with ``imagestore`` the images' do). podman_host.StorageSettings.location() makes
it from the settings in effect; the ``mapped_layers`` module (option ``location``), the
``remediate`` role (``idmapguard_remediate_store_location``, default the verify facts'
``store_location``) and the guard (``location`` in guard.json) take it as it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

# The location as an argument spec (the module's ``location`` option, guard.json's
# ``location``): defined once, here.
LOCATION_SPEC: Dict[str, Dict[str, Any]] = dict(
    graphroot=dict(type="path", required=True),
    runroot=dict(type="path", required=True),
    imagestore=dict(type="path"),
    transient_store=dict(type="bool", default=False),
    additional_image_stores=dict(type="list", elements="path", default=[]),
    driver=dict(type="str", default="overlay"),
)


class LocationError(ValueError):
    """A location that cannot name a store (relative path, unknown key, wrong type)."""


@dataclass(frozen=True)
class StoreLocation:
    """The paths that locate one containers/storage store (c/storage StoreOptions)."""

    graphroot: str
    runroot: str
    imagestore: Optional[str] = None
    transient_store: bool = False
    additional_image_stores: Tuple[str, ...] = field(default_factory=tuple)
    driver: str = "overlay"

    def __post_init__(self) -> None:
        for name in ("graphroot", "runroot"):
            value = getattr(self, name)
            if not value or not isinstance(value, str) or not os.path.isabs(value):
                raise LocationError("%s must be an absolute path, got %r" % (name, value))
        if self.imagestore is not None and (not isinstance(self.imagestore, str)
                                            or not os.path.isabs(self.imagestore)):
            raise LocationError("imagestore must be an absolute path, got %r" % (self.imagestore,))
        # Normalised once, so two spellings of one store compare equal.
        object.__setattr__(self, "graphroot", os.path.normpath(self.graphroot))
        object.__setattr__(self, "runroot", os.path.normpath(self.runroot))
        object.__setattr__(self, "imagestore", os.path.normpath(self.imagestore) if self.imagestore else None)
        object.__setattr__(self, "transient_store", bool(self.transient_store))
        object.__setattr__(self, "additional_image_stores",
                           tuple(os.path.normpath(str(p)) for p in self.additional_image_stores if p))

    def as_dict(self) -> Dict[str, Any]:
        """The location as the module option, the fact and guard.json carry it."""
        return {"graphroot": self.graphroot, "runroot": self.runroot, "imagestore": self.imagestore,
                "transient_store": self.transient_store,
                "additional_image_stores": list(self.additional_image_stores), "driver": self.driver}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "StoreLocation":
        """The location from its dict (as_dict's keys; only graphroot and runroot required)."""
        if not isinstance(value, Mapping):
            raise LocationError("a store location must be a mapping, got %r" % (value,))
        unknown = sorted(set(value) - set(LOCATION_SPEC))
        if unknown:
            raise LocationError("unknown key(s) in the store location: %s (known: %s)"
                                % (", ".join(unknown), ", ".join(sorted(LOCATION_SPEC))))
        transient = value.get("transient_store")
        if transient is not None and not isinstance(transient, bool):
            raise LocationError("transient_store must be true or false, got %r" % (transient,))
        additional = value.get("additional_image_stores") or []
        if isinstance(additional, str) or not isinstance(additional, (list, tuple)):
            raise LocationError("additional_image_stores must be a list of paths, got %r" % (additional,))
        return cls(graphroot=value.get("graphroot"), runroot=value.get("runroot"),
                   imagestore=value.get("imagestore") or None, transient_store=bool(transient),
                   additional_image_stores=tuple(additional), driver=str(value.get("driver") or "overlay"))
