# -*- coding: utf-8 -*-
"""configure_plan: a host that is fixable_by_config only through a unit's own storage.conf
(reason unit_storage_conf) is left alone, as a table."""

import pytest

from ansible_collections.idmapguard.storage.plugins.plugin_utils.configure_plan import ConfigureInputs, decide

UNIT = "podman.service starts Podman with CONTAINERS_STORAGE_CONF=/srv/x.conf (...), and they set mount_program"


def facts(codes):
    return {"verdict": "fixable_by_config", "reason_codes": list(codes), "reasons": [UNIT] * len(codes), "podman": {}}


# (reason codes, explicit settings, action)
CASES = [
    (["unit_storage_conf"], {}, "skipped"),
    (["unit_storage_conf", "unit_storage_conf", "additional_image_store"], {}, "skipped"),
    # another reason the role does fix: configure runs (for that reason)
    (["mount_program", "unit_storage_conf"], {}, "configure"),
    (["probe_cache_stale", "unit_storage_conf"], {}, "configure"),
    # the operator said what to change: done, whatever the reasons
    (["unit_storage_conf"], {"storage.driver": "overlay"}, "configure"),
    # no codes in the facts (older facts): as before
    ([], {}, "configure"),
]


@pytest.mark.parametrize("codes,settings,action", CASES)
def test_only_a_units_storage_conf_is_not_configured_here(codes, settings, action):
    host = decide(ConfigureInputs(facts=facts(codes), settings=settings))
    assert host.action == action
    if action == "skipped":
        assert host.reason.startswith("verdict fixable_by_config, by files this role does not edit: ")
        assert "CONTAINERS_STORAGE_CONF=/srv/x.conf" in host.reason
