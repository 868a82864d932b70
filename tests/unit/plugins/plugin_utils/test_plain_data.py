# -*- coding: utf-8 -*-
"""plugin_utils.plain_data: what ansible-core hands over, as plain Python data."""

import copy

from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.idmapguard.storage.plugins.plugin_utils.plain_data import plain


class Tagged(str):
    """A str subclass, as ansible-core's tagged and unsafe strings are."""


def test_subclasses_become_their_plain_types():  # pylint: disable=unidiomatic-typecheck
    # exact types on purpose: a subclass is what must go
    value = wrap_var({"a": [1, 2.5, True, None, ("t",)], Tagged("k"): {"n": Tagged("v")}})
    out = plain(value)
    assert out == {"a": [1, 2.5, True, None, ["t"]], "k": {"n": "v"}}
    assert type(out["k"]["n"]) is str and all(type(k) is str for k in out)
    assert type(out["a"][0]) is int and type(out["a"][1]) is float and out["a"][2] is True
    assert copy.deepcopy(out) == out


def test_other_values_pass_through():
    marker = object()
    assert plain(marker) is marker
