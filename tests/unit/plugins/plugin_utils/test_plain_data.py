# -*- coding: utf-8 -*-
"""plugin_utils.plain_data: what ansible-core hands over, as plain Python data."""

import copy

from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.idmapguard.storage.plugins.plugin_utils.plain_data import plain


class Tagged(str):
    """A str subclass, as ansible-core's tagged and unsafe strings are."""


def test_subclasses_become_their_plain_types():
    # exact types on purpose: a subclass is what must go
    value = wrap_var({"a": [1, 2.5, True, None, ("t",)], Tagged("k"): {"n": Tagged("v")}})
    out = plain(value)
    assert out == {"a": [1, 2.5, True, None, ["t"]], "k": {"n": "v"}}
    assert out["k"]["n"].__class__ is str and all(k.__class__ is str for k in out)
    assert out["a"][0].__class__ is int and out["a"][1].__class__ is float and out["a"][2] is True
    assert copy.deepcopy(out) == out


def test_other_values_pass_through():
    marker = object()
    assert plain(marker) is marker
