# -*- coding: utf-8 -*-
# Copyright (c) idmapguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sliced runs: which hosts a slice takes, and the canary batch under slicing.

Controller-side and pure (filters in ``plugins/filter/slicing.py``), unit-tested directly.

AWX job slicing (``job_slice_count`` N) gives slice number i (1-based) the inventory's enabled
hosts ordered by name, ``hosts[i-1::N]``, and applies the job's limit after that. A run outside
AWX gets the same split from ``idmapguard_rollout_slice`` / ``idmapguard_rollout_slice_count``
(in AWX, set only the count in the sliced job template: the inventory is split already, and the
count tells the rollout it is a slice):
:func:`slice_hosts` orders the inventory's host names (Python's code point order; AWX orders in
its database's collation, the same for names in lower-case letters, digits, ``-`` and ``.``),
takes every N-th and keeps the play's host pattern order.

The canary under slicing (docs/awx.md): every slice would otherwise run a canary batch of its
own, N canaries at once. The workflow runs the canary first as its own job
(``idmapguard_rollout_canary_only``: the first host of the whole pattern, by name), and the
sliced rollout after it succeeded with ``idmapguard_rollout_canary_done``. :func:`rollout_batches`
drops the canary batch only when told the canary is done, and refuses a sliced run whose batches
start without a canary unless it is.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

Batch = Union[int, str]
DEFAULT_BATCHES: List[Batch] = [1, "10%", "50%", "100%"]


class SlicingError(ValueError):
    """Slice variables or batches that cannot make a run."""


def _slice_numbers(number: Any, count: Any) -> Optional[tuple]:
    """(number, count) as ints, or None when this run splits nothing: no slice variables, or
    only the count (an AWX slice: AWX gave it its share of the inventory already)."""
    if number in (None, ""):
        return None
    try:
        number, count = int(number), int(count)
    except (TypeError, ValueError):
        raise SlicingError("idmapguard_rollout_slice and idmapguard_rollout_slice_count must both be set, as "
                           "integers (slice 1..N of N), got %r and %r" % (number, count))
    if count < 1 or not 1 <= number <= count:
        raise SlicingError("slice %d of %d: the slice number must be 1 to %d" % (number, count, count))
    return number, count


def slice_hosts(pattern_hosts: Sequence[str], all_hosts: Sequence[str], number: Any = None,
                count: Any = None) -> List[str]:
    """The hosts of the play's pattern that fall in slice ``number`` of ``count``, as AWX splits:
    ``sorted(all_hosts)[number-1::count]``. No slice asked for: the pattern's hosts unchanged."""
    numbers = _slice_numbers(number, count)
    if numbers is None or numbers[1] == 1:
        return list(pattern_hosts)
    number, count = numbers
    mine = set(sorted(set(all_hosts))[number - 1::count])
    return [host for host in pattern_hosts if host in mine]


def canary_host(pattern_hosts: Sequence[str]) -> List[str]:
    """The canary job's one host: the first of the pattern by name (it is in slice 1)."""
    return sorted(set(pattern_hosts))[:1]


def _is_canary(batch: Any) -> bool:
    return str(batch).strip() in ("1", "1.0")


def rollout_batches(batches: Optional[Sequence[Batch]] = None, canary_done: bool = False,
                    slice_count: Any = None) -> List[Batch]:
    """The play's ``serial``: the batches, without the leading canary batch when the canary ran
    as its own job (``canary_done``). A sliced run (count > 1) whose batches do not start with a
    canary batch of one host is refused unless its canary is done."""
    batches = list(DEFAULT_BATCHES if batches is None else batches)
    if not batches:
        raise SlicingError("idmapguard_rollout_batches is empty")
    sliced = slice_count not in (None, "") and int(slice_count) > 1
    if canary_done:
        rest = batches[1:] if _is_canary(batches[0]) else batches
        return rest or ["100%"]
    if sliced and not _is_canary(batches[0]):
        raise SlicingError("a sliced rollout starts with a canary batch of one host (batches %r): run the canary "
                           "job first and pass idmapguard_rollout_canary_done=true to the slices (docs/awx.md)"
                           % (batches,))
    return batches
